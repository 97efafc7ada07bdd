"""What a load did with every key, grouped so that 7B-sized mismatches stay readable.

The reference loaded its checkpoint with ``strict=False`` and threw the result away, so a wrong
LLaMA or a ``peft`` rename produced gibberish without a word (spec §10.6). Here every key ends up
in one list: loaded, missing, unexpected, wrong shape, deliberately dropped, ignored (deterministic
buffers) or freshly initialised. Keys that differ only in their layer number are shown once, e.g.
``layers.{0-31}.self_attn.q_proj.lora_A.default.weight (32 keys)``, under the file that is
probably at fault and why.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from minigptv2.errors import CheckpointError

_LAYER = re.compile(r"\.(\d+)\.")


@dataclass(frozen=True)
class KeyNote:
    """One key and what happened to it.

    Attributes:
        key: our key (missing, wrong shape, fresh) or the file's key (unexpected, dropped, ignored).
        source: the file or folder concerned, e.g. "the EVA file /data/eva_vit_g.pth".
        reason: why it happened or what is probably wrong.
        detail: per-key facts shown on the key's line, e.g. the two shapes.
    """

    key: str
    source: str
    reason: str
    detail: str = ""


@dataclass
class LoadReport:
    """Every key of a load, by outcome; ``ok`` means nothing is missing, unexpected or misshapen."""

    loaded: int = 0
    missing: list[KeyNote] = field(default_factory=list)
    unexpected: list[KeyNote] = field(default_factory=list)
    mismatched: list[KeyNote] = field(default_factory=list)
    dropped: list[KeyNote] = field(default_factory=list)
    ignored: list[KeyNote] = field(default_factory=list)
    fresh: list[KeyNote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """The missing, unexpected and wrong-shaped keys, grouped by file and probable cause."""
        sections = [
            ("missing (the model needs them, no file has them)", self.missing),
            ("unexpected (a file has them, the model has no place for them)", self.unexpected),
            ("wrong shape", self.mismatched),
        ]
        return "\n".join(_section(title, notes) for title, notes in sections if notes)

    def format(self) -> str:
        """The whole report: problems first, then what was dropped, ignored or initialised."""
        sections = [
            ("missing (the model needs them, no file has them)", self.missing),
            ("unexpected (a file has them, the model has no place for them)", self.unexpected),
            ("wrong shape", self.mismatched),
            ("ignored", self.ignored),
            ("freshly initialised", self.fresh),
        ]
        lines = [f"loaded {self.loaded} tensors"]
        lines += [_section(title, notes) for title, notes in sections if notes]
        if self.dropped:
            lines.append(_section("deliberately dropped", self.dropped, by_layer=True))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def raise_if_problems(self, what: str) -> None:
        """Raise ``CheckpointError`` listing the problems, with how to relax the check."""
        if self.ok:
            return
        raise CheckpointError(
            f"cannot load {what}: its keys do not match the model\n{self.problems()}\n"
            "Fix the file named above; or load with strict=False (CLI: --no-strict) to load what"
            " matches, leave the rest freshly initialised and print this report."
        )


def _section(title: str, notes: list[KeyNote], *, by_layer: bool = False) -> str:
    """``title`` then, per (source, reason), the collapsed key lines.

    ``by_layer`` lists a whole block on one line (``blocks.39.* (16 keys: norm1.weight, ...)``),
    which suits a dropped block better than one line per tensor.
    """
    by_cause: dict[tuple[str, str], list[KeyNote]] = defaultdict(list)
    for note in notes:
        by_cause[note.source, note.reason].append(note)
    lines = [f"{title}: {len(notes)} key(s)"]
    for (source, reason), group in by_cause.items():
        lines.append(f"  {source}: {reason}" if reason else f"  {source}:")
        collapsed = collapse_layers(group) if by_layer else collapse_keys(group)
        lines += [f"    {line}" for line in collapsed]
    return "\n".join(lines)


def collapse_layers(notes: Iterable[KeyNote]) -> list[str]:
    """One line per numbered block, naming its tensors; keys without a number as they are."""
    blocks: dict[str, list[str]] = defaultdict(list)
    for note in notes:
        match = _LAYER.search(note.key)
        if match is None:
            blocks[note.key] = []
        else:
            blocks[note.key[: match.end()] + "*"].append(note.key[match.end() :])
    return [
        f"{block} ({len(names)} keys: {', '.join(names)})" if names else block
        for block, names in blocks.items()
    ]


def collapse_keys(notes: Iterable[KeyNote]) -> list[str]:
    """One line per key pattern: layer numbers become a range like ``{0-31}`` plus a count."""
    layers: dict[tuple[str, str], list[int]] = defaultdict(list)
    single: dict[tuple[str, str], str] = {}
    for note in notes:
        match = _LAYER.search(note.key)
        if match is None:
            single[note.key, note.detail] = note.key
            continue
        pattern = note.key[: match.start()] + ".{}." + note.key[match.end() :]
        layers[pattern, note.detail].append(int(match.group(1)))
        single[pattern, note.detail] = note.key
    lines = []
    for (pattern, detail), key in single.items():
        numbers = layers.get((pattern, detail), [])
        if len(numbers) > 1:
            text = pattern.replace("{}", "{" + number_ranges(numbers) + "}", 1)
            text += f" ({len(numbers)} keys)"
        else:
            text = key
        lines.append(f"{text}: {detail}" if detail else text)
    return lines


def number_ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 5, 7, 8]`` -> ``"0-3,5,7-8"``."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    start = previous = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(parts)
