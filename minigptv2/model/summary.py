"""Parameter counts per component, from a model built on the meta device (no memory used)."""

from __future__ import annotations

import torch

from minigptv2.config import MiniGPTv2Config
from minigptv2.model.minigptv2 import MiniGPTv2


def build_on_meta(config: MiniGPTv2Config) -> MiniGPTv2:
    """The full model with shapes but no storage: the 7B preset builds in about a second."""
    with torch.device("meta"):
        return MiniGPTv2(config)


def component_summary(config: MiniGPTv2Config) -> dict[str, dict[str, int | bool]]:
    """``{component: {"params": n, "trainable": bool}}`` for vision, projector, LLM and LoRA."""
    model = build_on_meta(config)
    return {
        name: {
            "params": sum(parameter.numel() for parameter in parameters),
            "trainable": any(parameter.requires_grad for parameter in parameters),
        }
        for name, parameters in model.parameter_groups().items()
    }
