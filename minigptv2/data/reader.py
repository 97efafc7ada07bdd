"""What every dataset reader shares: indexed records, a seeded rng per item, the reference's
text processing, and image and JSON loading with errors that name the file.

A reader is a map-style dataset over the records of its source files. Item ``i`` is built by
``build(i, rng)`` with ``rng = random.Random(f"{source}:{i}")``, so the same index always gives
the same instruction template, sentence and answer; ``minigptv2.data.stream.Stream`` calls
``build`` with an rng seeded by the run's sample position instead, so a resumed run re-reads
exactly the samples an uninterrupted one would have read.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.utils.data
from PIL import Image

from minigptv2.boxes import Box, box_to_text, phrase_to_text, xywh_to_xyxy
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError
from minigptv2.images import load_image
from minigptv2.prompts import Turn

# The BLIP caption processor the reference applies to captions, questions and answers (spec §4):
# these characters become spaces, whitespace runs collapse, and at most 50 words are kept.
_TP_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")
_TP_MAX_WORDS = 50


def process_text(text: str, max_words: int = _TP_MAX_WORDS) -> str:
    """The reference's ``tp()``: lowercase, drop ``. ! " ( ) * # : ; ~``, keep 50 words.

    >>> process_text("A man (left) riding a horse.")
    'a man left riding a horse'
    """
    words = _TP_PUNCTUATION.sub(" ", text.lower()).split()
    return " ".join(words[:max_words])


class Reader(torch.utils.data.Dataset):
    """Records of one source; subclasses set ``source``, fill ``records`` and define ``build``."""

    source: str = "reader"

    def __init__(self) -> None:
        self.records: Sequence[Any] = []

    def __len__(self) -> int:
        return len(self.records)

    def build(self, index: int, rng: random.Random) -> Sample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.source}: index {index} out of range for {len(self)} records")
        return self.build(index, random.Random(f"{self.source}:{index}"))

    def single_turn(
        self,
        image: Image.Image | None,
        task: str | None,
        instruction: str,
        answer: str,
        /,
        **targets: Any,
    ) -> Sample:
        """A one-turn sample of this source; ``targets`` keeps ground truth for evaluation."""
        return Sample(image, (Turn(instruction, answer),), task, self.source, targets)


def read_json(path: Path) -> Any:
    """A whole JSON file, with an error that names the file and the fix."""
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}; check the data root and layout")
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); re-download it") from None


def read_image(path: Path) -> Image.Image:
    """An RGB image (``ImageError`` if it is missing or unreadable: the stream skips the row)."""
    return load_image(path)


def coco_box_text(bbox: Sequence[float], width: float, height: float) -> str:
    """A COCO/VG ``[x, y, w, h]`` pixel box as ``{<x1><y1><x2><y2>}`` on the 0-100 grid."""
    return box_to_text(xywh_to_xyxy(bbox), width, height)


def weighted_answer(answers: Sequence[str], rng: random.Random) -> str:
    """One annotator answer, drawn with probability proportional to how often it was given."""
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer] = counts.get(answer, 0) + 1
    names = list(counts)
    return rng.choices(names, [counts[name] for name in names])[0]


def require(record: Any, keys: Sequence[str], where: str) -> None:
    """Raise a ``DataError`` naming the missing keys of a record (a format mismatch)."""
    missing = [key for key in keys if not isinstance(record, dict) or key not in record]
    if missing:
        raise DataError(
            f"{where}: record lacks {missing}; is this the right file for this dataset?"
        )


def grounded_caption(
    caption: str,
    spans: Sequence[tuple[int, int, Sequence[Box]]],
    width: float,
    height: float,
) -> str:
    """``caption`` with each ``caption[start:end]`` replaced by ``<p>phrase</p> {box}<delim>…``.

    Spans over the same characters are merged (one phrase, several boxes); a span that overlaps
    an earlier one is left ungrounded, since phrase tags cannot nest.
    """
    merged: dict[tuple[int, int], list[Box]] = {}
    for start, end, boxes in spans:
        merged.setdefault((start, end), []).extend(boxes)
    pieces, cursor = [], 0
    for (start, end), boxes in sorted(merged.items()):
        if start < cursor or not boxes or not caption[start:end].strip():
            continue
        pieces.append(caption[cursor:start])
        pieces.append(phrase_to_text(caption[start:end].strip(), boxes, width, height))
        cursor = end
    pieces.append(caption[cursor:])
    return " ".join("".join(pieces).split())
