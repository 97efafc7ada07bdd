"""Linear probes: how well a Shapes model's image features say each object's colour and shape.

    python scripts/probe_shapes.py [MODEL_DIR] [--checkpoint STEP_DIR] [--json]

For every object of a few hundred scenes, two features are read off the model: the mean of the
ViT's patch features under the object's box (after ``ln_vision``), and the language model's image
token (after the projector) that holds the object's centre. A linear classifier per feature and
attribute is fit on objects of ``train`` scenes and scored on objects of ``val`` scenes:

- ``seen`` / ``unseen``: val objects of a training colour-shape pair / of a held-out pair. A
  feature that codes shape apart from colour reads held-out pairs as well as seen ones.
- ``transfer``: fit on the red and yellow objects only (all their shapes are in training), scored
  on blue and green ones: shape read across colours the classifier never saw it with.

It answers "does the information reach the language model?" before asking why the model does not
name it (see ../shared/notes/shapes-calibration.md, which found colour readable at 93% while the
model ignored it).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from minigptv2.assistant import Assistant
from minigptv2.data.shapes import HELD_OUT, PALETTE, SHAPES, Scene, ShapesConfig, make_split_scene
from minigptv2.data.shapes import render as render_scene
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.processor import Processor

COLORS = tuple(PALETTE)
TRANSFER_FIT = ("red", "yellow")  # every shape of these colours is a training pair


@dataclass
class Objects:
    """Per-object features and labels of a set of scenes."""

    patches: torch.Tensor  # (n, vision width): mean ViT feature under the object's box
    tokens: torch.Tensor  # (n, hidden): the LM image token at the object's centre
    shape: torch.Tensor  # (n,) index into SHAPES
    color: torch.Tensor  # (n,) index into COLORS
    unseen: torch.Tensor  # (n,) bool: a held-out colour-shape pair


def cell_range(start: float, end: float, size: int, cells: int) -> tuple[int, int]:
    """The grid cells [first, last) a pixel span [start, end) of a ``size`` px side covers."""
    first = min(int(start * cells / size), cells - 1)
    last = max(first + 1, min(math.ceil(end * cells / size), cells))
    return first, last


@torch.no_grad()
def scene_objects(model: MiniGPTv2, processor: Processor, scenes: list[Scene]) -> Objects:
    patches, tokens, shape, color, unseen = [], [], [], [], []
    merged = model.projector.tokens_merged
    for scene in scenes:
        pixels = processor.pixels([render_scene(scene)])
        features = model.vision_norm(model.vision(pixels).float())[:, 1:]  # drop CLS
        grid = math.isqrt(features.shape[1])
        image_tokens = model.projector(features)[0].reshape(grid, grid // merged, -1)
        features = features[0].reshape(grid, grid, -1)
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            rows = cell_range(y1, y2, scene.height, grid)
            cols = cell_range(x1, x2, scene.width, grid)
            patches.append(features[rows[0] : rows[1], cols[0] : cols[1]].mean((0, 1)))
            cx, cy = obj.center
            row = min(int(cy * grid / scene.height), grid - 1)
            col = min(int(cx * grid / scene.width), grid - 1)
            tokens.append(image_tokens[row, col // merged])  # 4 patches of a row are one token
            shape.append(SHAPES.index(obj.shape))
            color.append(COLORS.index(obj.color))
            unseen.append((obj.color, obj.shape) in HELD_OUT)
    return Objects(
        torch.stack(patches),
        torch.stack(tokens),
        torch.tensor(shape),
        torch.tensor(color),
        torch.tensor(unseen),
    )


def probe(
    fit: torch.Tensor, fit_labels: torch.Tensor, score: torch.Tensor, classes: int, steps: int = 400
) -> torch.Tensor:
    """Fit a standardised linear classifier on ``fit``; predicted classes of ``score``."""
    mean, std = fit.mean(0), fit.std(0) + 1e-6
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(fit.shape[1], classes)
    with torch.no_grad():
        linear.weight.normal_(0, 0.01, generator=generator)
        linear.bias.zero_()
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-3)
    inputs = (fit - mean) / std
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(linear(inputs), fit_labels).backward()
            optimizer.step()
    with torch.no_grad():
        return linear((score - mean) / std).argmax(-1)


def accuracies(fit: Objects, score: Objects) -> dict[str, float]:
    """``{feature}_{attribute}_{seen|unseen|transfer}`` accuracies."""
    results = {}
    transfer_fit = torch.isin(fit.color, torch.tensor([COLORS.index(c) for c in TRANSFER_FIT]))
    transfer_score = ~torch.isin(score.color, torch.tensor([COLORS.index(c) for c in TRANSFER_FIT]))
    for feature in ("patches", "tokens"):
        x_fit, x_score = getattr(fit, feature), getattr(score, feature)
        for attribute, classes in (("shape", len(SHAPES)), ("color", len(COLORS))):
            y_fit, y_score = getattr(fit, attribute), getattr(score, attribute)
            right = probe(x_fit, y_fit, x_score, classes) == y_score
            results[f"{feature}_{attribute}_seen"] = right[~score.unseen].float().mean().item()
            results[f"{feature}_{attribute}_unseen"] = right[score.unseen].float().mean().item()
        # Shape across colours: fit on red/yellow objects, score blue/green ones.
        predicted = probe(x_fit[transfer_fit], fit.shape[transfer_fit], x_score, len(SHAPES))
        right = predicted[transfer_score] == score.shape[transfer_score]
        results[f"{feature}_shape_transfer"] = right.float().mean().item()
    return results


def scenes(split: str, count: int, seed: int) -> list[Scene]:
    rng = random.Random(f"probe:{split}:{seed}")
    return [make_split_scene(rng, ShapesConfig(), split) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="model folder (default: the shipped model)")
    parser.add_argument("--checkpoint", help="a training checkpoint folder whose weights to probe")
    parser.add_argument("--scenes", type=int, default=400, help="train scenes to fit on")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    assistant = Assistant.load(args.model)
    if args.checkpoint:
        from safetensors.torch import load_file

        weights = load_file(str(Path(args.checkpoint) / "trainable.safetensors"))
        foreign = assistant.model.load_state_dict(weights, strict=False).unexpected_keys
        if foreign:
            raise SystemExit(f"error: {args.checkpoint} has weights the model lacks: {foreign[:3]}")
    fit = scene_objects(assistant.model, assistant.processor, scenes("train", args.scenes, 0))
    score = scene_objects(assistant.model, assistant.processor, scenes("val", args.scenes // 2, 1))
    results = accuracies(fit, score)
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:28s} {value:.3f}")


if __name__ == "__main__":
    main()
