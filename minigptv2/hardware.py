"""What this machine computes natively, read at run time (machines differ: never assume)."""

from __future__ import annotations

from pathlib import Path


def native_bf16() -> bool:
    """True where bf16 matmuls run in hardware: a CUDA device that supports them, or a CPU with
    AVX512-BF16 or AMX. Elsewhere bf16 is emulated (on an AVX2-only EPYC, 0.3 vs 75 GFLOP/s in
    fp32), so callers keep fp32."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
