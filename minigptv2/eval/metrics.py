"""Metrics as pure functions of predictions and ground truth (no model, no files).

Boxes are ``(x1, y1, x2, y2)`` in pixels of the original image (``minigptv2.boxes.Box``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from minigptv2.boxes import Box, iou, iou_inclusive

IOU_THRESHOLD = 0.5


def refer_correct(predicted: Box | None, target: Box, *, reference_rule: bool = False) -> bool:
    """Referring-expression hit: IoU >= 0.5 (``reference_rule``: the RefCOCO script's rule).

    MiniGPT-v2's RefCOCO script uses the "+1 pixel" IoU and a strict ``> 0.5`` (spec §6.2); that
    rule reproduces its published numbers. An unparsable answer (``None``) is a miss.
    """
    if predicted is None:
        return False
    if reference_rule:
        return iou_inclusive(predicted, target) > IOU_THRESHOLD
    return iou(predicted, target) >= IOU_THRESHOLD


def _normalise_answer(text: str) -> str:
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(word for word in text.split() if word not in {"a", "an", "the"})


def exact_match(predicted: str, target: str) -> bool:
    """Case-, punctuation- and article-insensitive equality ("The dog." == "dog")."""
    return _normalise_answer(predicted) == _normalise_answer(target)


@dataclass(frozen=True)
class Matching:
    """Greedy one-to-one matching of predicted to target boxes at an IoU threshold."""

    true_positives: int
    predicted: int
    targets: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.targets if self.targets else 0.0

    @property
    def f1(self) -> float:
        total = self.predicted + self.targets
        return 2 * self.true_positives / total if total else 0.0

    def __add__(self, other: Matching) -> Matching:
        return Matching(
            self.true_positives + other.true_positives,
            self.predicted + other.predicted,
            self.targets + other.targets,
        )


def match_boxes(
    predicted: Sequence[Box], targets: Sequence[Box], threshold: float = IOU_THRESHOLD
) -> Matching:
    """Pairs in order of decreasing IoU, each box used at most once (duplicates are misses)."""
    pairs = sorted(
        ((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(targets)),
        reverse=True,
    )
    used_predicted: set[int] = set()
    used_targets: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_predicted and j not in used_targets:
            used_predicted.add(i)
            used_targets.add(j)
    return Matching(len(used_targets), len(predicted), len(targets))
