"""The box grammar: pixel boxes <-> MiniGPT-v2 text, a tolerant parser for model output, and IoU.

MiniGPT-v2 (arXiv 2310.09478, §3.2 of our spec) writes a box as ``{<x1><y1><x2><y2>}``: left, top,
right, bottom as integers on a 0..100 grid relative to the *original* image size, no spaces.
Several boxes of one object are joined by the literal ``<delim>``, and grounded captions tag the
phrase a box belongs to, with exactly one space before the box::

    A <p>young man</p> {<8><0><62><91>} sitting at <p>his desk</p> {<0><85><100><100>}
    <p>sofas</p> {<57><49><70><72>}<delim>{<26><48><43><71>}

Training data, evaluation and the demo all import this module so there is one definition of the
format, one regex and one IoU. Encoding reproduces the reference arithmetic exactly (truncation,
not rounding, spec §10 item 24); decoding maps a bin back to ``value / 100 * size`` (no +0.5
centring). The parser accepts anything a sampled model may emit and never raises on a string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from minigptv2.constants import (
    BOS,
    BOX_BINS,
    BOX_DELIMITER,
    EOS,
    PHRASE_CLOSE,
    PHRASE_OPEN,
    UNK,
)

Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2) in pixels of the original image."""

Bins = tuple[int, int, int, int]
"""(x1, y1, x2, y2) on the 0..BOX_BINS grid, as written in the text."""


# --------------------------------------------------------------------------------------------------
# Encoding: pixels -> text
# --------------------------------------------------------------------------------------------------


def _check_size(width: float, height: float) -> None:
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(
            f"Image size must be positive and finite, got width={width!r}, height={height!r}; "
            "pass the size of the original image (before any resize)."
        )


def _clamp_and_order(x1: float, y1: float, x2: float, y2: float) -> tuple[float, ...]:
    """Clamp each value to 0..BOX_BINS and sort the corners so that x1 <= x2 and y1 <= y2."""
    x1, y1, x2, y2 = (min(max(v, 0), BOX_BINS) for v in (x1, y1, x2, y2))
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """Convert a COCO / Visual Genome ``[x, y, w, h]`` box to ``(x1, y1, x2, y2)``."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def box_to_bins(box: Box, width: float, height: float) -> Bins:
    """Quantise a pixel box to the 0..100 grid exactly as the reference data pipeline does.

    ``int(x / W * 100)`` truncates rather than rounds, and the operation order is kept so that
    floating-point results match the reference bit for bit (e.g. x=57 on W=100 gives 56, because
    ``57 / 100 * 100 == 56.99999999999999``). Values are then clamped to 0..100 and the corners
    sorted, so slightly-outside or flipped annotations still yield a valid box.
    """
    _check_size(width, height)
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"Box coordinates must be finite numbers, got {tuple(box)!r}.")
    x1, y1, x2, y2 = box
    scaled = (
        int(x1 / width * BOX_BINS),
        int(y1 / height * BOX_BINS),
        int(x2 / width * BOX_BINS),
        int(y2 / height * BOX_BINS),
    )
    bx1, by1, bx2, by2 = _clamp_and_order(*scaled)
    return (int(bx1), int(by1), int(bx2), int(by2))


def box_to_text(box: Box, width: float, height: float) -> str:
    """``{<x1><y1><x2><y2>}`` for a pixel box, no spaces."""
    x1, y1, x2, y2 = box_to_bins(box, width, height)
    return f"{{<{x1}><{y1}><{x2}><{y2}>}}"


def boxes_to_text(boxes: Sequence[Box], width: float, height: float) -> str:
    """Several boxes of one object joined by ``<delim>`` (no spaces); empty string for none."""
    return BOX_DELIMITER.join(box_to_text(box, width, height) for box in boxes)


def phrase_to_text(phrase: str, boxes: Sequence[Box], width: float, height: float) -> str:
    """``<p>phrase</p> {..}<delim>{..}`` with the single space the reference data puts there."""
    if not boxes:
        raise ValueError(
            f"phrase_to_text needs at least one box for phrase {phrase!r}; "
            "write an ungrounded phrase as plain text instead."
        )
    return f"{PHRASE_OPEN}{phrase}{PHRASE_CLOSE} {boxes_to_text(boxes, width, height)}"


def bins_to_box(bins: Sequence[float], width: float, height: float) -> Box:
    """Map grid values back to pixels: ``value / 100 * size`` (the reference adds no +0.5).

    The values are scaled as given; the parser clamps and orders them before calling this.
    """
    _check_size(width, height)
    x1, y1, x2, y2 = bins
    return (
        x1 / BOX_BINS * width,
        y1 / BOX_BINS * height,
        x2 / BOX_BINS * width,
        y2 / BOX_BINS * height,
    )


# --------------------------------------------------------------------------------------------------
# Parsing: model text -> phrases and pixel boxes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundedPhrase:
    """A phrase and the boxes that ground it; ``phrase`` is None for a bare box (``[refer]``)."""

    phrase: str | None
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Grounding:
    """A parsed answer: its plain text (box markup removed) and the grounded phrases in order."""

    text: str
    phrases: tuple[GroundedPhrase, ...]

    @property
    def boxes(self) -> tuple[Box, ...]:
        """Every box in the answer, in order of appearance."""
        return tuple(box for grounded in self.phrases for box in grounded.boxes)

    def to_json(self) -> list[dict[str, object]]:
        """One ``{"phrase": str | None, "box": [x1, y1, x2, y2]}`` per box, pixels to 2 decimals."""
        return [
            {"phrase": grounded.phrase, "box": [round(v, 2) for v in box]}
            for grounded in self.phrases
            for box in grounded.boxes
        ]


# One alternation, tried left to right, splits any string into tokens; the final branch matches
# any single character, so tokenising cannot fail. Whitespace is allowed inside ``< 12 >`` and
# numbers may be negative, decimal or huge: the parser clamps them rather than rejecting them.
# Possessive quantifiers keep the partial-tag branches linear on long runs of spaces.
_NUMBER = r"[-+]?+(?:\d++(?:\.\d*+)?+|\.\d++)"
_TOKEN = re.compile(
    rf"(?P<num><\s*+(?P<value>{_NUMBER})\s*+>)"
    rf"|(?P<open>{re.escape(PHRASE_OPEN)})"
    rf"|(?P<close>{re.escape(PHRASE_CLOSE)})"
    rf"|(?P<delim>{re.escape(BOX_DELIMITER)})"
    r"|(?P<brace>[{}])"
    # A tag or number cut off by the end of generation (``{<12><5``, ``<del``): markup, not words.
    r"|(?P<partial><\s*+[-+]?+[\d.]*+\s*+\Z|</?[A-Za-z]*+\Z)"
    r"|(?P<space>\s+)"
    r"|(?P<word>[^\s<{}]+|.)",
    re.DOTALL,
)
# LLaMA special tokens can leak into decoded text; the reference strips ``<unk>`` the same way.
_SPECIAL_STRINGS = (UNK, BOS, EOS)
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?)\]])")
_BARE_NUMBER = re.compile(_NUMBER)


def _strip_specials(text: str) -> str:
    for special in _SPECIAL_STRINGS:
        text = text.replace(special, "")
    return text


def _normalise_text(pieces: list[str]) -> str:
    text = " ".join("".join(pieces).split())
    # Removing a box leaves "his desk ." behind; glue punctuation back to the preceding word.
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


class _GroundingBuilder:
    """State machine over tokens; kept as a class so each rule is one small method.

    Rules (spec §3.2 and §7):
    - ``<p>phrase</p>`` followed by whitespace / ``<delim>`` and then boxes owns those boxes.
    - A run of boxes separated only by whitespace, ``<delim>`` or malformed boxes forms one group.
    - Boxes with no phrase right before them get ``phrase=None``; a phrase without a box is
      dropped from ``phrases`` but its words stay in the text.
    - A box is exactly four numbers in a row (braces optional); runs of 3 or 5 are ignored.
    - An unclosed ``<p>`` followed by a box uses the words since ``<p>`` as the phrase; a second
      ``<p>`` before ``</p>`` restarts the phrase (nested tags keep only the innermost words).
    - Values are clamped to 0..100 and corners reordered. Boxes of zero area after clamping (a
      line, or a point) are kept: they are valid output and IoU treats them as empty.
    """

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height
        self.text_pieces: list[str] = []
        self.phrases: list[GroundedPhrase] = []
        self.numbers: list[float] = []  # current run of <n> tokens
        self.open_words: list[str] | None = None  # words since an unclosed <p>
        self.pending_phrase: str | None = None  # closed phrase waiting for its boxes
        self.has_pending = False
        self.group: list[Box] | None = None  # boxes of the phrase being collected
        self.group_phrase: str | None = None

    # -- number runs ------------------------------------------------------------------------------

    def end_number_run(self) -> None:
        numbers, self.numbers = self.numbers, []
        if len(numbers) != 4:
            return  # truncated or over-long box: not a box, and not text either
        bins = _clamp_and_order(*numbers)
        box = bins_to_box(bins, self.width, self.height)
        if self.group is None:
            self.group = []
            self.group_phrase = self.take_phrase()
        self.group.append(box)

    def take_phrase(self) -> str | None:
        if self.has_pending:
            phrase = self.pending_phrase
        elif self.open_words is not None:
            phrase = _join_words(self.open_words)
        else:
            return None
        self.has_pending, self.pending_phrase, self.open_words = False, None, None
        return phrase

    # -- groups ---------------------------------------------------------------------------------

    def end_group(self) -> None:
        if self.group:
            self.phrases.append(GroundedPhrase(self.group_phrase, tuple(self.group)))
        self.group, self.group_phrase = None, None

    # -- token handlers -------------------------------------------------------------------------

    def on_number(self, value: str) -> None:
        self.numbers.append(float(value))  # "9" * 400 becomes inf, which the clamp maps to 100

    def on_box_markup(self) -> None:
        # Braces, <delim> and cut-off tags separate boxes but keep the group and phrase alive.
        self.end_number_run()
        self.text_pieces.append(" ")

    def on_space(self) -> None:
        # Whitespace may sit inside a box ("{ <1> <2> <3> <4> }"), so it does not end a run.
        self.text_pieces.append(" ")
        if self.open_words is not None:
            self.open_words.append(" ")

    def on_phrase_open(self) -> None:
        self.end_number_run()
        self.end_group()
        self.has_pending, self.pending_phrase = False, None
        self.open_words = []

    def on_phrase_close(self) -> None:
        self.end_number_run()
        self.end_group()
        self.has_pending = True
        self.pending_phrase = _join_words(self.open_words) if self.open_words is not None else None
        self.open_words = None

    def on_word(self, word: str) -> None:
        self.end_number_run()
        self.end_group()
        self.has_pending, self.pending_phrase = False, None
        self.text_pieces.append(word)
        if self.open_words is not None:
            self.open_words.append(word)

    def finish(self) -> Grounding:
        self.end_number_run()
        self.end_group()
        return Grounding(_normalise_text(self.text_pieces), tuple(self.phrases))


def _join_words(words: list[str]) -> str | None:
    phrase = " ".join("".join(words).split())
    return phrase or None


def parse_grounding(text: str, width: float, height: float) -> Grounding:
    """Parse a model answer into plain text and grounded phrases with pixel boxes.

    Tolerant by design: any string is accepted (see ``_GroundingBuilder`` for the rules), and only
    a non-positive ``width``/``height`` raises ``ValueError``.

    >>> g = parse_grounding("A <p>young man</p> {<8><0><62><91>} sitting", 100, 100)
    >>> g.text, g.phrases[0].phrase, g.boxes
    ('A young man sitting', 'young man', ((8.0, 0.0, 62.0, 91.0),))
    """
    _check_size(width, height)
    builder = _GroundingBuilder(width, height)
    for match in _TOKEN.finditer(_strip_specials(text)):
        kind = match.lastgroup
        if kind == "num":
            builder.on_number(match.group("value"))
        elif kind in ("brace", "delim", "partial"):
            builder.on_box_markup()
        elif kind == "space":
            builder.on_space()
        elif kind == "open":
            builder.on_phrase_open()
        elif kind == "close":
            builder.on_phrase_close()
        else:
            builder.on_word(match.group())
    return builder.finish()


def parse_box(text: str, width: float, height: float, *, allow_bare: bool = True) -> Box | None:
    """The first box in ``text``, or None.

    When the text holds no ``{<..><..><..><..>}`` box but exactly four numbers anywhere (e.g.
    ``"[12, 5, 40, 90]"``), they are read as a box, like the demo's ``[refer]`` fallback and the
    RefCOCO scorer's ``re.findall(r'\\d+')`` (spec §6.2, §7). Pass ``allow_bare=False`` to accept
    only the grammar.
    """
    boxes = parse_grounding(text, width, height).boxes
    if boxes:
        return boxes[0]
    if not allow_bare:
        return None
    numbers = _BARE_NUMBER.findall(_strip_specials(text))
    if len(numbers) != 4:
        return None
    return bins_to_box(_clamp_and_order(*(float(n) for n in numbers)), width, height)


# --------------------------------------------------------------------------------------------------
# Overlap
# --------------------------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; 0.0 when either has no area."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def iou_inclusive(a: Box, b: Box) -> float:
    """IoU with the "+1 pixel" convention of MiniGPT-v2's RefCOCO scorer (spec §6.2).

    Coordinates are treated as inclusive pixel indices, so touching boxes overlap by one pixel and
    a zero-width box still has area. Use this to reproduce the paper's REC numbers.
    """
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0
