"""One LLaMA-2-7B linear layer in every weight format, at decode (1 row) and prefill (296 rows).

    python -m benchmarks.quantized_linear                  # 4096x4096 and 11008x4096, ~1 min
    python -m benchmarks.quantized_linear --rows 1 8 16 32 64 --shapes 4096x4096

Compares, per shape and row count: fp32 and bf16 ``F.linear``; PyTorch's int8 and int4 CPU
kernels called directly (bf16 activations; fp32 ones take a scalar loop); a hand-written
dequantise-the-whole-matrix-then-matmul; and the layers of ``minigptv2.model.quantize``, which
pick the kernel up to ``MATRIX_ROWS`` rows and a blocked dequantise-then-GEMM above. The README's
speed section quotes this table. Prints one JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from benchmarks.measure import best_time
from minigptv2.model.quantize import DEFAULT_GROUP_SIZE, Int4Linear, Int8Linear

PROMPT_ROWS = 296  # 256 image tokens + ~40 of template and instruction


def candidates(linear: nn.Linear, group_size: int) -> dict:
    """name -> function of the input rows."""
    weight_bf16 = linear.weight.detach().bfloat16()
    int8 = Int8Linear.from_linear(linear)
    int4 = Int4Linear.from_linear(linear, group_size)
    int4_weight = int4.dequantize()
    aten = torch.ops.aten

    return {
        "fp32 F.linear": lambda x: nn.functional.linear(x, linear.weight),
        "bf16 F.linear": lambda x: nn.functional.linear(x.bfloat16(), weight_bf16),
        "int8 kernel (bf16 x)": lambda x: aten._weight_int8pack_mm(
            x.bfloat16(), int8.weight_int8, int8.scales
        ),
        "int8 dequantise all + matmul": lambda x: x @ int8.dequantize().t(),
        "int8 Int8Linear": int8,
        "int4 kernel (bf16 x)": lambda x: aten._weight_int4pack_mm_for_cpu(
            x.bfloat16(), int4.weight_int4, group_size, int4.scales_and_zeros
        ),
        "int4 kernel (fp32 x)": lambda x: aten._weight_int4pack_mm_for_cpu(
            x, int4.weight_int4, group_size, int4.scales_and_zeros.float()
        ),
        "int4 dequantise all + matmul": lambda x: x @ int4.dequantize().t(),
        "int4 Int4Linear": int4,
        "(reference: matmul by a ready fp32 copy)": lambda x: x @ int4_weight.t(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["4096x4096", "11008x4096"],
                        help="OUTxIN of the weight")  # fmt: skip
    parser.add_argument("--rows", nargs="+", type=int, default=[1, PROMPT_ROWS])
    parser.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE)
    parser.add_argument("--only", help="run only the candidates whose name contains this")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per timing")
    args = parser.parse_args()
    torch.manual_seed(0)
    for shape in args.shapes:
        out_features, in_features = (int(size) for size in shape.split("x"))
        linear = nn.Linear(in_features, out_features, bias=False)
        for name, run in candidates(linear, args.group_size).items():
            if args.only and args.only not in name:
                continue
            for rows in args.rows:
                if "fp32 x" in name and rows > 16:
                    continue  # a scalar loop: 15 s at 296 rows
                x = torch.randn(rows, in_features)
                began = time.perf_counter()
                with torch.inference_mode():
                    seconds = best_time(
                        lambda run=run, x=x: run(x), repeats=5, budget_s=args.budget
                    )
                record = {
                    "shape": shape,
                    "rows": rows,
                    "path": name,
                    "ms": round(seconds * 1e3, 2),
                    "gflops": round(2 * rows * in_features * out_features / seconds / 1e9, 2),
                    "wall_s": round(time.perf_counter() - began, 1),
                }
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
