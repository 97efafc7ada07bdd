"""Weight-only int8 for the language model's linear layers, for faster CPU decoding.

Decoding reads every weight once per token, so its speed is set by bytes read: int8 weights are a
quarter of fp32 and half of bf16. Each output channel keeps its own scale (symmetric,
``scale = max|w| / 127``), the scheme of gpt-fast and torchao's ``int8_weight_only``; activations
stay in floating point (bf16 inside the matmul), so only the weights are rounded.

The matmul is PyTorch's ``_weight_int8pack_mm`` CPU kernel, which multiplies bf16 activations by
int8 weights without materialising a dequantised copy; with fp32 activations the same kernel
takes a slow path, hence the cast. Measured on this machine (one thread, 4096x4096, one token):
fp32 4.5 ms, int8 2.2 ms.

Inference only: the int8 weights are buffers and do not train.
"""

from __future__ import annotations

import torch
from torch import nn

from minigptv2.errors import ConfigError

_KERNEL = getattr(torch, "_weight_int8pack_mm", None)


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` stored as int8 and one bf16 scale per output channel."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.register_buffer("weight_int8", weight.contiguous())  # (out, in) int8
        self.register_buffer("scales", scales)  # (out,) bf16
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127  # (out,)
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(quantized, scales.to(torch.bfloat16), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (tokens, in)
        y = _KERNEL(flat, self.weight_int8, self.scales)  # (tokens, out) bf16
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def quantize_int8(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` but LoRA adapters; returns how many."""
    if _KERNEL is None:
        raise ConfigError(
            f"torch {torch.__version__} has no _weight_int8pack_mm kernel; int8 needs torch >= 2.3 "
            "(drop --int8 to run in floating point)"
        )
    targets = [
        (name, child)
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and "lora_" not in name
    ]
    for name, linear in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, Int8Linear.from_linear(linear))
    return len(targets)
