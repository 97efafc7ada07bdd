"""AdamW with decay only on matrices, and MiniGPT-v2's learning-rate schedule (spec §5.5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    """Defaults are the released stage-3 recipe: 1e-6 -> 1e-5 warm-up, cosine down to 1e-6."""

    lr: float = 1e-5
    min_lr: float = 1e-6
    warmup_lr: float = 1e-6
    warmup_steps: int = 1000
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    # The reference never clips; a bound is cheap insurance for from-scratch training.
    grad_clip: float | None = None


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed (matrices) and not decayed (biases, norms)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
    )


def learning_rate(step: int, total_steps: int, config: OptimConfig) -> float:
    """Linear warm-up from ``warmup_lr``, then cosine from ``lr`` to ``min_lr``.

    As in the reference, the cosine is measured from step 0 rather than from the end of warm-up
    (spec §10.13), so right after warm-up the rate is already slightly below ``lr``.
    """
    if step < config.warmup_steps:
        rising = config.warmup_lr + (config.lr - config.warmup_lr) * step / config.warmup_steps
        return min(config.lr, rising)
    progress = step / max(total_steps, 1)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
