"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a folder ``checkpoints/step_NNNNNNN`` holding the trainable weights (safetensors)
and ``state.pt`` (optimiser, step, every rank's RNG state; read back with ``weights_only=True``).
It is written into a temporary folder and renamed into place, so a run killed mid-save leaves the
previous checkpoint intact and never a half-written one that looks complete.

The format does not depend on how the run was parallelised: DDP and FSDP runs (``fsdp.py``
gathers the shards) write what a single process writes, so any of them resumes any other.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from minigptv2.checkpoints.pretrained import atomic_directory
from minigptv2.checkpoints.safe_load import SafetensorsFile, read_torch_file, require_file
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
    """Checkpoint a single-process (or DDP rank-0) model; see ``write_training_checkpoint``."""
    weights, optimizer_state = trainable_state(model), optimizer.state_dict()
    return write_training_checkpoint(
        folder, step, weights, optimizer_state, [torch.get_rng_state()], keep
    )


def write_training_checkpoint(
    folder: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    rng_states: list[torch.Tensor],
    keep: int = 2,
) -> Path:
    """Write ``folder/step_<step>`` atomically and keep only the newest ``keep`` checkpoints.

    ``rng_states`` holds each rank's torch RNG state (rank order): ranks draw different dropout
    masks, so a resumed multi-rank run matches an uninterrupted one only if each gets its own.
    """
    target = folder / f"{PREFIX}{step:07d}"
    with atomic_directory(target) as staging:
        save_file(weights, staging / WEIGHTS)
        rng = {"torch": rng_states[0], "torch_per_rank": list(rng_states)}
        state = {"step": step, "optimizer": optimizer_state, "rng": rng}
        torch.save(state, staging / STATE)
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (staging folders start with a dot and are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.name.startswith(PREFIX))


def load_training_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> int:
    """Restore weights, optimiser and RNG states from ``path``; returns the step to start at.

    A sharded (FSDP) ``model`` receives its shard of the full tensors. With a different number of
    ranks than the run that wrote it, every rank continues from rank 0's RNG state.
    """
    # The shared safe readers turn damage into "corrupted" and a pickle that would run code into
    # a refusal, instead of safetensors' or torch's own errors (torch's advises weights_only=False).
    weights = dict(SafetensorsFile(require_file(path / WEIGHTS)).items())
    # Read into memory: the optimiser updates these tensors in place, and old checkpoint folders
    # are deleted as the run goes on.
    state = read_torch_file(path / STATE, mmap=False)
    if not (isinstance(state, dict) and {"step", "optimizer", "rng"} <= set(state)):
        raise CheckpointError(
            f"{path / STATE} lacks step, optimizer, rng: it was not written by minigptv2 train; "
            "resume from a checkpoint folder the run wrote"
        )
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != set(expected):
        missing = sorted(set(expected) - set(weights))[:5]
        extra = sorted(set(weights) - set(expected))[:5]
        raise CheckpointError(
            f"{path} does not match this model's trainable parameters (missing e.g. {missing}, "
            f"unexpected e.g. {extra}); resume with the config the run started with"
        )
    from minigptv2.train import fsdp

    if fsdp.is_sharded(model):
        fsdp.load_training_state(model, optimizer, weights, state["optimizer"])
    else:
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(state["optimizer"])
    # Only torch draws random numbers in the loop (dropout); data is addressed by index.
    per_rank = state["rng"].get("torch_per_rank", [])  # absent in checkpoints before FSDP
    own = len(per_rank) == world_size
    torch.set_rng_state(per_rank[rank] if own else state["rng"]["torch"])
    return int(state["step"])
