"""The whole-model first answer on toy widths: block-by-block random weights, memory estimate,
and how it replaces the extrapolated figure."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmarks import full_size, whole_model
from benchmarks.whole_model import (
    estimated_bytes,
    measure_first_answer,
    random_model,
    time_first_answer,
)
from minigptv2.config import LanguageConfig, get_preset
from minigptv2.model.quantize import Int4Linear, Int8Linear
from minigptv2.model.summary import build_on_meta

# Widths that int4's packing needs no padding for (multiples of 64 out, 128 in).
CONFIG = replace(
    get_preset("tiny"),
    language=LanguageConfig(
        vocab_size=512,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        intermediate_size=256,
        max_position_embeddings=512,
    ),
)


def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_random_model_is_the_whole_model_without_lora_and_nothing_left_on_meta(dtype: str):
    config = replace(CONFIG, dtype=dtype)
    model = random_model(config)
    assert not any(tensor.is_meta for tensor in _tensors(model))
    without_lora = replace(config, lora=None, trainable=replace(config.trainable, lora=False))
    meta = build_on_meta(without_lora)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in meta.parameters())
    assert not any("lora_" in name for name, _ in model.named_parameters())
    layer = model.language_model.model.layers[0]
    assert layer.mlp.up_proj.weight.dtype == getattr(torch, dtype)
    assert model.projector.linear.weight.dtype == torch.float32  # stays fp32, as in the reference
    # Filled, not left as torch.empty garbage: N(0, 0.02) matrices and unit norms.
    assert layer.mlp.up_proj.weight.float().std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(layer.input_layernorm.weight == 1)


@pytest.mark.parametrize(("quantize", "kind"), [("int8", Int8Linear), ("int4", Int4Linear)])
def test_quantised_random_model_quantises_every_layer_and_the_head(quantize, kind):
    model = random_model(CONFIG, quantize)
    assert not any(tensor.is_meta for tensor in _tensors(model))
    language = model.language_model
    assert isinstance(language.lm_head, kind)
    assert all(isinstance(layer.self_attn.q_proj, kind) for layer in language.model.layers)
    assert not isinstance(model.projector.linear, kind)  # only the language model is quantised


@pytest.mark.parametrize("quantize", [None, "int8", "int4"])
def test_estimated_bytes_match_what_the_model_holds(quantize):
    model = random_model(CONFIG, quantize)
    held = sum(t.numel() * t.element_size() for t in _tensors(model))
    assert estimated_bytes(CONFIG, quantize) == pytest.approx(held, rel=0.05)


def test_first_answer_generates_twenty_tokens_after_image_and_prompt(monkeypatch):
    model = random_model(CONFIG)
    seen = {}
    generate = model.generate

    def spy(ids, mask, pixels, **kwargs):
        seen["ids"], seen["pixels"] = ids, pixels
        return generate(ids, mask, pixels, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    assert time_first_answer(model) > 0
    image_slots = (seen["ids"] < 0).sum().item()
    assert image_slots == CONFIG.num_image_tokens
    assert seen["ids"].shape[1] == 1 + CONFIG.num_image_tokens + 40
    assert seen["pixels"].shape[-1] == CONFIG.vision.image_size


def test_a_model_that_does_not_fit_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setattr(whole_model, "available_bytes", lambda: 2**20)
    monkeypatch.setattr(whole_model, "random_model", lambda *_: pytest.fail("built anyway"))
    with pytest.raises(MemoryError, match="GiB"):
        measure_first_answer(CONFIG)


def test_whole_model_time_replaces_the_sum_and_keeps_it_beside(monkeypatch):
    calls = []

    def fake(config, quantize):
        calls.append((config.dtype, quantize))
        return {"first_answer_s": 7.5, "build_s": 3.0}

    monkeypatch.setattr(full_size, "measure_first_answer", fake)
    language = {"first_answer_s": 9.0, "first_answer_method": "sum"}
    full_size.whole_first_answer(language, "float32", "int4", cap_s=100.0)
    assert calls == [("float32", "int4")]
    assert language["first_answer_s"] == 7.5
    assert language["first_answer_extrapolated_s"] == 9.0
    assert language["first_answer_whole"] == "measured"

    slow = {"first_answer_s": 400.0}
    full_size.whole_first_answer(slow, "bfloat16", None, cap_s=100.0)
    assert slow["first_answer_s"] == 400.0 and slow["first_answer_whole"].startswith("not run")
    assert len(calls) == 1  # too slow by the extrapolation: not built

    def too_big(config, quantize):
        raise MemoryError("needs 30 GiB")

    monkeypatch.setattr(full_size, "measure_first_answer", too_big)
    big = {"first_answer_s": 9.0}
    full_size.whole_first_answer(big, "float32", None, cap_s=100.0)
    assert big == {"first_answer_s": 9.0, "first_answer_whole": "not run: needs 30 GiB"}
