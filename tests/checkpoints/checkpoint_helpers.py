"""Helpers for the checkpoint tests: the fixture script, sample inputs, logits and generation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from minigptv2.constants import IMAGE_TOKEN_ID

SCRIPT = Path(__file__).parents[2] / "scripts" / "make_released_fixture.py"
IMAGE_SIZE = 112  # the --tiny files have a 4x4 pretrain grid (56 px), resampled to 112 px


def _import_script():
    spec = importlib.util.spec_from_file_location("make_released_fixture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


fixture_script = sys.modules.get("make_released_fixture") or _import_script()
TINY = fixture_script.SIZES["tiny"]


def sample_inputs(model, tokenizer, batch: int = 2) -> dict[str, torch.Tensor]:
    """Left-padded prompts with one image each: BOS, text, the image slot, more text."""
    generator = torch.Generator().manual_seed(7)
    size = model.config.vision.image_size
    rows = []
    for index in range(batch):
        before = tokenizer.encode(f"[INST] <Img> sample {index}" + " the" * index)
        after = tokenizer.encode("</Img> where is the red square? [/INST]")
        image = [IMAGE_TOKEN_ID] * model.config.num_image_tokens
        rows.append([tokenizer.bos_id, *before, *image, *after])
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    pixels = torch.randn(batch, 3, size, size, generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}


@torch.no_grad()
def logits_of(model, inputs) -> torch.Tensor:
    return model(**inputs).logits


def greedy(model, inputs, tokens: int = 6) -> torch.Tensor:
    return model.generate(**inputs, max_new_tokens=tokens)
