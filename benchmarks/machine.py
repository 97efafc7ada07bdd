"""The machine's own limits: dense matmul throughput and memory read bandwidth.

MFU and the decode bandwidth bound are fractions of these numbers, so the targets hold on any
machine. Each is the best of several runs on tensors far larger than the caches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.measure import best_time, log


def matmul_gflops(
    dtype: torch.dtype, *, max_size: int = 2048, repeats: int = 5, budget_s: float = 6.0
) -> dict[str, float]:
    """Best GFLOP/s of an ``n x n @ n x n`` product (``2 n^3`` FLOPs).

    ``n`` doubles from 256 until one product takes 0.2 s or ``max_size`` is reached, so a slow
    (emulated) dtype is measured on a size it finishes in time; the size used is reported.
    """
    size = 256
    while True:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        seconds = best_time(lambda a=a, b=b: a @ b, repeats=1, warmup=1)
        if seconds >= 0.2 or size >= max_size:
            break
        size *= 2
    seconds = best_time(lambda: a @ b, repeats=repeats, warmup=0, budget_s=budget_s)
    return {"gflops": 2 * size**3 / seconds / 1e9, "size": size}


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
    log("machine: memory bandwidth")
    bandwidth = memory_gbps(mebibytes=mebibytes)
    log("machine: matrix-vector bandwidth")
    rows = 11008 if mebibytes >= 512 else 1024  # the smoke plan keeps everything small
    return {
        "matmul_gflops": round(fp32["gflops"], 2),
        "matmul_gflops_size": fp32["size"],
        "matmul_gflops_bf16": round(bf16["gflops"], 2),
        "matmul_gflops_bf16_size": bf16["size"],
        "memory_gbps": round(bandwidth, 2),
        "matvec_gbps_fp32": round(matvec_gbps(torch.float32, rows=rows), 2),
        "matvec_gbps_bf16": round(matvec_gbps(torch.bfloat16, rows=rows), 2),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
