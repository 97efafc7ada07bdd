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
