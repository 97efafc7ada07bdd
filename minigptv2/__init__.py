"""MiniGPT-v2 (arXiv 2310.09478): one vision-language model, six tasks, boxes as plain text.

Importing the package loads no weights and no heavy libraries; the model classes are imported on
first use. It also registers the model with transformers' Auto classes and pipeline, at the moment
transformers loads them (``integrations/registration.py``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from minigptv2.integrations.registration import register_when_imported

__version__ = "0.1.0"

_LAZY = {
    "Assistant": "minigptv2.assistant",
    "Answer": "minigptv2.assistant",
    "GenerationConfig": "minigptv2.assistant",
    "draw_boxes": "minigptv2.drawing",
    "load_released": "minigptv2.checkpoints",
    "load_pretrained": "minigptv2.checkpoints",
    "save_pretrained": "minigptv2.checkpoints",
    "MiniGPTv2": "minigptv2.model",
    "MiniGPTv2Config": "minigptv2.config",
    "PRESETS": "minigptv2.config",
    "get_preset": "minigptv2.config",
    "Processor": "minigptv2.processor",
    "Tokenizer": "minigptv2.tokenizer",
    "Turn": "minigptv2.prompts",
    "parse_grounding": "minigptv2.boxes",
    "MiniGPTv2Error": "minigptv2.errors",
}

__all__ = sorted(_LAZY)

register_when_imported()


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'minigptv2' has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
