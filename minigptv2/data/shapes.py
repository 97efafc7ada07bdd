"""Shapes: a synthetic world of coloured shapes with exact ground truth for all six tasks.

This is a project addition, not part of MiniGPT-v2 (arXiv 2310.09478). It exists so that the small
model shipped with the package can be trained on a 2-core CPU in under an hour and still show the
paper's behaviour end to end (image in, answer with a box out), and so that tests have data whose
answers are known exactly.

A scene is a 112 px square (8x8 patches of 14 px for the small model) holding 1-4 circles, squares
and triangles in red, green, blue or yellow on a lightly tinted, noisy background. A config may
also draw scenes of other sizes and aspect ratios (``ShapesConfig.varied``; the presets in
``WORLDS``): the model squashes every image to a square, as the reference does, and these teach and
test that; sizes, gaps and thresholds scale with the scene (see ``_frame``). Most scenes keep
the objects apart; a fraction (``ShapesConfig.overlap``) lets objects of different colours overlap,
later ones drawn on top, with every object still clearly visible (see ``MIN_VISIBLE_FRACTION``).
From the scene graph, one builder per task writes a sample with the reference instruction pools
(``minigptv2.tasks``) and the box grammar (``minigptv2.boxes``), exactly as the real datasets do, so
the model learns the paper's text format and nothing Shapes-specific.

What the data is designed against (the project's note ``shapes-calibration.md``): a naive model
learns to localise but never binds colour to objects. Hence attribute questions dominate VQA (colour
of a described shape, colour at a box, shape of a coloured object), "is there a red square?"
questions get "no" answers mostly from swapping the attributes of objects that are present (so
colour and shape must be bound to the same object), and captions and identify answers always name
the colour.

Conventions:

* Boxes are pixels ``(x1, y1, x2, y2)`` with exclusive ends (COCO's ``x + w``): they are the tight
  bounds of the object's VISIBLE pixels (what an annotator would draw around a partly hidden
  object), i.e. columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``.
* "Left to right" means by box centre x, then centre y; scenes store their objects in that order.
* VQA counts are digits ("2", VQAv2's normalisation); captions use words ("two blue squares").
* Relation questions ("is the red circle to the left of the blue square?", yes/no half each) name
  both objects by a (colour, shape) unique in the scene and compare visible-box centres; they are
  only asked along an axis where the centres are at least ``RELATION_GAP`` of the image's width
  (for left/right) or height (for above/below) apart.
* Referring expressions are the shortest unique one of "the circle", "the red circle" and "the red
  circle on the left | on the right | at the top | at the bottom" or a relation to a
  landmark named by a unique (colour, shape), "the red circle to the left of | to the right of |
  above | below the blue square"; objects no expression singles out are never referred to.
* Held-out splits test unseen combinations: a few (colour, shape) pairs (``HELD_OUT``) never occur
  in training scenes, and every val and test scene holds at least one of them; each colour and each
  shape is still seen in training with other partners. Val and test are split by a content hash,
  so no scene is shared between any two splits. The random stream of sample ``index`` of ``split``
  is seeded with the string ``f"{split}:{index}"`` (stable across processes, unlike ``hash()``).
* ``val-wide`` and ``test-wide`` are val and test scenes (same held-out rule, same hash buckets)
  drawn in the ``wide`` world, every scene 160-800 px a side with aspect 1:2 to 2:1, from their own
  streams (``"test-wide:{index}"``); ``SPLIT_WORLDS`` maps them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch.utils.data
from PIL import Image, ImageDraw

from minigptv2.boxes import box_to_text, phrase_to_text
from minigptv2.data.sample import Sample
from minigptv2.data.shapes_languages import ENGLISH, Lexicon, compose, languages, sample_lexicon
from minigptv2.errors import ConfigError
from minigptv2.prompts import Turn
from minigptv2.tasks import TASKS

SOURCE = "shapes"
SPLITS: tuple[str, ...] = ("train", "val", "test", "val-wide", "test-wide")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Saturated and far apart, and far from the greyish background: colour must be easy to see so that
# the only difficulty left is binding it to the right object.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (245, 210, 30),
}
PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in PALETTE for s in SHAPES)
# Caption counts in English (every lexicon has words up to the same count): "two blue squares".
NUMBER_WORDS: tuple[str, ...] = ENGLISH.numbers
# Position words pick the extreme object along an axis: (axis, sign), axis 0 = x, 1 = y.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "on the left": (0, -1),
    "on the right": (0, 1),
    "at the top": (1, -1),
    "at the bottom": (1, 1),
}
# "On the left" needs the object's centre to be this fraction of the image's width left of every
# look-alike's centre (10 px at 112 px), "at the top" this fraction of its height, so that no
# position word is a judgement call. Per axis, so that after squashing to a square it is always
# the same 10 px (and 9 cells of the per-axis box grid), whatever the aspect ratio.
RELATION_GAP = 0.09
CONVERSATION = "conversation"  # key of the multi-turn builder; not a task token
LANGUAGE = "language"  # key of the text-only builder; not a task token
# Samples that are whole rows of their own: packs hold single-task questions about an image only.
OWN_ROWS: tuple[str, ...] = (CONVERSATION, LANGUAGE)
# (colour, shape) pairs no training scene contains and every val/test scene does: a model must
# compose "blue" and "triangle", each learnt with other partners, to name a blue triangle.
HELD_OUT: tuple[tuple[str, str], ...] = (("blue", "triangle"), ("green", "circle"))
# A partly hidden object keeps at least this fraction of its own pixels, and its visible part spans
# at least MIN_VISIBLE_SIDE px each way (more than a 14 px patch) with as many pixels as a square of
# that side: it stays identifiable, and its visible box is a fair box to ask for. The side is for
# a scene of ``image_size``; other scenes scale it like the objects (``_frame``).
MIN_VISIBLE_FRACTION = 0.6
MIN_VISIBLE_SIDE = 16
_PLACEMENT_TRIES = 30  # random positions tried per object before a scene attempt is abandoned
_SCENE_ATTEMPTS = 200  # scene attempts before the configuration is declared unplaceable
_ANCHOR_CHANCE = 0.6  # in an overlap scene, chance that an object is placed across an earlier one
# Two objects' visible boxes may not overlap more than this (IoU), so each box names one object.
_MAX_BOX_IOU = 0.6

PixelBox = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapesConfig:
    """Sizes of the Shapes world; the defaults are the world of the shipped small model."""

    image_size: int = 112  # what the small model sees: 8x8 patches of 14 px
    min_objects: int = 1
    max_objects: int = 4
    min_object_size: int = 18  # ~1.3 patches: the smallest object still fills one patch
    max_object_size: int = 44  # ~3 patches; four such objects still fit in a 2x2 layout
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(PALETTE)
    gap: int = 4  # free pixels between any two objects' boxes, so that boxes never touch
    border: int = 2  # free pixels between an object and the image edge
    background_noise: int = 6  # amplitude of the uniform per-pixel noise on the background
    overlap: float = 0.25  # probability that a scene lets objects of different colours overlap
    held_out: tuple[tuple[str, str], ...] = HELD_OUT  # (colour, shape) pairs only val/test show
    # Scenes of other sizes: with probability ``varied`` a scene draws its aspect ratio (width /
    # height) log-uniformly from ``aspect``, then its longer side log-uniformly among those that
    # keep both sides within ``sides`` px; else it is the ``image_size`` square. At 0 nothing extra
    # is drawn, so the default scenes are exactly those of before this option.
    varied: float = 0.0
    sides: tuple[int, int] = (112, 448)
    aspect: tuple[float, float] = (0.5, 2.0)
    # The language of every text: "en", "ko" (data.shapes_languages.LEXICONS), or "en+ko", each
    # sample in one of them drawn by its index (``sample_lexicon``). Scenes do not depend on it.
    language: str = "en"

    def __post_init__(self) -> None:
        for name in ("image_size", "min_objects", "max_objects", "min_object_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ShapesConfig.{name} must be a positive integer, got {value!r}")
        for name in ("gap", "border", "background_noise"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"ShapesConfig.{name} must be an integer >= 0, got {value!r}")
        if not self.min_objects <= self.max_objects <= len(NUMBER_WORDS) - 1:
            raise ConfigError(
                f"ShapesConfig needs 1 <= min_objects <= max_objects <= {len(NUMBER_WORDS) - 1}, "
                f"got min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        if not self.min_object_size <= self.max_object_size:
            raise ConfigError(
                f"ShapesConfig.min_object_size ({self.min_object_size}) is larger than "
                f"max_object_size ({self.max_object_size}); swap them"
            )
        free = self.image_size - 2 * self.border
        if self.max_object_size > free:
            raise ConfigError(
                f"an object of max_object_size={self.max_object_size} px does not fit in a "
                f"{self.image_size} px image with border={self.border}; lower max_object_size "
                f"to at most {free}"
            )
        # Rejection sampling needs slack: the smallest objects must cover at most half the area.
        if self.max_objects * (self.min_object_size + self.gap) ** 2 > free**2 / 2:
            raise ConfigError(
                f"{self.max_objects} objects of {self.min_object_size} px (gap {self.gap}) crowd a "
                f"{self.image_size} px image; lower max_objects, min_object_size or gap"
            )
        if self.background_noise > 64:
            raise ConfigError(
                f"ShapesConfig.background_noise={self.background_noise} would make the background "
                "look like the shapes' colours; use at most 64"
            )
        _check_names("shapes", self.shapes, SHAPES)
        _check_names("colors", self.colors, tuple(PALETTE))
        languages(self.language)
        self._check_held_out()  # first: an impossible split is the more basic mistake
        self._check_overlap()
        self._check_varied()

    def _check_varied(self) -> None:
        if not isinstance(self.varied, int | float) or not 0 <= self.varied <= 1:
            raise ConfigError(
                f"ShapesConfig.varied is a probability in [0, 1], got {self.varied!r}"
            )
        sides, aspect = self.sides, self.aspect
        if not (
            isinstance(sides, tuple)
            and len(sides) == 2
            and all(isinstance(side, int) for side in sides)
            and 1 <= sides[0] <= sides[1]
        ):
            raise ConfigError(
                f"ShapesConfig.sides must be (smallest, largest) side in px, integers with "
                f"1 <= smallest <= largest, got {sides!r}"
            )
        if not (
            isinstance(aspect, tuple)
            and len(aspect) == 2
            and all(isinstance(value, int | float) for value in aspect)
            and 0 < aspect[0] <= aspect[1]
        ):
            raise ConfigError(
                f"ShapesConfig.aspect must be (lowest, highest) width / height with "
                f"0 < lowest <= highest, got {aspect!r}"
            )
        stretch = max(aspect[1], 1 / aspect[0])  # the longest side over the shortest
        if math.ceil(sides[0] * stretch - 1e-9) > sides[1]:
            raise ConfigError(
                f"ShapesConfig.sides={sides!r} cannot hold aspect={aspect!r}: a scene "
                f"{stretch:g} times as long as wide needs a largest side of at least "
                f"{math.ceil(sides[0] * stretch - 1e-9)} px; raise sides[1] or narrow aspect"
            )
        if sides[0] * self.min_object_size < 4 * self.image_size:
            raise ConfigError(
                f"ShapesConfig.sides[0]={sides[0]} px shrinks the smallest objects "
                f"({self.min_object_size} px at image_size={self.image_size}) below 4 px; raise "
                f"sides[0] to at least {math.ceil(4 * self.image_size / self.min_object_size)}"
            )

    def _check_overlap(self) -> None:
        if not isinstance(self.overlap, int | float) or not 0 <= self.overlap <= 1:
            raise ConfigError(
                f"ShapesConfig.overlap is a probability in [0, 1], got {self.overlap!r}"
            )
        if self.overlap == 0:
            return
        # Only objects of different colours overlap (same-coloured ones would merge into one blob),
        # and a hidden part needs room: a covered object keeps MIN_VISIBLE_SIDE px each way.
        if self.max_objects < 2 or len(self.colors) < 2:
            raise ConfigError(
                f"ShapesConfig.overlap={self.overlap} needs max_objects >= 2 and two colours "
                f"(got {self.max_objects} and {self.colors!r}); set overlap=0.0"
            )
        if self.max_object_size < 2 * MIN_VISIBLE_SIDE:
            raise ConfigError(
                f"ShapesConfig.overlap={self.overlap} needs max_object_size >= "
                f"{2 * MIN_VISIBLE_SIDE} px so that a partly hidden object stays visible; raise "
                "max_object_size or set overlap=0.0"
            )

    def _check_held_out(self) -> None:
        pairs = self.held_out
        if not all(
            isinstance(pair, tuple) and len(pair) == 2 and pair[0] in PALETTE and pair[1] in SHAPES
            for pair in pairs
        ):
            raise ConfigError(
                f"ShapesConfig.held_out must be (colour, shape) pairs from {tuple(PALETTE)} x "
                f"{SHAPES}, got {pairs!r}"
            )
        drawable = [(c, s) for c, s in pairs if c in self.colors and s in self.shapes]
        if not drawable:
            raise ConfigError(
                f"no held_out pair of {pairs!r} can be drawn with colors={self.colors!r} and "
                f"shapes={self.shapes!r}, so val and test would be empty; hold out pairs of "
                f"these, e.g. held_out=(({self.colors[0]!r}, {self.shapes[0]!r}),)"
            )
        # Train must still show every colour and shape, each with some partner not held out.
        for color in self.colors:
            if all((color, shape) in pairs for shape in self.shapes):
                raise ConfigError(
                    f"held_out={pairs!r} holds out every shape in {color}, so training would "
                    f"never show {color}; hold out fewer pairs or add shapes"
                )
        for shape in self.shapes:
            if all((color, shape) in pairs for color in self.colors):
                raise ConfigError(
                    f"held_out={pairs!r} holds out every colour of the {shape}, so training "
                    f"would never show a {shape}; hold out fewer pairs or add colours"
                )


def _check_names(field: str, names: tuple[str, ...], known: tuple[str, ...]) -> None:
    if not names or len(set(names)) != len(names) or not set(names) <= set(known):
        raise ConfigError(
            f"ShapesConfig.{field} must be a non-empty tuple of distinct names from {known}, "
            f"got {names!r}"
        )


# Named worlds. Cost of one sample (make_sample of the default mix, mean over 300 train samples,
# OMP_NUM_THREADS=1 on this project's 2-core machine while a training run shared it): square
# 1.6 ms, varied 3.1 ms, wide 9.0 ms (11.6 ms for test-wide, which redraws scenes until one is a
# test scene). The background noise of a scene's W x H x 3 pixels is most of it; the scene graph
# and the shapes cost about the same at any size.
WORLDS: dict[str, ShapesConfig] = {
    # The shipped model's world: every scene the 112 px square.
    "square": ShapesConfig(),
    # Training: half the scenes square, half 112-448 px a side at aspect 1:2 to 2:1 (a user's
    # photo is rarely square); the sides stay small so that rendering stays cheap.
    "varied": ShapesConfig(varied=0.5, sides=(112, 448), aspect=(0.5, 2.0)),
    # The benchmark's val-wide and test-wide splits: every scene of a random size and aspect,
    # 160-800 px a side (beyond training's sides: it tests reading squashed scenes, not sizes).
    "wide": ShapesConfig(varied=1.0, sides=(160, 800), aspect=(0.5, 2.0)),
}
# Splits drawn in another world: split -> (the held-out split whose scenes it keeps, world).
SPLIT_WORLDS: dict[str, tuple[str, str]] = {
    "val-wide": ("val", "wide"),
    "test-wide": ("test", "wide"),
}


# --------------------------------------------------------------------------------------------------
# Scenes and rendering
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeObject:
    """One drawn shape; ``box`` is the tight pixel bounds ``(x1, y1, x2, y2)`` of its visible
    pixels, ends exclusive.

    ``drawn`` is the whole shape's bounds when later objects hide part of it and change its box
    (None: the shape fills ``box``); ``layer`` orders drawing, higher on top.
    """

    shape: str
    color: str
    box: PixelBox
    drawn: PixelBox | None = None
    layer: int = 0

    @property
    def outline(self) -> PixelBox:
        """The bounds the whole shape is drawn in, hidden parts included."""
        return self.box if self.drawn is None else self.drawn

    @property
    def name(self) -> str:
        """``"red circle"``: what identify answers and captions call the object."""
        return f"{self.color} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2, (y1 + y2) / 2)

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "box": self.box}


@dataclass(frozen=True)
class Scene:
    """A scene graph: objects left to right, and a background colour with seeded noise."""

    width: int
    height: int
    objects: tuple[ShapeObject, ...]
    background: tuple[int, int, int]
    noise: int = 0
    noise_seed: int = 0


def _left_to_right(obj: ShapeObject) -> tuple[float, float]:
    return (obj.center[0], obj.center[1])


def _apart(a: PixelBox, b: PixelBox, gap: int) -> bool:
    """True when at least ``gap`` free pixels separate the boxes horizontally or vertically."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


@dataclass(frozen=True)
class _Frame:
    """The pixel sizes one scene is drawn with: the config's, scaled to the scene (``_frame``)."""

    width: int
    height: int
    min_size: int
    max_size: int
    gap: int
    border: int
    min_visible_side: int


def _frame(config: ShapesConfig, width: int, height: int) -> _Frame:
    """Object sizes, gap, border and MIN_VISIBLE_SIDE scaled by the scene's shorter side over
    ``config.image_size`` (the ``image_size`` square keeps the config's numbers exactly).

    Why the shorter side: a W x H scene with W >= H holds an H x H square, and in that square the
    scaled world is today's 112 px world enlarged, so every layout that fits today fits here too
    (a 2:1 scene has room for twice as many objects) and the visible-pixel rules keep their
    meaning. Squashed to 112 x 112 for the model, an object keeps today's size along the scene's
    shorter axis and is ``H / W`` as long along the other (at 2:1 the smallest object is 18 x 9
    px): that squash is what varied scenes teach. Scaling by the longer side would put objects of
    up to 88 px in a 224 x 112 scene; by the geometric mean, 62 px, of which four fit neither in
    one row nor in two.
    """
    scale = min(width, height) / config.image_size
    border = round(config.border * scale)
    max_size = min(round(config.max_object_size * scale), min(width, height) - 2 * border)
    return _Frame(
        width=width,
        height=height,
        min_size=min(max(1, round(config.min_object_size * scale)), max_size),
        max_size=max_size,
        gap=round(config.gap * scale),
        border=border,
        min_visible_side=max(1, round(MIN_VISIBLE_SIDE * scale)),
    )


def _scene_size(rng: random.Random, config: ShapesConfig) -> tuple[int, int]:
    """(width, height) of a varied scene: aspect log-uniform in ``config.aspect``, then the longer
    side log-uniform over those that keep the shorter one within ``config.sides``."""
    low, high = (math.log(value) for value in config.aspect)
    aspect = math.exp(rng.uniform(low, high))
    stretch = max(aspect, 1 / aspect)
    shortest = min(math.ceil(config.sides[0] * stretch - 1e-9), config.sides[1])
    longer = round(math.exp(rng.uniform(math.log(shortest), math.log(config.sides[1]))))
    # Rounded up, so that longer / shorter never exceeds the drawn aspect (nor its range).
    shorter = max(config.sides[0], math.ceil(longer / stretch - 1e-9))
    return (longer, shorter) if aspect >= 1 else (shorter, longer)


def _place(rng: random.Random, frame: _Frame, count: int) -> list[PixelBox] | None:
    boxes: list[PixelBox] = []
    for _ in range(count):
        size = rng.randint(frame.min_size, frame.max_size)
        for _ in range(_PLACEMENT_TRIES):
            x1 = rng.randint(frame.border, frame.width - frame.border - size)
            y1 = rng.randint(frame.border, frame.height - frame.border - size)
            box = (x1, y1, x1 + size, y1 + size)
            if all(_apart(box, other, frame.gap) for other in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: PixelBox, fill: Any) -> None:
    """Draw one shape filling exactly the bounds ``box`` (the renderer and the masks share it)."""
    x1, y1, x2, y2 = box
    # PIL's corners are inclusive, our ends exclusive; these fill exactly the box's bounds.
    corners = (x1, y1, x2 - 1, y2 - 1)
    if shape == "circle":
        draw.ellipse(corners, fill=fill)
    elif shape == "square":
        draw.rectangle(corners, fill=fill)
    else:  # triangle, apex up
        draw.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=fill)


def shape_mask(shape: str, box: PixelBox, width: int, height: int | None = None) -> np.ndarray:
    """The pixels a shape drawn alone in ``box`` covers, as a ``height`` x ``width`` boolean array
    (``height`` defaults to ``width``)."""
    image = Image.new("L", (width, width if height is None else height), 0)
    _draw(ImageDraw.Draw(image), shape, box, 255)
    return np.asarray(image) > 0


def _mask_bounds(mask: np.ndarray) -> PixelBox:
    columns, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)


def _visible_enough(visible: np.ndarray, whole: int, side: int) -> bool:
    """A partly hidden object keeps MIN_VISIBLE_FRACTION of its ``whole`` pixels, and its visible
    part spans ``side`` px each way (MIN_VISIBLE_SIDE, scaled) with at least ``side ** 2``
    pixels."""
    count = int(np.count_nonzero(visible))
    if count == whole:
        return True
    if count < max(MIN_VISIBLE_FRACTION * whole, side**2):
        return False
    x1, y1, x2, y2 = _mask_bounds(visible)
    return min(x2 - x1, y2 - y1) >= side


def _iou(a: PixelBox, b: PixelBox) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _intersect(a: PixelBox, b: PixelBox) -> bool:
    return not _apart(a, b, 0)


@dataclass
class _Layer:
    """An object being placed in an overlap scene: its whole shape and what is still visible.

    Mutable on purpose: ``visible`` shrinks as later objects are put on top.
    """

    shape: str
    color: str
    box: PixelBox
    mask: np.ndarray
    whole: int
    visible: np.ndarray


def _candidate_box(
    rng: random.Random, frame: _Frame, size: int, layers: Sequence[_Layer], color: str
) -> PixelBox:
    """A random box; often one across an earlier object of another colour, so overlaps happen."""
    low = frame.border
    high_x, high_y = frame.width - frame.border - size, frame.height - frame.border - size
    anchors = [layer for layer in layers if layer.color != color]
    if anchors and rng.random() < _ANCHOR_CHANCE:
        ax1, ay1, ax2, ay2 = rng.choice(anchors).box
        x1 = rng.randint(max(low, ax1 - size + 1), min(high_x, ax2 - 1))
        y1 = rng.randint(max(low, ay1 - size + 1), min(high_y, ay2 - 1))
    else:
        x1, y1 = rng.randint(low, high_x), rng.randint(low, high_y)
    return (x1, y1, x1 + size, y1 + size)


def _cover(
    layers: Sequence[_Layer], mask: np.ndarray, box: PixelBox, side: int
) -> list[np.ndarray] | None:
    """What stays visible of each earlier layer under a new shape on top, or None if any of them
    would no longer be clearly visible (``side``: the scene's minimum visible side)."""
    visible = []
    for layer in layers:
        if not _intersect(layer.box, box):
            visible.append(layer.visible)
            continue
        left = layer.visible & ~mask
        if not _visible_enough(left, layer.whole, side):
            return None
        visible.append(left)
    return visible


def _place_layer(
    rng: random.Random, frame: _Frame, layers: list[_Layer], shape: str, color: str
) -> bool:
    """Put one more object on top of ``layers``; False when no tried position keeps all visible."""
    size = rng.randint(frame.min_size, frame.max_size)
    for _ in range(_PLACEMENT_TRIES):
        box = _candidate_box(rng, frame, size, layers, color)
        # Same colours never touch: overlapping, they would merge into one blob.
        if not all(_apart(box, o.box, frame.gap) for o in layers if o.color == color):
            continue
        mask = shape_mask(shape, box, frame.width, frame.height)
        visible = _cover(layers, mask, box, frame.min_visible_side)
        if visible is None:
            continue
        for layer, left in zip(layers, visible, strict=True):
            layer.visible = left
        whole = int(np.count_nonzero(mask))
        layers.append(_Layer(shape, color, box, mask, whole, mask))
        return True
    return False


def _overlapping_objects(
    rng: random.Random, config: ShapesConfig, frame: _Frame
) -> list[ShapeObject] | None:
    """One attempt at an overlap scene: 2+ objects, at least one partly hidden, or None."""
    count = rng.randint(max(2, config.min_objects), config.max_objects)
    kinds = [(rng.choice(config.shapes), rng.choice(config.colors)) for _ in range(count)]
    layers: list[_Layer] = []
    for shape, color in kinds:
        if not _place_layer(rng, frame, layers, shape, color):
            return None
    if all(int(np.count_nonzero(layer.visible)) == layer.whole for layer in layers):
        return None  # nothing ended up hidden: not an overlap scene
    objects = []
    for index, layer in enumerate(layers):
        box = _mask_bounds(layer.visible)
        drawn = None if box == layer.box else layer.box
        objects.append(ShapeObject(layer.shape, layer.color, box, drawn, layer=index))
    # Each visible box must point at one object (identify and "the object at <box>" ask by box).
    if any(_iou(a.box, b.box) > _MAX_BOX_IOU for i, a in enumerate(objects) for b in objects[:i]):
        return None
    return objects


def _apart_objects(
    rng: random.Random, config: ShapesConfig, frame: _Frame
) -> list[ShapeObject] | None:
    """One attempt at a scene whose objects' boxes keep ``gap`` px apart, or None."""
    count = rng.randint(config.min_objects, config.max_objects)
    for _ in range(_SCENE_ATTEMPTS):
        boxes = _place(rng, frame, count)
        if boxes is not None:
            return [
                ShapeObject(rng.choice(config.shapes), rng.choice(config.colors), b) for b in boxes
            ]
    return None


def make_scene(rng: random.Random, config: ShapesConfig) -> Scene:
    """Draw a scene: with probability ``config.varied`` of a random size and aspect ratio, else
    the ``image_size`` square; with probability ``config.overlap`` one whose objects partly
    overlap, else one whose objects keep apart; sizes and positions by rejection sampling."""
    # No draw at all when varied (overlap) is 0, so that setting reproduces the scenes of before.
    if config.varied > 0 and rng.random() < config.varied:
        width, height = _scene_size(rng, config)
    else:
        width = height = config.image_size
    frame = _frame(config, width, height)
    if config.overlap > 0 and rng.random() < config.overlap:
        for _ in range(_SCENE_ATTEMPTS):
            objects = _overlapping_objects(rng, config, frame)
            if objects is not None:
                break
    else:
        objects = _apart_objects(rng, config, frame)
    if objects is None:
        raise ConfigError(
            f"could not place {config.min_objects}-{config.max_objects} objects of "
            f"{frame.min_size}-{frame.max_size} px in a {width} x {height} px "
            f"image after {_SCENE_ATTEMPTS} attempts; lower max_objects or max_object_size"
        )
    # A light, desaturated tint: never close to a palette colour.
    grey = rng.randint(180, 235)
    red, green, blue = (min(255, grey + rng.randint(-12, 12)) for _ in range(3))
    return Scene(
        width=width,
        height=height,
        objects=tuple(sorted(objects, key=_left_to_right)),
        background=(red, green, blue),
        noise=config.background_noise,
        noise_seed=rng.getrandbits(32),
    )


def scene_split(scene: Scene, config: ShapesConfig | None = None) -> str:
    """The split a scene belongs to: train without a held-out (colour, shape) pair, else val or
    test by a stable hash of its objects (shape, colour, box)."""
    held_out = HELD_OUT if config is None else config.held_out
    if not any((obj.color, obj.shape) in held_out for obj in scene.objects):
        return "train"
    content = repr([(obj.shape, obj.color, obj.box) for obj in scene.objects]).encode()
    bucket = int.from_bytes(hashlib.blake2b(content, digest_size=8).digest(), "big")
    return "val" if bucket % 2 == 0 else "test"


def split_config(split: str, config: ShapesConfig) -> ShapesConfig:
    """The config scenes of ``split`` are drawn with: ``config`` itself, or for a split of
    ``SPLIT_WORLDS`` its world's scene sizes (``varied``, ``sides``, ``aspect``) and the rest of
    ``config`` (objects, colours, held-out pairs)."""
    if split not in SPLIT_WORLDS:
        return config
    world = WORLDS[SPLIT_WORLDS[split][1]]
    return replace(config, varied=world.varied, sides=world.sides, aspect=world.aspect)


def make_split_scene(rng: random.Random, config: ShapesConfig, split: str) -> Scene:
    """Draw scenes until one belongs to ``split``; no image is ever shared between splits.

    ``ShapesConfig`` validation guarantees every split can be drawn; about 65% of default scenes
    are train scenes and 17% each val and test ones, so this takes a few cheap draws at most. A
    ``SPLIT_WORLDS`` split draws its world's scenes and keeps those of its held-out split.
    """
    held_out_split = SPLIT_WORLDS[split][0] if split in SPLIT_WORLDS else split
    config = split_config(split, config)
    while True:
        scene = make_scene(rng, config)
        if scene_split(scene, config) == held_out_split:
            return scene


def render(scene: Scene, fills: Sequence[tuple[int, int, int]] | None = None) -> Image.Image:
    """The scene as an RGB image: noisy background, shapes in flat palette colours (or
    ``fills[i]`` for ``scene.objects[i]``), drawn in layer order (later layers on top)."""
    # int16 keeps this cheap (it is most of a sample's cost) and cannot overflow before the clip.
    pixels = np.random.default_rng(scene.noise_seed).integers(
        0, 2 * scene.noise, size=(scene.height, scene.width, 3), endpoint=True, dtype=np.int16
    )
    pixels += np.asarray(scene.background, dtype=np.int16) - scene.noise
    image = Image.fromarray(pixels.clip(0, 255, out=pixels).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for index, obj in _drawing_order(scene):
        _draw(draw, obj.shape, obj.outline, PALETTE[obj.color] if fills is None else fills[index])
    return image


def _drawing_order(scene: Scene) -> list[tuple[int, ShapeObject]]:
    """``(index, object)`` of the scene's objects in layer order, later layers on top."""
    return sorted(enumerate(scene.objects), key=lambda item: item[1].layer)


def object_map(scene: Scene) -> np.ndarray:
    """Which object each pixel shows, as ``render`` draws them: an ``(height, width)`` uint8 array,
    0 for background and ``i + 1`` for ``scene.objects[i]`` (later layers on top)."""
    image = Image.new("L", (scene.width, scene.height), 0)
    draw = ImageDraw.Draw(image)
    for index, obj in _drawing_order(scene):
        _draw(draw, obj.shape, obj.outline, index + 1)
    return np.asarray(image)


# --------------------------------------------------------------------------------------------------
# Language about a scene
# --------------------------------------------------------------------------------------------------


def relation_gaps(scene: Scene) -> tuple[float, float]:
    """The margins (x, y) in px that position and relation words need: ``RELATION_GAP`` of the
    scene's width along x and of its height along y."""
    return (RELATION_GAP * scene.width, RELATION_GAP * scene.height)


def _directions_singling_out(
    target: ShapeObject, group: Sequence[ShapeObject], gap: tuple[float, float]
):
    """Position words under which ``target`` is clearly the extreme member of ``group``."""
    others = [obj for obj in group if obj is not target]
    return [
        words
        for words, (axis, sign) in DIRECTIONS.items()
        if all(sign * (target.center[axis] - obj.center[axis]) >= gap[axis] for obj in others)
    ]


# Relation words of VQA questions and referring expressions: (axis, sign) of the subject's centre
# minus the landmark's.
RELATIONS: dict[str, tuple[int, int]] = {
    "to the left of": (0, -1),
    "to the right of": (0, 1),
    "above": (1, -1),
    "below": (1, 1),
}


def clear_relations(
    subject: ShapeObject, landmark: ShapeObject, gap: tuple[float, float]
) -> list[str]:
    """The relation words true of ``subject`` against ``landmark``: their visible-box centres must
    be at least ``gap[axis]`` px apart along the word's axis (``relation_gaps``), so that no
    answer is a judgement call."""
    return [
        words
        for words, (axis, sign) in RELATIONS.items()
        if sign * (subject.center[axis] - landmark.center[axis]) >= gap[axis]
    ]


def _relations_singling_out(
    target: ShapeObject, group: Sequence[ShapeObject], scene: Scene, gap: tuple[float, float]
) -> list[tuple[str, ShapeObject]]:
    """(relation, landmark) for "to the left of the blue square" and the like: relations to a
    landmark whose (colour, shape) is unique in ``scene`` that ``target`` clearly has, while every
    other member of ``group`` is not past the landmark in that direction at all (so the two
    differ by the whole margin)."""
    found = []
    for landmark in scene.objects:
        if sum(obj.name == landmark.name for obj in scene.objects) != 1 or landmark is target:
            continue
        for words in clear_relations(target, landmark, gap):
            axis, sign = RELATIONS[words]
            others = [obj for obj in group if obj is not target]
            if all(sign * (obj.center[axis] - landmark.center[axis]) <= 0 for obj in others):
                found.append((words, landmark))
    return found


def referring_expression(
    target: ShapeObject,
    scene: Scene,
    rng: random.Random,
    *,
    use_color: bool = True,
    use_shape: bool = True,
    lexicon: Lexicon = ENGLISH,
) -> str | None:
    """The shortest expression that picks ``target`` alone out of ``scene``, or None.

    With both attributes: "the circle", else "the red circle", else "the red circle on the left"
    or "the red circle to the left of the blue square" (a relation to a uniquely named landmark
    that no other red circle has; a random one of all that apply). Without colour (to ask
    for it): "the circle", "the circle on the left". Without shape: "the red object", "the red
    object on the left". In Korean: 원, 빨간 원, 왼쪽에 있는 빨간 원,
    파란 사각형 왼쪽에 있는 빨간 원.
    """
    same_shape = [obj for obj in scene.objects if obj.shape == target.shape]
    same_color = [obj for obj in scene.objects if obj.color == target.color]
    same_both = [obj for obj in same_shape if obj.color == target.color]
    words = lexicon.patterns
    if use_shape and use_color:
        levels = [
            (lexicon.shapes[target.shape], same_shape),
            (lexicon.name(target.color, target.shape), same_both),
        ]
    elif use_shape:
        levels = [(lexicon.shapes[target.shape], same_shape)]
    elif use_color:
        colored = compose(words["colored_object"], color=lexicon.colors[target.color])
        levels = [(colored, same_color)]
    else:
        raise ValueError("a referring expression needs colour, shape or both")
    for noun, group in levels:
        if len(group) == 1:
            return compose(words["the"], noun=noun)
    noun, group = levels[-1]
    expression = compose(words["the"], noun=noun)
    gap = relation_gaps(scene)
    places: list[tuple[str, ShapeObject | None]] = [
        (direction, None) for direction in _directions_singling_out(target, group, gap)
    ]
    if use_color and use_shape:
        # A landmark names other objects' colours and shapes, so only the full form may use one.
        places += _relations_singling_out(target, group, scene, gap)
    if not places:
        return None
    place, landmark = rng.choice(places)
    if landmark is None:
        return compose(
            words["positioned"], expression=expression, direction=lexicon.directions[place]
        )
    return compose(
        words["related"],
        expression=expression,
        relation=lexicon.relations[place],
        landmark=_definite_name(landmark, lexicon),
    )


def _definite_name(obj: ShapeObject, lexicon: Lexicon) -> str:
    """``the red circle`` / ``빨간 원``."""
    return compose(lexicon.patterns["the"], noun=lexicon.name(obj.color, obj.shape))


def describe_groups(
    objects: Sequence[ShapeObject], lexicon: Lexicon = ENGLISH
) -> list[tuple[str, list[ShapeObject]]]:
    """Noun phrases for the objects, look-alikes grouped: [("two blue squares", [obj, obj]), ...]
    (``파란 사각형 두 개``).

    Groups are ordered by their leftmost member, so the order follows the objects' order.
    """
    groups: dict[tuple[str, str], list[ShapeObject]] = {}
    for obj in objects:
        groups.setdefault((obj.color, obj.shape), []).append(obj)
    return [
        (lexicon.counted(lexicon.name(*pair), len(members)), members)
        for pair, members in groups.items()
    ]


def join_phrases(parts: Sequence[str], lexicon: Lexicon = ENGLISH) -> str:
    """Join noun phrases: ``a``, ``a and b``, ``a, b and c`` (``a와 b``, ``a, b와 c``)."""
    return lexicon.join(list(parts))


def caption(scene: Scene, lexicon: Lexicon = ENGLISH) -> str:
    """The caption, e.g. ``a red circle and two blue squares``, left to right."""
    return join_phrases([phrase for phrase, _ in describe_groups(scene.objects, lexicon)], lexicon)


def _left_to_right_boxes(objects: Sequence[ShapeObject]) -> list[PixelBox]:
    return [obj.box for obj in sorted(objects, key=_left_to_right)]


# --------------------------------------------------------------------------------------------------
# Sample builders, one per task
# --------------------------------------------------------------------------------------------------
#
# Every builder is ``(scene, rng, lexicon) -> Sample``; the lexicon (``shapes_languages``) words
# what the builder decides, and the draws from ``rng`` do not depend on it. ``targets`` holds:
#   "objects":  [{"shape", "color", "box"}] left to right (boxes in pixels, ends exclusive)
#   "answer":   the expected answer text
#   "kind":     which question form was used (e.g. "count_color", "caption_to_phrases")
#   "language": the lexicon's code, "en" or "ko" (what the answer is scored as)
# and, where the task has them: "boxes" (the boxes in the answer or the question, in pixels),
# "phrases" ([(phrase, [box, ...])] for grounding and detection), "object" (index into
# "objects"), "expression", "question", "count" and "named" ([colour, shape] a count or existence
# question names, None for any) (VQA); conversations hold "tasks" and "turns".


class _NothingToAsk(Exception):
    """The scene offers no valid question of the requested task (e.g. nothing is referable)."""


def _sample(
    scene: Scene,
    task: str | None,
    instruction: str,
    answer: str,
    lexicon: Lexicon,
    **targets: Any,
) -> Sample:
    targets = {
        "objects": [obj.to_json() for obj in scene.objects],
        "answer": answer,
        **targets,
        "language": lexicon.code,
    }
    return Sample(_rendered(scene).copy(), (Turn(instruction, answer),), task, SOURCE, targets)


@functools.lru_cache(maxsize=1)
def _rendered(scene: Scene) -> Image.Image:
    """``render(scene)`` of the scene asked about last: a pack asks several questions about one
    scene, and rendering (its background noise) is most of a sample's cost. Callers copy it."""
    return render(scene)


def _referable(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH, **attributes: bool):
    """(index, object, expression) for every object some expression singles out."""
    found = []
    for index, obj in enumerate(scene.objects):
        expression = referring_expression(obj, scene, rng, lexicon=lexicon, **attributes)
        if expression is not None:
            found.append((index, obj, expression))
    return found


def build_refer(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[refer] where is the red circle ?`` -> ``{<x1><y1><x2><y2>}``."""
    candidates = _referable(scene, rng, lexicon)
    if not candidates:
        raise _NothingToAsk("no object has a unique referring expression")
    index, obj, expression = rng.choice(candidates)
    instruction = lexicon.fill(rng.choice(lexicon.pools["refer"]), expression)
    answer = box_to_text(obj.box, scene.width, scene.height)
    return _sample(
        scene,
        "refer",
        instruction,
        answer,
        lexicon,
        kind="refer",
        object=index,
        expression=expression,
        boxes=[obj.box],
    )


def build_identify(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[identify] what is it in {<..>}`` -> ``red circle``."""
    index = rng.randrange(len(scene.objects))
    obj = scene.objects[index]
    box = box_to_text(obj.box, scene.width, scene.height)
    instruction = lexicon.fill(rng.choice(lexicon.pools["identify"]), box)
    answer = lexicon.name(obj.color, obj.shape)
    return _sample(
        scene, "identify", instruction, answer, lexicon, kind="identify", object=index,
        boxes=[obj.box],
    )  # fmt: skip


# VQA question kinds: each returns (question, answer, extra targets) or None when the scene does not
# allow it (then another kind is drawn). Counting and existence questions record the (colour,
# shape) they name in "named" (None: any), so that scoring need not read the question's words.
_Question = tuple[str, str, dict[str, Any]] | None


def _present_or_any(rng: random.Random, present: Sequence[str], every: Sequence[str]) -> str:
    # Mostly ask about what is there (answer > 0), sometimes about anything (answer often 0).
    return rng.choice(present) if rng.random() < 0.7 else rng.choice(every)


def _nameable_pairs(scene: Scene) -> list[tuple[str, str]]:
    """The (colour, shape) pairs a question about ``scene`` may name, present or not.

    A training scene never shows a held-out pair, so a question naming one there is always
    answered "no" or "0": the model would learn that answer from the words alone, and then deny a
    held-out object that val and test show it (existence on them: 3 of 14 right, session 13).
    Such scenes leave the held-out pairs out; scenes that show one (val, test) name any pair, so
    their questions are unchanged."""
    if any((obj.color, obj.shape) in HELD_OUT for obj in scene.objects):
        return list(PAIRS)
    return [pair for pair in PAIRS if pair not in HELD_OUT]


def _count(lexicon: Lexicon, kind: str, count: int, named: list[str | None], **words: str):
    question = compose(lexicon.patterns[kind], **words)
    return question, lexicon.count_answers[count], {"count": count, "named": named}


def _count_all(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    return _count(lexicon, "count_all", len(scene.objects), [None, None])


def _count_color(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    color = _present_or_any(rng, [obj.color for obj in scene.objects], tuple(PALETTE))
    count = sum(obj.color == color for obj in scene.objects)
    return _count(lexicon, "count_color", count, [color, None], color=lexicon.colors[color])


def _count_shape(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    shape = _present_or_any(rng, [obj.shape for obj in scene.objects], SHAPES)
    count = sum(obj.shape == shape for obj in scene.objects)
    return _count(lexicon, "count_shape", count, [None, shape], shape=lexicon.shapes[shape])


def _count_color_shape(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    every = [f"{color} {shape}" for color, shape in _nameable_pairs(scene)]
    color, shape = _present_or_any(rng, [obj.name for obj in scene.objects], every).split()
    count = sum((obj.color, obj.shape) == (color, shape) for obj in scene.objects)
    name = lexicon.name(color, shape)
    return _count(lexicon, "count_color_shape", count, [color, shape], name=name)


def _color_of(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    candidates = _referable(scene, rng, lexicon, use_color=False)
    if not candidates:
        return None
    index, obj, expression = rng.choice(candidates)
    question = compose(lexicon.patterns["color_of"], expression=expression)
    return question, lexicon.color_answers[obj.color], {"object": index, "expression": expression}


def _shape_of(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    candidates = _referable(scene, rng, lexicon, use_shape=False)
    if not candidates:
        return None
    index, obj, expression = rng.choice(candidates)
    question = compose(lexicon.patterns["shape_of"], expression=expression)
    return question, lexicon.shapes[obj.shape], {"object": index, "expression": expression}


def _color_at_box(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    index = rng.randrange(len(scene.objects))
    obj = scene.objects[index]
    box = box_to_text(obj.box, scene.width, scene.height)
    question = compose(lexicon.patterns["color_at_box"], box=box)
    return question, lexicon.color_answers[obj.color], {"object": index, "boxes": [obj.box]}


def _exists(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    present = {(obj.color, obj.shape) for obj in scene.objects}
    if rng.random() < 0.5:
        color, shape = rng.choice(sorted(present))
        answer = lexicon.yes
    else:
        # Hard negatives: a present colour with a present shape it does not come in, so the
        # question can only be answered by binding colour and shape to the same object.
        absent = [pair for pair in _nameable_pairs(scene) if pair not in present]
        colors, shapes = {c for c, _ in present}, {s for _, s in present}
        swapped = [(c, s) for c, s in absent if c in colors and s in shapes]
        color, shape = rng.choice(swapped if swapped and rng.random() < 0.7 else absent)
        answer = lexicon.no
    question = compose(lexicon.patterns["exists"], name=lexicon.name(color, shape))
    return question, answer, {"named": [color, shape]}


def _relation(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Question:
    # Both objects are named by colour and shape, and only objects whose (colour, shape) is unique
    # take part: the question binds attributes to two objects before comparing their positions.
    named = [
        (index, obj)
        for index, obj in enumerate(scene.objects)
        if sum(other.name == obj.name for other in scene.objects) == 1
    ]
    gap = relation_gaps(scene)
    pairs = [
        (a, b, relations)
        for a in named
        for b in named
        if a[0] != b[0] and (relations := clear_relations(a[1], b[1], gap))
    ]
    if not pairs:
        return None
    (i, subject), (j, landmark), relations = rng.choice(pairs)
    true = rng.choice(relations)
    # Half the questions ask the true relation, half its opposite on the same (clear) axis.
    if rng.random() < 0.5:
        words, answer = true, lexicon.yes
    else:
        axis, sign = RELATIONS[true]
        words = next(w for w, (a, s) in RELATIONS.items() if a == axis and s == -sign)
        answer = lexicon.no
    question = compose(
        lexicon.patterns["relation"],
        subject=_definite_name(subject, lexicon),
        relation=lexicon.relations[words],
        landmark=_definite_name(landmark, lexicon),
    )
    return question, answer, {"object": i, "landmark": j, "relation": words}


# Attribute questions take ~60% of VQA (colour binding is the weak spot), counts ~25% and relations
# (which bind two objects) the rest; a relation is often impossible (one object, look-alikes, or
# centres too close), then another kind is drawn, so relations are ~10% of the questions asked.
_Ask = Callable[[Scene, random.Random, Lexicon], _Question]
VQA_KINDS: dict[str, tuple[float, _Ask]] = {
    "color_of": (0.19, _color_of),
    "color_at_box": (0.17, _color_at_box),
    "shape_of": (0.12, _shape_of),
    "exists": (0.12, _exists),
    "relation": (0.15, _relation),
    "count_all": (0.05, _count_all),
    "count_color": (0.08, _count_color),
    "count_shape": (0.07, _count_shape),
    "count_color_shape": (0.05, _count_color_shape),
}


def _first_possible(
    scene: Scene, rng: random.Random, kinds: Mapping[str, tuple[float, Any]], lexicon: Lexicon
):
    """Draw kinds by weight, without replacement, until one can be asked about the scene."""
    remaining = dict(kinds)
    while remaining:
        names = list(remaining)
        name = rng.choices(names, [remaining[n][0] for n in names])[0]
        result = remaining.pop(name)[1](scene, rng, lexicon)
        if result is not None:
            return name, result
    raise _NothingToAsk(f"none of {list(kinds)} can be asked about this scene")


def build_vqa(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[vqa] what color is the circle?`` -> ``red`` (and counts, shapes, relations, yes/no)."""
    kind, (question, answer, extra) = _first_possible(scene, rng, VQA_KINDS, lexicon)
    instruction = lexicon.fill(rng.choice(lexicon.pools["vqa"]), question)
    return _sample(
        scene, "vqa", instruction, answer, lexicon, kind=kind, question=question, **extra
    )


def build_caption(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[caption] Briefly describe this image.`` -> ``a red circle and two blue squares``."""
    instruction = rng.choice(lexicon.pools["caption"])
    return _sample(scene, "caption", instruction, caption(scene, lexicon), lexicon, kind="caption")


def build_grounding(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[grounding] ...`` -> ``<p>a red circle</p> {<..>} and <p>a blue square</p> {<..>}``."""
    phrases = [
        (lexicon.counted(lexicon.name(obj.color, obj.shape), 1), [obj.box]) for obj in scene.objects
    ]
    answer = join_phrases(
        [phrase_to_text(p, b, scene.width, scene.height) for p, b in phrases], lexicon
    )
    return _sample(
        scene,
        "grounding",
        rng.choice(lexicon.pools["grounding"]),
        answer,
        lexicon,
        kind="grounding",
        phrases=phrases,
        boxes=[obj.box for obj in scene.objects],
    )


# Detection queries: each returns (query, [(phrase, boxes left to right)]) or None when the scene
# offers none; a phrase query answers with itself, a caption query with each of its noun phrases.
_Query = tuple[str, list[tuple[str, list[PixelBox]]]] | None


def _phrase_query(phrase: str, members: Sequence[ShapeObject]) -> _Query:
    return phrase, [(phrase, _left_to_right_boxes(members))]


def _every(lexicon: Lexicon, noun: str) -> str:
    """``circles``, ``red shapes`` / ``모든 원``, ``모든 빨간 도형``: every instance of a kind."""
    return compose(lexicon.patterns["every"], noun=noun)


def _shape_class(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Query:
    shape = rng.choice(sorted({obj.shape for obj in scene.objects}))
    members = [obj for obj in scene.objects if obj.shape == shape]
    return _phrase_query(_every(lexicon, lexicon.shapes[shape]), members)


def _color_group(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Query:
    color = rng.choice(sorted({obj.color for obj in scene.objects}))
    members = [obj for obj in scene.objects if obj.color == color]
    noun = compose(lexicon.patterns["colored_shape"], color=lexicon.colors[color])
    return _phrase_query(_every(lexicon, noun), members)


def _color_shape(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Query:
    name = rng.choice(sorted({obj.name for obj in scene.objects}))
    members = [obj for obj in scene.objects if obj.name == name]
    return _phrase_query(_every(lexicon, lexicon.name(*name.split())), members)


def _unique_expression(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Query:
    candidates = _referable(scene, rng, lexicon)
    if not candidates:
        return None
    _, obj, expression = rng.choice(candidates)
    return _phrase_query(expression, [obj])


def _caption_to_phrases(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> _Query:
    groups = describe_groups(scene.objects, lexicon)
    query = join_phrases([phrase for phrase, _ in groups], lexicon)
    return query, [(phrase, _left_to_right_boxes(members)) for phrase, members in groups]


DETECTION_KINDS: dict[str, tuple[float, Callable[[Scene, random.Random, Lexicon], _Query]]] = {
    "shape_class": (0.20, _shape_class),  # "circles": every instance of a class
    "color_group": (0.20, _color_group),  # "red shapes": grouping by colour alone
    "color_shape": (0.20, _color_shape),  # "red circles": colour bound to shape
    "expression": (0.15, _unique_expression),  # "the red circle on the left"
    "caption_to_phrases": (0.25, _caption_to_phrases),  # Flickr30k's caption -> phrases
}


def build_detection(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """``[detection] red shapes`` -> ``<p>red shapes</p> {<..>}<delim>{<..>}``.

    The caption form (``[detection] a red circle and two blue squares``) answers each noun phrase
    of the caption with its boxes, phrases separated by a space.
    """
    kind, (query, phrases) = _first_possible(scene, rng, DETECTION_KINDS, lexicon)
    answer = " ".join(phrase_to_text(p, b, scene.width, scene.height) for p, b in phrases)
    instruction = lexicon.fill(rng.choice(lexicon.pools["detection"]), query)
    return _sample(
        scene,
        "detection",
        instruction,
        answer,
        lexicon,
        kind=kind,
        phrases=phrases,
        boxes=[box for _, boxes in phrases for box in boxes],
    )


def build_conversation(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """2-3 turns of different tasks about one image (the paper's stage-3 multi-task conversations).

    The image slot goes into the first turn only, when the conversation is rendered; ``targets``
    holds the tasks and each turn's own targets under "tasks" and "turns".
    """
    tasks = rng.sample(TASKS, rng.choice((2, 3)))
    turns = [TASK_BUILDERS[task](scene, rng, lexicon) for task in tasks]
    targets = {
        "objects": [obj.to_json() for obj in scene.objects],
        "kind": CONVERSATION,
        "tasks": tasks,
        "turns": [turn.targets for turn in turns],
        "language": lexicon.code,
    }
    return Sample(
        turns[0].image, tuple(t for sample in turns for t in sample.turns), None, SOURCE, targets
    )


# Text-only requests about the world's words: MiniGPT-v2's language model read every colour-noun
# phrase in pre-training and its stage 3 keeps text-only data; a from-scratch one has only the
# training scenes' captions, where "blue triangle" never occurs, and learns that "triangle" never
# follows "blue". These rows name every (colour, shape) pair, with no image, so that naming a
# held-out pair depends on seeing it, not on a phrase the language model was taught is impossible.
# The requests are the lexicon's ``language_lists`` and ``language_questions``.


def build_language(scene: Scene, rng: random.Random, lexicon: Lexicon = ENGLISH) -> Sample:
    """A text-only request (no image; ``scene`` is unused) over all colour-shape pairs: a list
    like ``a blue triangle and two red squares``, or a question that parses one phrase."""
    if rng.random() < 0.5:
        chosen = rng.sample(PAIRS, rng.randint(1, 4))
        counts = [rng.choice((1, 1, 2, 3)) for _ in chosen]
        phrases = [
            lexicon.counted(lexicon.name(c, s), n) for (c, s), n in zip(chosen, counts, strict=True)
        ]
        turn = Turn(rng.choice(lexicon.language_lists), join_phrases(phrases, lexicon))
    else:
        color, shape = rng.choice(PAIRS)
        question, asked = rng.choice(lexicon.language_questions)
        name = lexicon.name(color, shape)
        answer = {
            "color": lexicon.color_answers[color],
            "shape": lexicon.shapes[shape],
            "name": name,
        }[asked]
        turn = Turn(lexicon.fill(question, name), answer)
    targets = {"kind": LANGUAGE, "answer": turn.assistant, "language": lexicon.code}
    return Sample(None, (turn,), None, SOURCE, targets)


TASK_BUILDERS: dict[str, Callable[[Scene, random.Random, Lexicon], Sample]] = {
    "vqa": build_vqa,
    "caption": build_caption,
    "grounding": build_grounding,
    "refer": build_refer,
    "detection": build_detection,
    "identify": build_identify,
    CONVERSATION: build_conversation,
    LANGUAGE: build_language,
}


# Sampling weights of the default training mixture (see the calibration note). Localisation was
# learned steadily by the naive model; colour binding never was, so attribute-heavy tasks lead.
SHAPES_MIX: dict[str, float] = {
    "vqa": 0.26,  # mostly colour/shape questions: the binding the naive model never learned
    "refer": 0.18,  # text -> box, the demo's headline skill; needs colour when shape is not unique
    "detection": 0.16,  # all instances of a class / colour group: boxes plus binding
    "identify": 0.12,  # box -> "red circle": colour read at a location
    "grounding": 0.12,  # every object named and boxed: the densest supervision per image
    "caption": 0.08,  # cheap attribute supervision, the role the paper gives stage 1
    CONVERSATION: 0.08,  # multi-turn format of the paper's stage 3
}


# --------------------------------------------------------------------------------------------------
# Deterministic samples and datasets
# --------------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown Shapes split {split!r}; use one of {', '.join(SPLITS)}")


def _check_task(task: str) -> None:
    if task not in TASK_BUILDERS:
        raise ConfigError(f"unknown Shapes task {task!r}; use one of {', '.join(TASK_BUILDERS)}")


def _check_mix(mix: Mapping[str, float]) -> None:
    for task, weight in mix.items():
        _check_task(task)
        if not weight >= 0:
            raise ConfigError(f"mix weight of {task!r} must be >= 0, got {weight!r}")
    if not sum(mix.values()) > 0:
        raise ConfigError(f"mix weights must not all be zero, got {dict(mix)!r}")


def make_sample(
    index: int,
    split: str,
    config: ShapesConfig | None = None,
    task: str | None = None,
    mix: Mapping[str, float] | None = None,
) -> Sample:
    """Sample ``index`` of ``split``: a function of (split, index, config, task, mix) alone.

    The scene depends only on (split, index, config), so every task sees the same scenes. With
    ``task`` None the task (or "conversation") is drawn by the ``mix`` weights (default
    ``SHAPES_MIX``). ``config.language`` changes the words only: the Korean sample ``i`` says in
    Korean what the English one says.
    """
    config = config if config is not None else ShapesConfig()
    _check_split(split)
    if index < 0:
        raise IndexError(f"Shapes sample index must be >= 0, got {index}")
    stream = f"{split}:{index}"
    rng = random.Random(stream)
    lexicon = sample_lexicon(config.language, stream)
    scene = make_split_scene(rng, config, split)
    if task is None:
        mix = SHAPES_MIX if mix is None else mix
        _check_mix(mix)
        names = list(mix)
        task = rng.choices(names, [mix[name] for name in names])[0]
    _check_task(task)
    while True:
        try:
            return TASK_BUILDERS[task](scene, rng, lexicon)
        except _NothingToAsk:
            # Rare (e.g. four red circles in a 2x2 grid); a new scene from the same stream.
            scene = make_split_scene(rng, config, split)


def make_pack(
    index: int,
    split: str,
    mix: Mapping[str, float],
    size: int,
    config: ShapesConfig | None = None,
) -> Sample:
    """``size`` single-task questions about one scene, tasks drawn by ``mix``, as one packed
    sample (``Sample.packed``: each question is trained as if it were alone with the image)."""
    config = config if config is not None else ShapesConfig()
    _check_split(split)
    _check_mix(mix)
    if set(mix) & set(OWN_ROWS):
        raise ConfigError(
            f"a pack holds single-task questions about its image; leave {' and '.join(OWN_ROWS)} "
            "out of its mix"
        )
    stream = f"{split}:pack:{index}"
    rng = random.Random(stream)
    lexicon = sample_lexicon(config.language, stream)  # one language per pack
    names = list(mix)
    weights = [mix[name] for name in names]
    while True:
        scene = make_split_scene(rng, config, split)
        samples = []
        # A scene that offers nothing for the drawn tasks (rare) is replaced, as in make_sample.
        for _ in range(4 * size):
            try:
                task = rng.choices(names, weights)[0]
                samples.append(TASK_BUILDERS[task](scene, rng, lexicon))
            except _NothingToAsk:
                continue
            if len(samples) == size:
                targets = {
                    "objects": [obj.to_json() for obj in scene.objects],
                    "kind": "packed",
                    "tasks": [sample.task for sample in samples],
                    "turns": [sample.targets for sample in samples],
                    "language": lexicon.code,
                }
                turns = tuple(sample.turns[0] for sample in samples)
                return Sample(samples[0].image, turns, None, SOURCE, targets, packed=True)


class ShapesPacks(torch.utils.data.Dataset):
    """``size`` deterministic packed samples of one split; item ``i`` is ``make_pack(i, ...)``."""

    def __init__(
        self,
        split: str,
        size: int,
        mix: Mapping[str, float],
        questions: int,
        config: ShapesConfig | None = None,
    ) -> None:
        _check_split(split)
        _check_mix(mix)
        if questions < 1:
            raise ConfigError(f"a pack needs at least 1 question, got {questions}")
        self.split, self.size, self.mix, self.questions = split, size, dict(mix), questions
        self.config = config if config is not None else ShapesConfig()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} Shapes packs")
        return make_pack(index, self.split, self.mix, self.questions, self.config)


class ShapesDataset(torch.utils.data.Dataset):
    """``size`` deterministic Shapes samples of one split; item ``i`` is ``make_sample(i, ...)``."""

    def __init__(
        self,
        split: str,
        size: int,
        config: ShapesConfig | None = None,
        mix: Mapping[str, float] | None = None,
        task: str | None = None,
    ) -> None:
        _check_split(split)
        if size < 0:
            raise ConfigError(f"ShapesDataset size must be >= 0, got {size}")
        if task is not None:
            _check_task(task)
        if mix is not None:
            _check_mix(mix)
        self.split = split
        self.size = size
        self.config = config if config is not None else ShapesConfig()
        self.mix = mix
        self.task = task

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} Shapes samples")
        return make_sample(index, self.split, self.config, task=self.task, mix=self.mix)


def evaluation_set(
    task: str, size: int, *, split: str = "test", config: ShapesConfig | None = None
) -> list[Sample]:
    """``size`` fixed held-out samples of one task, ``targets`` filled (boxes in pixels, answer,
    objects); the same list on every machine."""
    _check_task(task)
    return [make_sample(index, split, config, task=task) for index in range(size)]
