"""The "before" side of each fast path computes what the fast path computes, only slower."""

from __future__ import annotations

import pytest
import torch

from benchmarks.fast_paths import (
    eager_attention,
    greedy_cached,
    greedy_hf_generate,
    greedy_without_cache,
)
from benchmarks.setups import build_assistant, scenes
from benchmarks.suite import smoke_config


@pytest.fixture(scope="module")
def assistant():
    return build_assistant("smoke", smoke_config())


@pytest.fixture(scope="module")
def scene():
    return scenes(1)[0]


def test_uncached_and_hf_generate_choose_the_same_greedy_tokens(assistant, scene):
    cached = greedy_cached(assistant, *scene, 6)
    assert cached.shape == (6,)
    assert torch.equal(greedy_without_cache(assistant, *scene, 6), cached)
    assert torch.equal(greedy_hf_generate(assistant, *scene, 6), cached)


def test_eager_attention_matches_sdpa_and_is_undone(assistant, scene):
    image, prompt = scene
    batch = assistant.processor.generation_batch([prompt], [image], style=assistant.style)
    model = assistant.model

    def outputs():
        with torch.inference_mode():
            features = model.encode_images(batch["pixel_values"])
            logits = model(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"])
        return features, logits.logits

    sdpa = outputs()
    with eager_attention(assistant):
        assert model.language_model.config._attn_implementation == "eager"
        eager = outputs()
    assert model.language_model.config._attn_implementation == "sdpa"
    assert "forward" not in vars(model.vision.blocks[0].attn)  # the class's SDPA forward again
    torch.testing.assert_close(eager[0], sdpa[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eager[1], sdpa[1], rtol=1e-4, atol=1e-4)
