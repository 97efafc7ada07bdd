"""Fully sharded data parallel (FSDP2, ``torch.distributed.fsdp.fully_shard``) for large models.

With ``parallel: fsdp`` (or ``auto`` and a language model of 1B+ parameters, i.e. the 7B size)
each LLaMA decoder layer becomes its own FSDP unit and the rest of the model (vision encoder,
projector, embeddings, output head) one root unit. Every rank then holds 1/N of each weight, of its
gradient and of its AdamW moments, and gathers a layer's weights only while that layer runs.

* **Frozen + trainable.** FSDP2 shards per parameter, so a frozen base with trainable LoRA
  adapters in the same layer needs nothing special: only parameters with a gradient are
  reduce-scattered (FSDP1 would need ``use_orig_params=True``). Mixed dtypes (bf16 frozen
  weights, fp32 adapters) are all-gathered together as bytes.
* **The vision encoder stays in the root unit**, gathered at every step whether or not the
  rank's batch has an image. Limitation (measured with torch 2.13 on gloo): when one rank's
  micro-batch has images and another's has none, the projector (and a trainable encoder) has a
  gradient on one rank only, the root unit's reduce-scatter no longer matches across ranks and
  gloo aborts the process. ``check_same_modality`` turns that into a clear error before the
  backward pass; mixtures with text-only sources need ``parallel: ddp`` (DDP handles it with
  ``find_unused_parameters``) until the batches are made modality-uniform across ranks.
* **Checkpoints are gathered to rank 0** in the single-process format (trainable weights by name,
  optimiser state by parameter index), so ``--resume`` works across DDP, FSDP and one process,
  and ``save_pretrained`` writes the same export. Evaluation and export build one unsharded copy
  on rank 0 (a full model's memory there, once per evaluation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from minigptv2.errors import ConfigError
from minigptv2.model import MiniGPTv2
from minigptv2.model.decoding import decoder
from minigptv2.train.distributed import World, all_ranks_agree

# ``parallel: auto`` shards language models from this size up (LLaMA-2-7B: 6.7e9 parameters);
# below it DDP's full replicas fit and need less communication.
AUTO_FSDP_PARAMETERS = 1_000_000_000


def resolve_parallel(parallel: str, model: MiniGPTv2) -> str:
    """``"auto"`` -> ``"fsdp"`` for a 1B+ parameter language model, else ``"ddp"``."""
    if parallel != "auto":
        return parallel
    size = sum(parameter.numel() for parameter in model.language_model.parameters())
    return "fsdp" if size >= AUTO_FSDP_PARAMETERS else "ddp"


def shard(model: MiniGPTv2, world: World) -> MiniGPTv2:
    """Shard ``model`` in place over all ranks: one unit per decoder layer, one for the rest."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mesh = init_device_mesh(device, (world.size,))
    # A decoder layer is whatever the family's class says must not be split across devices
    # (``_no_split_modules``: LlamaDecoderLayer, Qwen2DecoderLayer, Phi3DecoderLayer, ...).
    layer_classes = set(getattr(decoder(model.language_model), "_no_split_modules", None) or ())
    for layer in model.language_model.modules():
        if type(layer).__name__ in layer_classes:
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def check_same_modality(batch: dict[str, Any], world: World) -> None:
    """Refuse a step in which some ranks' micro-batches have images and others have none."""
    has_images = batch.get("pixel_values") is not None
    if all_ranks_agree(has_images, world) or all_ranks_agree(not has_images, world):
        return
    raise ConfigError(
        "under FSDP some ranks drew a micro-batch with images and others a text-only one, which "
        "FSDP cannot reduce (the projector has gradients on some ranks only); train this "
        "mixture with parallel=ddp, or without text-only sources"
    )


def check_same_pieces(pieces: list[dict[str, Any]], wanted: int, world: World) -> None:
    """Every rank must run as many forward passes as the others (each one gathers shards), with
    images in the same ones."""
    if not all_ranks_agree(len(pieces) == wanted, world):
        raise ConfigError(
            "under FSDP the ranks split their micro-batches into different numbers of pieces "
            "(a rank had fewer usable samples than `pieces`); lower `pieces` or use parallel=ddp"
        )
    for piece in pieces:
        check_same_modality(piece, world)


def gather_training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Full trainable weights and optimiser state on rank 0 (empty elsewhere); all ranks call it.

    The optimiser state comes back keyed by parameter name; it is re-keyed by position, as
    ``Optimizer.state_dict`` does, so the checkpoint is the one a single process writes.
    """
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    weights = get_model_state_dict(model, options=options)
    by_name = get_optimizer_state_dict(model, optimizer, options=options)
    weights = {name: tensor for name, tensor in weights.items() if name in trainable}
    return weights, (_by_position(by_name) if by_name else {})


def load_training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    """Shard full (single-process format) weights and optimiser state onto this rank."""
    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(
        model, optimizer, _by_name(optimizer_state, model, optimizer), options=options
    )
    # The round trip turns tuples such as AdamW's ``betas`` into lists; keep the original types
    # so a later checkpoint is identical to a single-process one.
    for group, saved in zip(optimizer.param_groups, optimizer_state["param_groups"], strict=True):
        for key, value in saved.items():
            if isinstance(value, tuple):
                group[key] = tuple(group[key])


def unsharded_copy(model: nn.Module) -> MiniGPTv2 | None:
    """An ordinary ``MiniGPTv2`` with the sharded model's weights on rank 0 (None elsewhere).

    All ranks must call it (the weights are all-gathered).
    """
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=options)
    if not full:
        return None
    copy = MiniGPTv2(model.config)
    copy.set_trainable(model.trainable)
    copy.load_state_dict(full, strict=True)
    # A trainable-only export records the base files the sharded model was loaded from.
    copy.weights_source = getattr(model, "weights_source", None)
    return copy.train(model.training)


def _by_position(state: dict[str, Any]) -> dict[str, Any]:
    """``{"state": {name: ...}}`` -> ``{"state": {index: ...}}``, indices in group order."""
    index: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        positions = [index.setdefault(name, len(index)) for name in group["params"]]
        groups.append({**group, "params": positions})
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": groups,
    }


def _by_name(
    state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Inverse of ``_by_position`` for this optimiser's parameters."""
    names_of = {id(parameter): name for name, parameter in model.named_parameters()}
    names = [names_of[id(p)] for group in optimizer.param_groups for p in group["params"]]
    return {
        "state": {names[int(index)]: value for index, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[index] for index in group["params"]]}
            for group in state["param_groups"]
        ],
    }
