"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a folder ``checkpoints/step_NNNNNNN`` holding the trainable weights (safetensors)
and ``state.pt`` (optimiser, step, RNG states; read back with ``weights_only=True``). It is written
into a temporary folder and renamed into place, so a run killed mid-save leaves the previous
checkpoint intact and never a half-written one that looks complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from minigptv2.checkpoints.pretrained import atomic_directory
from minigptv2.errors import CheckpointError

WEIGHTS = "trainable.safetensors"
STATE = "state.pt"
PREFIX = "step_"


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: parameter.detach().contiguous()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def save_training_checkpoint(
    folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, keep: int = 2
) -> Path:
    """Write ``folder/step_<step>`` atomically and keep only the newest ``keep`` checkpoints."""
    target = folder / f"{PREFIX}{step:07d}"
    with atomic_directory(target) as staging:
        save_file(trainable_state(model), staging / WEIGHTS)
        state = {"step": step, "optimizer": optimizer.state_dict(), "rng": _rng_state()}
        torch.save(state, staging / STATE)
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (staging folders start with a dot and are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.name.startswith(PREFIX))


def load_training_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights, optimiser and RNG states from ``path``; returns the step to start at."""
    try:
        weights = load_file(path / WEIGHTS)
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"cannot read training checkpoint {path}: {error}") from None
    expected = trainable_state(model)
    if set(weights) != set(expected):
        missing = sorted(set(expected) - set(weights))[:5]
        extra = sorted(set(weights) - set(expected))[:5]
        raise CheckpointError(
            f"{path} does not match this model's trainable parameters (missing e.g. {missing}, "
            f"unexpected e.g. {extra}); resume with the config the run started with"
        )
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    return int(state["step"])


def _rng_state() -> dict[str, Any]:
    # Only torch draws random numbers in the loop (dropout); data is addressed by index.
    return {"torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
