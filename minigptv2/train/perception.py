"""Stage 0 of a model trained from scratch: a vision encoder that sees, before any language.

MiniGPT-v2 starts from EVA-CLIP, a ViT that already sees, and keeps it frozen while its three
stages align it to the language model. A Shapes model has no such encoder. Learning to see only
through the language model's answer loss left shape weakly coded and tied to colour (linear
probes, ``scripts/probe_shapes.py``: shape 0.71 on seen colour-shape pairs, 0.12 on held-out ones,
0.48 when read across colours), which is why held-out pairs are never named.

This stage gives the Shapes ViT what EVA brings. It trains the preset's ViT with one block more
(EVA's last block is the one MiniGPT-v2 drops) and a linear head on every patch that says which
shape and which colour the object covering the patch has, and where that object's box is.

Shape is learnt only from images whose objects are drawn in random colours far from the palette
(``recolour``), and colour only from palette images. A first version learnt both from palette
images (a quarter of them grey): after 600 steps per-patch shape was right 0.60 of the time on
training colour-shape pairs and never on held-out ones. In training a colour rules shapes out
(blue is never a triangle), and the head learnt that rule rather than geometry; grey did not help,
as each palette colour has its own grey level. With recolouring, object-level shape on val palette
images reached 0.70 on training pairs and 0.75 on held-out ones after 2400 steps. Two changes then
took it to 0.96 and 0.97 (3600 steps; 0.80 / 0.87 already at step 1000, where the first run was
still at chance): the cross-entropy weighs object and background patches alike (objects cover a
fifth of the patches, and background is told from colour alone), and 80% of the images are
recoloured instead of half (colour is learnt within 200 steps). Only training scenes are drawn:
held-out colour-shape pairs are never shown in palette colours.

The result is an EVA file, ``OUT/eva_vit.safetensors`` in EVA's key names, that a from-scratch
stage 1 loads with ``eva=FILE`` exactly like ``eva_vit_g.pth`` (last block dropped).

    minigptv2 pretrain-vision --out runs/shapes/stage0
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn import functional as F

from minigptv2.config import get_preset
from minigptv2.data.shapes import (
    HELD_OUT,
    PALETTE,
    SHAPES,
    WORLDS,
    Scene,
    make_split_scene,
    object_map,
    render,
)
from minigptv2.errors import ConfigError
from minigptv2.images import image_to_tensor
from minigptv2.model.vision import EvaViT
from minigptv2.train.optim import parameter_groups

VISION_FILE = "eva_vit.safetensors"
COLORS = tuple(PALETTE)
# A patch shows an object when the object covers at least this share of it; below that (a corner
# clipped by a small circle, say) it counts as background rather than as a guess.
MIN_COVER = 0.15
IGNORE = -100
# RGB distance below which a random colour counts as a palette colour (palette inks are >= 150
# apart), so recoloured images never show a held-out pair in anything like its colours.
FAR = 90.0


@dataclass(frozen=True)
class PerceptionConfig:
    """Stage 0: the preset's ViT (plus EVA's dropped last block) on dense Shapes labels."""

    model: str = "shapes"
    out_dir: str = "runs/shapes/stage0"
    # Object-level shape on val palette images (training / held-out pairs): 0.80 / 0.87 at step
    # 1000, 0.95 / 0.96 at 2400, 0.96 / 0.97 at 3600 (about 0.5 s a step on 2 AVX2 cores).
    steps: int = 3600
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    recolour: float = 0.8  # share of images drawn in random colours: shape targets, no colour
    world: str = "varied"
    seed: int = 0
    eval_every: int = 200
    eval_scenes: int = 200
    log_every: int = 100

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ConfigError(f"unknown Shapes world {self.world!r}; use one of {list(WORLDS)}")
        if not 0.0 < self.recolour < 1.0:
            raise ConfigError(
                f"recolour={self.recolour} is a share of images: use 0 < recolour < 1 (shape is"
                " learnt from recoloured images, colour from the others)"
            )
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be at least 1")


@dataclass
class PatchTargets:
    """Per-patch labels of a batch, patches in the ViT's raster order."""

    shape: Tensor  # (B, G*G) long: 0 background, 1 + index into SHAPES
    color: Tensor  # (B, G*G) long: 0 background, 1 + index into COLORS
    box: Tensor  # (B, G*G, 4) float: the object's box, x1 y1 x2 y2 as fractions of the image
    unseen: Tensor  # (B, G*G) bool: the patch shows an object of a held-out colour-shape pair
    owner: Tensor  # (B, G*G) long: index of that object in ``scene.objects``, -1 for background


def patch_targets(scene: Scene, image_size: int, patch_size: int) -> PatchTargets:
    """The labels of one scene squashed to ``image_size`` (as the processor squashes it)."""
    grid = image_size // patch_size
    owners = Image.fromarray(object_map(scene)).resize((image_size, image_size), Image.NEAREST)
    # (S, S) -> (G, P, G, P) -> (G*G, P*P): each row the pixels of one patch
    cells = (
        np.asarray(owners)
        .reshape(grid, patch_size, grid, patch_size)
        .transpose(0, 2, 1, 3)
        .reshape(grid * grid, patch_size * patch_size)
    )
    count = len(scene.objects)
    cover = (cells[:, :, None] == np.arange(1, count + 1)).sum(axis=1)  # (G*G, objects)
    owner = cover.argmax(axis=1)
    shown = cover.max(axis=1) >= MIN_COVER * patch_size * patch_size
    shape = np.zeros(grid * grid, dtype=np.int64)
    color = np.zeros(grid * grid, dtype=np.int64)
    box = np.zeros((grid * grid, 4), dtype=np.float32)
    unseen = np.zeros(grid * grid, dtype=bool)
    owner = np.where(shown, owner, -1)
    size = np.array([scene.width, scene.height] * 2, dtype=np.float32)
    for patch in np.flatnonzero(shown):
        obj = scene.objects[owner[patch]]
        shape[patch] = 1 + SHAPES.index(obj.shape)
        color[patch] = 1 + COLORS.index(obj.color)
        box[patch] = np.asarray(obj.box, dtype=np.float32) / size
        unseen[patch] = (obj.color, obj.shape) in HELD_OUT
    return PatchTargets(
        torch.from_numpy(shape),
        torch.from_numpy(color),
        torch.from_numpy(box),
        torch.from_numpy(unseen),
        torch.from_numpy(owner),
    )


def far_colour(rng: random.Random) -> tuple[int, int, int]:
    """A random colour far from every palette colour and from the light grey backgrounds."""
    while True:
        rgb = tuple(rng.randrange(256) for _ in range(3))
        near_palette = any(math.dist(rgb, ink) < FAR for ink in PALETTE.values())
        near_background = max(rgb) - min(rgb) < 40 and min(rgb) > 150
        if not near_palette and not near_background:
            return rgb  # type: ignore[return-value]


def make_batch(
    scenes: list[Scene],
    recoloured: list[bool],
    image_size: int,
    patch_size: int,
    rng: random.Random,
) -> tuple[Tensor, PatchTargets]:
    """Pixels ``(B, 3, S, S)`` and stacked targets. A recoloured image has shape targets and no
    colour target; a palette image has colour targets and no shape target on its objects."""
    pixels, targets = [], []
    for scene, recolour in zip(scenes, recoloured, strict=True):
        fills = [far_colour(rng) for _ in scene.objects] if recolour else None
        pixels.append(image_to_tensor(render(scene, fills), image_size))
        target = patch_targets(scene, image_size, patch_size)
        if recolour:
            target.color.fill_(IGNORE)
        else:
            target.shape[target.shape > 0] = IGNORE
        targets.append(target)
    return torch.stack(pixels), stack(targets)


def stack(targets: list[PatchTargets]) -> PatchTargets:
    fields = ("shape", "color", "box", "unseen", "owner")
    return PatchTargets(*(torch.stack([getattr(t, name) for t in targets]) for name in fields))


def palette_batch(
    scenes: list[Scene], image_size: int, patch_size: int
) -> tuple[Tensor, PatchTargets]:
    """Scenes as a user's images show them, with every target: what ``evaluate`` scores."""
    pixels = [image_to_tensor(render(scene), image_size) for scene in scenes]
    return torch.stack(pixels), stack([patch_targets(s, image_size, patch_size) for s in scenes])


class PerceptionHead(nn.Module):
    """Patch features -> shape logits, colour logits and the object's box, per patch."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.shape = nn.Linear(width, 1 + len(SHAPES))
        self.color = nn.Linear(width, 1 + len(COLORS))
        self.box = nn.Linear(width, 4)

    def forward(self, patches: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.norm(patches)
        return self.shape(x), self.color(x), torch.sigmoid(self.box(x))


def _balanced_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The mean over object patches plus the mean over background patches.

    Objects cover about a fifth of the patches, and background is told from colour alone: a plain
    mean gave shape, the slow skill, a fifth of the gradient.
    """
    labels = labels.flatten()
    per_patch = F.cross_entropy(logits.flatten(0, 1), labels, ignore_index=IGNORE, reduction="none")
    parts = [per_patch[mask].mean() for mask in (labels > 0, labels == 0) if mask.any()]
    return torch.stack(parts).sum() if parts else logits.sum() * 0


def losses(outputs: tuple[Tensor, Tensor, Tensor], targets: PatchTargets) -> dict[str, Tensor]:
    """Cross-entropy for shape and colour (objects and background weighted alike), L1 on the box
    where there is an object (in image fractions, so 0.01 is one step of the 0-100 box grid)."""
    shape_logits, color_logits, box = outputs
    shape = _balanced_cross_entropy(shape_logits, targets.shape)
    color = _balanced_cross_entropy(color_logits, targets.color)
    on_object = targets.shape > 0
    box_loss = (
        (box[on_object] - targets.box[on_object]).abs().mean() if on_object.any() else box.sum() * 0
    )
    return {"shape": shape, "color": color, "box": box_loss}


@torch.no_grad()
def evaluate(
    vit: EvaViT, head: PerceptionHead, pixels: Tensor, targets: PatchTargets
) -> dict[str, float]:
    """On palette images: shape per object (the mean of its patches' logits), for training and
    held-out colour-shape pairs; colour per object patch; the box error in 0-100 grid steps."""
    vit.eval()
    head.eval()
    shape_logits, color_logits, box = head(vit(pixels)[:, 1:])
    vit.train()
    head.train()
    on_object = targets.shape > 0
    right = {False: [], True: []}
    for image in range(len(pixels)):
        for index in targets.owner[image].unique().tolist():
            if index < 0:
                continue
            patches = targets.owner[image] == index
            guess = 1 + shape_logits[image][patches, 1:].mean(0).argmax()  # an object's shape
            truth = targets.shape[image][patches][0]
            right[bool(targets.unseen[image][patches][0])].append(float(guess == truth))
    return {
        "shape_seen": sum(right[False]) / max(1, len(right[False])),
        "shape_unseen": sum(right[True]) / max(1, len(right[True])),
        "color": (color_logits.argmax(-1) == targets.color)[on_object].float().mean().item(),
        "background": (shape_logits.argmax(-1) == 0)[~on_object].float().mean().item(),
        "box_error": 100 * (box[on_object] - targets.box[on_object]).abs().mean().item(),
    }


def learning_rate(config: PerceptionConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr``, measured from the end of warm-up.

    Not ``train.optim.learning_rate``, which follows the reference (warm-up from ``warmup_lr``,
    cosine from step 0): the shipped stage 0 was trained on this one.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def pretrain_vision(config: PerceptionConfig) -> Path:
    """Train stage 0 and write ``out_dir/eva_vit.safetensors``; returns its path.

    The file is written once, at the end, through a temporary name: a killed run leaves no
    half-written encoder (it is a few minutes' work, so it restarts rather than resumes).
    """
    vision = get_preset(config.model).vision
    stage0 = replace(vision, depth=vision.depth + 1)
    size, patch = stage0.image_size, stage0.patch_size
    world = WORLDS[config.world]
    torch.manual_seed(config.seed)
    vit, head = EvaViT(stage0), PerceptionHead(stage0.width)
    trained = nn.ModuleList([vit, head])
    optimizer = torch.optim.AdamW(
        parameter_groups(trained, config.weight_decay), lr=config.lr, foreach=True
    )
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perception_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    log = (out / "log.jsonl").open("w")
    val_rng = random.Random(f"perception-val-{config.seed}")
    val_scenes = [make_split_scene(val_rng, world, "val") for _ in range(config.eval_scenes)]
    val = palette_batch(val_scenes, size, patch)
    # The same scenes in random colours: shape as it is taught, to tell unlearnt from untransferred.
    val_recoloured = make_batch(val_scenes, [True] * len(val_scenes), size, patch, val_rng)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    for step in range(config.steps):
        scenes = [make_split_scene(rng, world, "train") for _ in range(config.batch_size)]
        recoloured = [rng.random() < config.recolour for _ in scenes]
        pixels, targets = make_batch(scenes, recoloured, size, patch, rng)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        parts = losses(head(vit(pixels)[:, 1:]), targets)
        # The box loss is in image fractions (~0.05 once learnt): weighted up to matter beside CE.
        loss = parts["shape"] + parts["color"] + 10.0 * parts["box"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        record: dict[str, float] = {}
        if done % config.log_every == 0 or done == config.steps:
            record = {key: round(value.item(), 4) for key, value in parts.items()}
        if done % config.eval_every == 0 or done == config.steps:
            record |= {f"val_{k}": round(v, 4) for k, v in evaluate(vit, head, *val).items()}
            recoloured = evaluate(vit, head, *val_recoloured)["shape_seen"]
            record["val_recoloured_shape"] = round(recoloured, 4)
        if record:
            record = {"step": done, "elapsed_s": round(time.perf_counter() - started, 1)} | record
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
    log.close()
    path = out / VISION_FILE
    partial = path.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(partial))
    partial.replace(path)
    return path
