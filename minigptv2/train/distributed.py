"""Process-group set-up for ``torchrun`` and the few collectives the loop needs.

DDP over gloo on CPU, NCCL on GPUs; ``fsdp.py`` holds the sharded alternative.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world() -> World:
    """Join the process group if launched by ``torchrun`` (it sets WORLD_SIZE), else run alone."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def close_world(world: World) -> None:
    """Leave the group together. Likely cause of a CI run that hung 600 s after rank 0's last
    line: rank 1 tore its gloo connections down while rank 0 was still drawing curves.png."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def all_ranks_agree(flag: bool, world: World) -> bool:
    """True only if ``flag`` is true on every rank (a logical AND over the group)."""
    if world.size == 1:
        return flag
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor(1.0 if flag else 0.0, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


@contextlib.contextmanager
def gradient_sync(network: nn.Module, sync: bool) -> Iterator[None]:
    """Skip the cross-rank gradient reduction for micro-batches that are not a step's last.

    Accumulating locally and reducing once per step sends ``grad_accum`` times less data; the
    averaged gradient is the same.
    """
    if isinstance(network, DistributedDataParallel) and not sync:
        with network.no_sync():
            yield
        return
    set_sync = getattr(network, "set_requires_gradient_sync", None)  # an FSDP2 module
    if set_sync is not None:
        set_sync(sync)
    yield


def gather_rng_states(world: World) -> list[torch.Tensor]:
    """Every rank's torch RNG state, in rank order (all ranks must call it)."""
    own = torch.get_rng_state()
    if world.size == 1:
        return [own]
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered = [torch.empty_like(own, device=device) for _ in range(world.size)]
    dist.all_gather(gathered, own.to(device))
    return [state.cpu() for state in gathered]
