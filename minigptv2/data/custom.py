"""The custom JSONL format: fine-tune on your own data without writing code.

One JSON object per line (blank lines are ignored)::

    {"image": "images/cat.jpg",
     "conversation": [{"user": "[refer] the cat on the left", "assistant": "{<4><10><48><90>}"},
                      {"user": "[vqa] what is it doing?", "assistant": "sleeping"}]}

* ``image``: a path relative to the JSONL file's folder, or absolute; ``null`` or absent for a
  text-only row.
* ``conversation``: one or more turns, each with a ``user`` message and the ``assistant`` answer
  to train on. A message may start with a task token (``[vqa]``, ``[caption]``, ``[grounding]``,
  ``[refer]``, ``[detection]``, ``[identify]``) or have none (free-form chat). The image goes into
  the first turn; do not write ``<Img>`` or ``<ImageHere>`` yourself.
* Boxes are written in the model's grammar, ``{<x1><y1><x2><y2>}`` (left, top, right, bottom),
  anywhere in user or assistant text, with ``<p>phrase</p> {...}`` and ``<delim>`` as usual.
* ``box_format``: ``"bins"`` (default) means the four numbers are integers on the model's 0-100
  grid; ``"pixels"`` means they are pixel coordinates of the image (decimals allowed), converted
  to the grid on reading by ``minigptv2.boxes`` (relative to the image's own size).
* Optional ``id``, ``source`` and ``meta`` keys are carried along and ignored by training; any
  other key is reported as a mistake by ``minigptv2 data check``.

``parse_row`` validates one line and lists every problem it finds; ``CustomDataset`` reads a file
of any size lazily (an index of line offsets, built on first use); ``sample_to_row`` writes a
``Sample`` back out (the ``data shapes`` command uses it).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from minigptv2.boxes import box_to_text
from minigptv2.constants import BOX_BINS, IMAGE_CLOSE, IMAGE_OPEN, IMAGE_PLACEHOLDER
from minigptv2.data.reader import Reader
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError, MiniGPTv2Error, UnknownTaskError
from minigptv2.images import load_image
from minigptv2.prompts import Turn
from minigptv2.tasks import task_of

SOURCE = "custom"
BOX_FORMATS: tuple[str, ...] = ("bins", "pixels")
KNOWN_KEYS: frozenset[str] = frozenset(
    {"image", "conversation", "box_format", "id", "source", "meta"}
)
_RESERVED = (IMAGE_PLACEHOLDER, IMAGE_OPEN, IMAGE_CLOSE)

# Training data is held to the exact grammar (boxes.parse_grounding is deliberately lenient
# because it reads model output): four numbers in braces, no spaces.
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_BOX = re.compile(rf"\{{<({_NUMBER})><({_NUMBER})><({_NUMBER})><({_NUMBER})>\}}")
# What is left of a box-like fragment once the well-formed boxes are taken out: "<12>", "{<".
_BOX_FRAGMENT = re.compile(r"<\s*[-+]?\d|\{\s*<")
_CANONICAL_BIN = re.compile(r"0|[1-9]\d{0,2}")

ImageReader = Callable[[Path], Image.Image]


@dataclass(frozen=True)
class ParsedRow:
    """A valid row as a ``Sample``, or the list of everything wrong with it."""

    sample: Sample | None
    problems: tuple[str, ...]


def parse_row(text: str, base: Path, read_image: ImageReader = load_image) -> ParsedRow:
    """Validate one JSONL line; ``base`` is the folder relative image paths start from."""
    try:
        row = json.loads(text.lstrip("\ufeff"))  # editors may start a file with a BOM
    except json.JSONDecodeError as error:
        return ParsedRow(None, (f"not valid JSON ({error}); write one JSON object per line",))
    if not isinstance(row, dict):
        return ParsedRow(None, (f"expected a JSON object, got {type(row).__name__}",))
    problems: list[str] = []
    unknown = sorted(set(row) - KNOWN_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {unknown}; known keys are {sorted(KNOWN_KEYS)}")
    box_format = row.get("box_format", "bins")
    if box_format not in BOX_FORMATS:
        problems.append(f"box_format {box_format!r} is not one of {list(BOX_FORMATS)}")
        box_format = "bins"
    image = _read_row_image(row.get("image"), base, read_image, problems)
    turns = _parse_turns(row.get("conversation"), box_format, image, problems)
    if problems:
        return ParsedRow(None, tuple(problems))
    tasks = {task_of(turn.user) for turn in turns}
    task = tasks.pop() if len(tasks) == 1 else None
    targets = {key: row[key] for key in ("id", "meta") if key in row}
    source = row.get("source", SOURCE)
    return ParsedRow(Sample(image, turns, task, str(source), targets), ())


def _read_row_image(
    value: Any, base: Path, read_image: ImageReader, problems: list[str]
) -> Image.Image | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"image must be a path string or null, got {value!r}")
        return None
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        problems.append(f"image not found: {path}")
        return None
    try:
        return read_image(path)
    except MiniGPTv2Error as error:
        problems.append(f"unreadable image: {error}")
        return None


def _parse_turns(
    value: Any, box_format: str, image: Image.Image | None, problems: list[str]
) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        problems.append(
            'conversation must be a non-empty list of {"user": ..., "assistant": ...} turns'
        )
        return ()
    turns = []
    for number, turn in enumerate(value, start=1):
        where = f"turn {number}"
        if not isinstance(turn, dict) or set(turn) != {"user", "assistant"}:
            problems.append(f'{where} must be an object with exactly "user" and "assistant"')
            continue
        user, assistant = turn["user"], turn["assistant"]
        if not isinstance(user, str) or not isinstance(assistant, str):
            problems.append(f"{where}: user and assistant must be strings")
            continue
        if not assistant.strip():
            problems.append(f"{where}: the assistant answer is empty; give the text to train on")
        try:
            task_of(user)
        except UnknownTaskError as error:
            problems.append(f"{where}: {error}")
        for text in (user, assistant):
            for marker in _RESERVED:
                if marker in text:
                    problems.append(
                        f"{where}: remove {marker!r}; the image slot is added automatically"
                    )
        user = _convert_boxes(user, box_format, image, f"{where} user", problems)
        assistant = _convert_boxes(assistant, box_format, image, f"{where} assistant", problems)
        turns.append(Turn(user, assistant))
    return tuple(turns)


def _convert_boxes(
    text: str, box_format: str, image: Image.Image | None, where: str, problems: list[str]
) -> str:
    """Check every box of ``text``; in pixel format, rewrite each one on the 0-100 grid."""
    if _BOX_FRAGMENT.search(_BOX.sub(" ", text)):
        problems.append(
            f"{where}: malformed box in {text[:80]!r}; write boxes as {{<x1><y1><x2><y2>}}"
        )
    if box_format == "pixels" and image is None and _BOX.search(text):
        problems.append(f"{where}: pixel boxes need an image to be relative to")
        return text

    def convert(match: re.Match[str]) -> str:
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        if box_format == "bins":
            limit_x = limit_y = BOX_BINS
            canonical = all(_CANONICAL_BIN.fullmatch(v) for v in match.groups())
            if not canonical:
                problems.append(
                    f"{where}: box {match.group()} must hold integers 0-{BOX_BINS} without "
                    'leading zeros (or set "box_format": "pixels")'
                )
        else:
            assert image is not None
            limit_x, limit_y = image.size
        if not (0 <= x1 <= x2 <= limit_x and 0 <= y1 <= y2 <= limit_y):
            grid = f"the 0-{BOX_BINS} grid" if box_format == "bins" else f"{limit_x}x{limit_y}"
            problems.append(
                f"{where}: box {match.group()} is outside the image ({grid}) or has its "
                "corners swapped; boxes are left, top, right, bottom"
            )
            return match.group()
        if box_format == "bins":
            return match.group()
        return box_to_text((x1, y1, x2, y2), limit_x, limit_y)

    return _BOX.sub(convert, text)


def sample_to_row(sample: Sample, image_path: str | None) -> dict[str, Any]:
    """A ``Sample`` as a custom-format row (its boxes are already on the 0-100 grid)."""
    row: dict[str, Any] = {"image": image_path}
    row["conversation"] = [{"user": t.user, "assistant": t.assistant} for t in sample.turns]
    row["source"] = sample.source
    return row


class CustomDataset(Reader):
    """The rows of one custom JSONL file, read lazily by byte offset; bad rows raise DataError.

    The index (one int64 offset and line number per row) is built on first use, so constructing
    the dataset is free and a file of millions of rows never sits in memory.
    """

    source = SOURCE

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                f"custom data file not found: {self.path}; pass a .jsonl file "
                "(see README, 'Your own data')"
            )
        self._offsets: np.ndarray | None = None
        self._lines: np.ndarray | None = None

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._offsets is None or self._lines is None:
            offsets, lines = [], []
            position = 0
            with self.path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        offsets.append(position)
                        lines.append(number)
                    position += len(line)
            self._offsets = np.asarray(offsets, dtype=np.int64)
            self._lines = np.asarray(lines, dtype=np.int64)
        return self._offsets, self._lines

    def __len__(self) -> int:
        return len(self._index()[0])

    def build(self, index: int, rng: random.Random) -> Sample:
        offsets, lines = self._index()
        with self.path.open("rb") as handle:
            handle.seek(int(offsets[index]))
            raw = handle.readline()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{self.path} line {lines[index]}: not UTF-8 text") from None
        parsed = parse_row(text, self.path.parent)
        if parsed.sample is None:
            raise DataError(f"{self.path} line {lines[index]}: " + "; ".join(parsed.problems))
        return parsed.sample
