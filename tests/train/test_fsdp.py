"""FSDP helpers that run in one process; the 2-process FSDP run is in test_distributed.py."""

import pytest
import torch
from torch import nn

from minigptv2.errors import ConfigError
from minigptv2.train import fsdp
from minigptv2.train.config import TrainConfig
from minigptv2.train.optim import OptimConfig, build_optimizer


def stepped_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    optimizer = build_optimizer(model, OptimConfig(lr=0.1))
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    return optimizer


def test_optimizer_state_round_trips_between_position_and_name_keys():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # frozen: not in the optimiser at all
    optimizer = stepped_optimizer(model)
    by_position = optimizer.state_dict()
    names = [
        group["params"] for group in fsdp._by_name(by_position, model, optimizer)["param_groups"]
    ]
    # Decayed matrices first, then biases and norms, as parameter_groups orders them.
    assert names == [["2.weight"], ["0.bias", "1.weight", "1.bias", "2.bias"]]
    back = fsdp._by_position(fsdp._by_name(by_position, model, optimizer))
    assert back["param_groups"] == by_position["param_groups"]
    assert back["state"].keys() == by_position["state"].keys()
    for index, moments in by_position["state"].items():
        torch.testing.assert_close(back["state"][index]["exp_avg"], moments["exp_avg"])


def test_auto_picks_fsdp_only_for_a_large_language_model(tiny_model, monkeypatch):
    assert fsdp.resolve_parallel("auto", tiny_model) == "ddp"
    assert fsdp.resolve_parallel("fsdp", tiny_model) == "fsdp"
    size = sum(p.numel() for p in tiny_model.language_model.parameters())
    monkeypatch.setattr(fsdp, "AUTO_FSDP_PARAMETERS", size)
    assert fsdp.resolve_parallel("auto", tiny_model) == "fsdp"


def test_an_unsharded_model_is_not_reported_as_sharded(tiny_model):
    assert not fsdp.is_sharded(tiny_model)


def test_an_unknown_parallel_mode_is_refused():
    with pytest.raises(ConfigError, match="parallel 'zero3' is not one of"):
        TrainConfig(parallel="zero3")


# (rank 0 has images, rank 1 has images) -> refused?
MODALITY_CASES = [((True, True), False), ((False, False), False), ((True, False), True)]


def _modality_checks(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from minigptv2.train.distributed import World

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for case, (images, _) in enumerate(MODALITY_CASES):
            batch = {"pixel_values": torch.zeros(1) if images[rank] else None}
            try:
                fsdp.check_same_modality(batch, World(rank, 2))
                results.put((case, rank, "ok"))
            except ConfigError as error:
                results.put((case, rank, str(error)))
    finally:
        dist.destroy_process_group()


def test_mixed_image_and_text_only_micro_batches_are_refused_on_every_rank():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_modality_checks, args=(rank, port, results)) for rank in range(2)
    ]
    for process in processes:
        process.start()
    answers = {}
    for _ in range(2 * len(MODALITY_CASES)):
        case, rank, answer = results.get(timeout=300)
        answers[case, rank] = answer
    for process in processes:
        process.join(timeout=60)
    for case, (_, refused) in enumerate(MODALITY_CASES):
        for rank in range(2):
            answer = answers[case, rank]
            assert ("parallel=ddp" in answer) if refused else answer == "ok", (case, rank)
