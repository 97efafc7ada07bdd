"""``minigptv2 data check``: validate a custom JSONL file and report every bad row by line number.

Every row is checked (the run does not stop at the first problem): JSON syntax, the row's keys and
turns, task tokens, box syntax and range, that the image exists and decodes (consecutive rows
about the same image decode it once), and, given a model's processor, that training would not
skip the row as too long (its tokenizer and limits: context, ``max_txt_len``, positions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image

from minigptv2.data.custom import parse_row
from minigptv2.errors import DataError, PromptError
from minigptv2.images import load_image
from minigptv2.processor import Processor


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


def model_processor(model: str | Path | None = None) -> Processor:
    """The processor of a model folder or shipped model name (default: the shipped model), from
    its config and tokenizer alone: the weights are not read."""
    from minigptv2.checkpoints.pretrained import read_folder
    from minigptv2.config import resolve_model
    from minigptv2.tokenizer import Tokenizer

    folder = resolve_model(model)
    return Processor(Tokenizer(folder), read_folder(folder).config)


def check_file(path: str | Path, processor: Processor | None = None) -> CheckReport:
    """Check every row of a custom JSONL file (see ``minigptv2.data.custom``); with
    ``processor``, also report rows training with that model would skip as too long."""
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
        elif processor is not None:
            sample = parsed.sample
            try:
                processor.training_length(sample.turns, image=sample.image is not None)
            except PromptError as error:
                report.bad.append((number, f"training would skip this row: {error}"))
    return report
