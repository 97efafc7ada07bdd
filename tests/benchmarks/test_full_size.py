"""The full-size machinery on toy widths: per-layer clocks and the extrapolation to all layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.full_size import (
    LayerClock,
    _extrapolate,
    first_answer,
    measure_language,
    measure_vision,
)
from minigptv2.config import LanguageConfig, VisionConfig


def test_extrapolation_keeps_what_runs_outside_the_layers():
    # 2 layers of 0.3 s inside a 1.0 s forward: 0.4 s embedding/head + 32 layers.
    assert _extrapolate(1.0, 0.3, layers=2, total_layers=32) == pytest.approx(0.4 + 32 * 0.3)


def test_layer_clock_times_every_layer_of_every_call():
    layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
    clock = LayerClock(layers)
    x = torch.randn(2, 8)
    for _ in range(2):
        for layer in layers:
            x = layer(x)
    assert [len(times) for times in clock.seconds] == [2, 2, 2]
    assert 0 < clock.last_call() == min(times[-1] for times in clock.seconds)


def test_vision_and_language_sections_on_toy_widths():
    vision = VisionConfig(image_size=56, width=32, depth=5, num_heads=4, mlp_hidden=64,
                          pretrain_image_size=56)  # fmt: skip
    result = measure_vision(torch.float32, peak_gflops=10.0, cap_s=5.0, vision=vision)
    assert result["encode_s"] > 0 and result["gflops"] > 0
    assert "x 5" in result["method"]

    language = LanguageConfig(vocab_size=300, hidden_size=32, num_layers=6, num_heads=4,
                              intermediate_size=64)  # fmt: skip
    result = measure_language(torch.float32, 10.0, 5.0, language=language, prompt_tokens=40)
    assert result["prefill_s"] > 0 and result["decode_tokens_per_s"] > 0
    # Bytes per token: 6 layers of fp32 weights + the head, over 10 GB/s.
    layer = 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32  # attention, MLP, two RMSNorm weights
    head = 300 * 32
    expected_gb = (6 * layer + head) * 4 / 1e9
    assert result["weight_bytes_per_token"] == (6 * layer + head) * 4
    assert result["bandwidth_bound_tokens_per_s"] == pytest.approx(10.0 / expected_gb, rel=1e-3)


def test_int8_and_int4_weights_cut_the_bytes_a_decode_step_reads():
    language = LanguageConfig(vocab_size=320, hidden_size=128, num_layers=4, num_heads=4,
                              intermediate_size=256)  # fmt: skip
    fp32 = measure_language(torch.float32, 10.0, 5.0, language=language, prompt_tokens=16)
    int8 = measure_language(
        torch.float32, 10.0, 5.0, language=language, prompt_tokens=16, quantize="int8"
    )
    # int8 weights plus one bf16 scale per output channel, fp32 norms: just over a quarter.
    assert 0.25 < int8["weight_bytes_per_token"] / fp32["weight_bytes_per_token"] < 0.3
    assert int8["decode_tokens_per_s"] > 0
    # The same prompt is the same work whatever the weights are stored in.
    assert int8["prefill_gflop"] == fp32["prefill_gflop"] > 0
    int4 = measure_language(
        torch.float32, 10.0, 5.0, language=language, prompt_tokens=90, quantize="int4"
    )
    # Half a byte per weight plus a bf16 scale and zero per 128: 17/128 of fp32, and the norms.
    assert 0.125 < int4["weight_bytes_per_token"] / fp32["weight_bytes_per_token"] < 0.15
    assert int4["decode_tokens_per_s"] > 0 and int4["prefill_gflops"] > 0


def test_first_answer_adds_image_prefill_and_twenty_tokens():
    language = {"prefill_s": 2.0, "decode_tokens_per_s": 4.0, "prompt_tokens": 296}
    first_answer({"encode_s": 1.5}, language, "fp32")
    assert language["first_answer_s"] == pytest.approx(1.5 + 2.0 + 20 / 4.0)
    assert "296 tokens" in language["first_answer_method"]
