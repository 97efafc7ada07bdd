"""Checkpoints: the released MiniGPT-v2 files, loaded strictly, and our own save format.

* ``safe_load``  -- reading ``.pth``/``.bin`` with ``weights_only=True`` and ``.safetensors``;
  pickles that would run code are refused.
* ``key_maps``   -- explicit foreign-key -> our-key maps (EVA, MiniGPT-v2 checkpoint, HF LLaMA).
* ``report``     -- missing / unexpected / wrong-shaped / dropped keys, grouped by layer.
* ``assemble``   -- build on the meta device, check every key, then assign the tensors.
* ``released``   -- ``load_released(eva, llama, checkpoint)``.
* ``pretrained`` -- ``save_pretrained`` / ``load_pretrained`` / ``apply_released_checkpoint``.
* ``merge``      -- ``merge_lora`` for export.
* ``convert``    -- the ``minigptv2 convert`` command.

Names are imported lazily so that the CLI can import ``convert`` without loading torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "load_released": "minigptv2.checkpoints.released",
    "save_pretrained": "minigptv2.checkpoints.pretrained",
    "load_pretrained": "minigptv2.checkpoints.pretrained",
    "apply_released_checkpoint": "minigptv2.checkpoints.pretrained",
    "merge_lora": "minigptv2.checkpoints.merge",
    "LoadReport": "minigptv2.checkpoints.report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'minigptv2.checkpoints' has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
