"""The decoding loop's shortcuts must not change what the model computes."""

import pytest
import torch
from transformers import DynamicCache

from minigptv2.model.decoding import decoder, forward_step, model_size, project, step_mask
from minigptv2.model.quantize import quantize_int8


def left_padded_prefill(model, cache):
    """A 3-row batch whose rows have 0, 3 and 1 pads on the left, read into ``cache``."""
    hidden = model.config.hidden_size
    torch.manual_seed(1)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :3] = 0
    mask[2, :1] = 0
    forward_step(model, torch.randn(3, 7, hidden), mask, cache, model_size(model))
    return mask


@pytest.fixture
def one_thread():
    # Bitwise comparisons need one thread count on both sides (a matmul's reduction order may
    # depend on it); forward_step keeps a single thread as it finds it.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_decode_step_mask_gives_the_logits_of_transformers_own_mask(tiny_model, one_thread):
    model = decoder(tiny_model.language_model).eval()
    hidden = model.config.hidden_size
    with torch.inference_mode():
        ours, theirs = DynamicCache(), DynamicCache()
        mask = left_padded_prefill(model, ours)
        left_padded_prefill(model, theirs)
        for step in range(3):
            mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
            token = torch.randn(3, 1, hidden, generator=torch.Generator().manual_seed(step))
            positions = (mask.cumsum(-1) - 1)[:, -1:]
            expected = model(
                inputs_embeds=token,
                attention_mask=mask,  # 2-D: transformers builds the 4-D mask itself
                position_ids=positions,
                cache=theirs,
                use_cache=True,
            ).logits[:, -1]
            logits = forward_step(model, token, mask, ours, model_size(model))
            # Not bitwise: the head's product runs on an input-major copy of its weight.
            torch.testing.assert_close(logits, expected.float(), rtol=1e-5, atol=1e-5)
            assert torch.equal(logits.argmax(-1), expected.argmax(-1))


def test_step_mask_is_the_padding_mask_for_one_position_and_2d_for_a_prefill():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert step_mask(mask, 1).shape == (2, 1, 1, 4)
    assert step_mask(mask, 1)[0, 0, 0].tolist() == [False, False, True, True]
    assert step_mask(mask, 3) is mask  # several new positions: transformers adds causality


def test_model_size_counts_parameters_and_int8_buffers_once(tiny_model):
    model = decoder(tiny_model.language_model)
    expected = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    assert model_size(model) == expected
    # Cached: a parameter added later is not walked again (models do not grow in generation).
    model.extra = torch.nn.Linear(4, 4)
    assert model_size(model) == expected
    del model.extra
    quantized = decoder(type(tiny_model)(tiny_model.config).language_model)
    quantize_int8(quantized)
    # int8 weights are buffers (plus one scale per output row): still counted.
    assert model_size(quantized) >= expected
    assert model_size(quantized) > sum(p.numel() for p in quantized.parameters())


def test_head_projection_matches_the_linear_and_follows_weight_updates():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 16)
    with torch.inference_mode():
        torch.testing.assert_close(project(head, hidden), head(hidden))
    with torch.no_grad():
        head.weight.mul_(-2.0)  # an optimiser's in-place step: the cached layout is stale
    with torch.inference_mode():
        torch.testing.assert_close(project(head, hidden), head(hidden))
    head.weight = torch.nn.Parameter(torch.randn(50, 16))  # a new weight (a checkpoint load)
    with torch.inference_mode():
        torch.testing.assert_close(project(head, hidden), head(hidden))
