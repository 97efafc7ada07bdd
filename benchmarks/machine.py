"""The machine's own limits: dense matmul throughput and memory read bandwidth.

MFU and the decode bandwidth bound are fractions of these numbers, so the targets hold on any
machine. Each is the best of several runs on tensors far larger than the caches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.measure import best_time, log


def matmul_gflops(
    dtype: torch.dtype,
    *,
    max_size: int = 2048,
    repeats: int = 5,
    budget_s: float = 6.0,
    product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.linear,
) -> dict[str, float]:
    """Best GFLOP/s of an ``n x n`` by ``n x n`` product (``2 n^3`` FLOPs) over sizes ``n``.

    ``F.linear`` is what every layer of the model calls; on a CPU without native bf16 it is far
    faster in bf16 than ``torch.matmul`` (measured 2.4 vs 0.3 GFLOP/s), so the peak is taken
    through it unless ``product`` says otherwise.

    ``n`` doubles from 256 up to ``max_size``, and stops early once one product takes over half
    a second, so a slow (emulated) dtype is measured on the sizes it finishes in time. Emulated
    kernels get faster with size, so the best size is reported with the best rate.
    """
    best = {"gflops": 0.0, "size": 0}
    size = 256
    while size <= max_size:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        seconds = best_time(
            lambda a=a, b=b: product(a, b), repeats=repeats, warmup=1, budget_s=budget_s
        )
        gflops = 2 * size**3 / seconds / 1e9
        if gflops > best["gflops"]:
            best = {"gflops": gflops, "size": size}
        if seconds > 0.5:
            break
        size *= 2
    return best


def memory_gbps(*, mebibytes: int = 1024, repeats: int = 5) -> float:
    """Read bandwidth in GB/s: summing a ``mebibytes`` fp32 tensor reads each byte once."""
    data = torch.ones(mebibytes * 2**20 // 4)
    seconds = best_time(data.sum, repeats=repeats, warmup=1)
    return data.numel() * 4 / seconds / 1e9


def matvec_gbps(dtype: torch.dtype, *, rows: int = 11008, cols: int = 4096) -> float:
    """Weight bytes per second of PyTorch's matrix-vector product (one decode token of a layer).

    The default shape is LLaMA-2-7B's MLP up-projection, the largest matrix a decode step reads.
    """
    weight = torch.randn(rows, cols).to(dtype)
    vector = torch.randn(1, cols).to(dtype)
    seconds = best_time(lambda: F.linear(vector, weight), repeats=5, warmup=2, budget_s=5.0)
    return weight.numel() * weight.element_size() / seconds / 1e9


def measure_machine(*, max_size: int = 2048, mebibytes: int = 1024) -> dict[str, Any]:
    """Everything the ratios are taken against, plus what PyTorch reports about the CPU."""
    log("machine: fp32 matmul")
    fp32 = matmul_gflops(torch.float32, max_size=max_size)
    log("machine: bf16 matmul")
    bf16 = matmul_gflops(torch.bfloat16, max_size=max_size)
    log("machine: bf16 torch.matmul")
    bf16_mm = matmul_gflops(
        torch.bfloat16, max_size=min(max_size, 512), repeats=2, product=torch.matmul
    )
    log("machine: memory bandwidth")
    bandwidth = memory_gbps(mebibytes=mebibytes)
    log("machine: matrix-vector bandwidth")
    rows = 11008 if mebibytes >= 512 else 1024  # the smoke plan keeps everything small
    return {
        "matmul_gflops": round(fp32["gflops"], 2),
        "matmul_gflops_size": fp32["size"],
        "matmul_gflops_bf16": round(bf16["gflops"], 2),
        "matmul_gflops_bf16_size": bf16["size"],
        "matmul_gflops_bf16_torch_matmul": round(bf16_mm["gflops"], 2),
        "memory_gbps": round(bandwidth, 2),
        "matvec_gbps_fp32": round(matvec_gbps(torch.float32, rows=rows), 2),
        "matvec_gbps_bf16": round(matvec_gbps(torch.bfloat16, rows=rows), 2),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
