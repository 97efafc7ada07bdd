"""The MFU formula against what PyTorch actually multiplies in a training step.

``FlopCounterMode`` counts every matmul and convolution that runs, forward and backward (it does
not count CPU attention kernels, so the formula's matmul part is compared on its own). The two
agree only if the formula charges the backward pass exactly where gradients are computed.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.flops import training_step_flops
from minigptv2.config import Trainable
from minigptv2.model import MiniGPTv2
from minigptv2.processor import Processor
from minigptv2.prompts import Turn


def _unpadded_batch(tokenizer, config) -> dict[str, torch.Tensor]:
    # Identical conversations: no padding, so real tokens are all the tokens that run.
    from PIL import Image

    turns = [Turn("[vqa] what colour is the circle?", "red")]
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    return Processor(tokenizer, config).training_batch([turns, turns], [image, image])


def _counted_step(model: MiniGPTv2, batch: dict[str, torch.Tensor]) -> int:
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "trainable",
    [
        Trainable(),  # MiniGPT-v2's stages: projector + LoRA, ViT and LLaMA frozen
        Trainable(vision=True, projector=True, lora=True, language_model=True),
        Trainable(vision=False, projector=True, lora=False, language_model=False),
    ],
    ids=["projector+lora", "everything", "projector-only"],
)
def test_matmul_flops_match_what_runs(tiny_config, tokenizer, trainable):
    torch.manual_seed(0)
    model = MiniGPTv2(tiny_config.replace(trainable=trainable))
    batch = _unpadded_batch(tokenizer, tiny_config)
    counted = _counted_step(model, batch)
    formula = training_step_flops(model, batch["attention_mask"], 2, batch["labels"])
    assert formula.matmul == pytest.approx(counted, rel=1e-6)


def test_backward_is_charged_only_where_gradients_flow(tiny_config, tokenizer):
    torch.manual_seed(0)
    model = MiniGPTv2(tiny_config)  # frozen ViT
    batch = _unpadded_batch(tokenizer, tiny_config)
    frozen = training_step_flops(model, batch["attention_mask"], 2, batch["labels"])
    model.set_trainable(Trainable(vision=True, projector=True, lora=True, language_model=True))
    everything = training_step_flops(model, batch["attention_mask"], 2, batch["labels"])
    assert frozen.matmul_forward == everything.matmul_forward
    assert frozen.matmul_backward < everything.matmul_backward
    # Training everything costs 3x the forward (the "6 N T" rule) except for the patch
    # convolution's input gradient: nothing wants a gradient for the pixels.
    conv = model.vision.patch_embed.proj.weight.numel() * tiny_config.vision.num_patches * 2
    assert everything.matmul == 3 * everything.matmul_forward - 2 * conv


def test_padding_is_not_counted(tiny_config, tokenizer):
    torch.manual_seed(0)
    model = MiniGPTv2(tiny_config)
    mask = torch.ones(2, 40, dtype=torch.long)
    padded = mask.clone()
    padded[1, 30:] = 0
    labels = torch.full((2, 40), -100)
    labels[:, 25:30] = 7
    full = training_step_flops(model, mask, 2, labels)
    less = training_step_flops(model, padded, 2, labels)
    assert less.total < full.total
    assert less.attention_forward < full.attention_forward
