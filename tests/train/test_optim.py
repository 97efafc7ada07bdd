import math

import pytest
from torch import nn

from minigptv2.train.optim import OptimConfig, learning_rate, parameter_groups

RECIPE = OptimConfig(lr=1e-5, min_lr=1e-6, warmup_lr=1e-6, warmup_steps=1000)


def test_warmup_is_linear_from_warmup_lr():
    assert learning_rate(0, 50_000, RECIPE) == pytest.approx(1e-6)
    assert learning_rate(500, 50_000, RECIPE) == pytest.approx(5.5e-6)


def test_cosine_is_measured_from_step_zero_like_the_reference():
    # Right after warm-up the rate is already below the peak (spec §5.5: ~9.99e-6 at 1000).
    at_1000 = learning_rate(1000, 50_000, RECIPE)
    expected = 1e-6 + 9e-6 * 0.5 * (1 + math.cos(math.pi * 1000 / 50_000))
    assert at_1000 == pytest.approx(expected)
    assert 9.98e-6 < at_1000 < 1e-5
    assert learning_rate(25_000, 50_000, RECIPE) == pytest.approx(5.5e-6)
    assert learning_rate(50_000, 50_000, RECIPE) == pytest.approx(1e-6)


def test_only_matrices_are_decayed():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 4)]
    assert len(no_decay["params"]) == 4  # two biases + LayerNorm weight and bias
