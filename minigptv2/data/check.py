"""``minigptv2 data check``: validate a custom JSONL file and report every bad row by line number.

Every row is checked (the run does not stop at the first problem): JSON syntax, the row's keys and
turns, task tokens, box syntax and range, and that the image exists and decodes (consecutive rows
about the same image decode it once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image

from minigptv2.data.custom import parse_row
from minigptv2.errors import DataError
from minigptv2.images import load_image


@dataclass
class CheckReport:
    """Rows seen and, for each bad row, its line number and what is wrong with it."""

    path: Path
    rows: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)


def check_file(path: str | Path) -> CheckReport:
    """Check every row of a custom JSONL file (see ``minigptv2.data.custom``)."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.jsonl"))
        if len(candidates) != 1:
            raise DataError(
                f"{path} is a folder with {len(candidates)} .jsonl files; pass the file to check"
            )
        path = candidates[0]
    if not path.is_file():
        raise DataError(f"file not found: {path}; pass a custom-format .jsonl file")

    # A row's image is decoded to check it and to bound its boxes; rows about the same image
    # usually follow each other, so a small cache avoids decoding it again.
    @lru_cache(maxsize=64)
    def read_image(image_path: Path) -> Image.Image:
        return load_image(image_path)

    report = CheckReport(path)
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        report.rows += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            report.bad.append((number, f"not UTF-8 text ({error})"))
            continue
        parsed = parse_row(text, path.parent, read_image)
        if parsed.problems:
            report.bad.append((number, "; ".join(parsed.problems)))
    return report
