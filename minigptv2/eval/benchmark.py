"""What every benchmark provides to the runner, and helpers for reading benchmark files.

A benchmark is a ``Benchmark`` value: how to read its questions (``load``), how to ask them
(``generation`` per task, or a custom ``answer`` for benchmarks scored without generation), how to
score one answer (``score`` -> a JSON-able record that keeps the raw answer) and how to summarise
the records (``summarise`` -> fractions in [0, 1] plus ``n`` and ``unparsable``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minigptv2.errors import ConfigError

if TYPE_CHECKING:
    from minigptv2.assistant import Assistant, GenerationConfig
    from minigptv2.images import ImageSource


class BenchmarkDataError(ConfigError):
    """A benchmark's annotation or image files are missing or not in the expected format."""


@dataclass(frozen=True)
class Item:
    """One benchmark question: what the model is asked and what scoring needs."""

    key: str
    task: str
    image: ImageSource | None
    prompt: str
    target: dict[str, Any]


@dataclass(frozen=True)
class Source:
    """Where a benchmark's files are and how much of it to run.

    ``data_root`` holds the annotation files, ``images`` the image files (defaults to
    ``data_root``); ``limit`` keeps the first N questions (None: all); ``language`` is the
    language the questions are asked in (one of the benchmark's ``languages``).
    """

    split: str
    data_root: Path | None = None
    images: Path | None = None
    limit: int | None = None
    language: str = "en"

    def annotations(self, benchmark: str, hint: str) -> Path:
        if self.data_root is None:
            raise BenchmarkDataError(
                f"{benchmark} needs its annotation files: pass --data-root FOLDER ({hint})"
            )
        if not self.data_root.is_dir():
            raise BenchmarkDataError(f"--data-root {self.data_root} is not a folder")
        return self.data_root

    def image_root(self, benchmark: str) -> Path:
        root = self.images or self.data_root
        if root is None or not root.is_dir():
            raise BenchmarkDataError(
                f"{benchmark} needs its images: pass --images FOLDER (got {root})"
            )
        return root


Record = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    name: str
    splits: tuple[str, ...]
    load: Callable[[Source], list[Item]]
    score: Callable[[Item, str], Record]
    summarise: Callable[[list[Record]], dict[str, Any]]
    generation: Callable[[str], GenerationConfig]
    # Metrics shown in the Markdown table; ``headline`` are fractions shown as percentages.
    headline: tuple[str, ...]
    numbers: tuple[str, ...] = ()
    # Benchmarks scored without free generation (IconVQA ranks choices) answer batches here.
    answer: Callable[[Assistant, list[Item]], list[str]] | None = field(default=None)
    # Languages its questions can be asked in (``Source.language``); the first is the default.
    languages: tuple[str, ...] = ("en",)


# -- reading files ---------------------------------------------------------------------------


def find_file(folder: Path, names: Sequence[str], benchmark: str) -> Path:
    """The first of ``names`` (relative paths) that exists in ``folder``."""
    for name in names:
        path = folder / name
        if path.is_file():
            return path
    raise BenchmarkDataError(
        f"{benchmark}: none of {', '.join(names)} found in {folder}; point --data-root at the "
        "folder that holds the benchmark's annotation files"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchmarkDataError(f"{path} is not readable JSON ({error})") from None


def read_jsonl(path: Path) -> list[Any]:
    """JSON Lines; a file holding one JSON list is accepted too (POPE ships both)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkDataError(f"{path} is not readable ({error})") from None
    if text.lstrip().startswith("["):
        return read_json(path)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"{path} line {number} is not JSON ({error})") from None
    return rows


def require(row: Any, keys: Iterable[str], where: str) -> dict[str, Any]:
    """``row`` as a dict that has ``keys``, or an error naming the entry and the missing keys."""
    if not isinstance(row, dict):
        raise BenchmarkDataError(f"{where} is {type(row).__name__}, expected an object")
    missing = [key for key in keys if key not in row]
    if missing:
        raise BenchmarkDataError(f"{where} lacks {', '.join(missing)} (has {', '.join(row)})")
    return row


def require_rows(rows: Any, keys: Sequence[str], path: Path) -> list[dict[str, Any]]:
    """Every row of a list-shaped file checked with ``require``."""
    if not isinstance(rows, list):
        raise BenchmarkDataError(f"{path} should hold a list of entries")
    return [require(row, keys, f"{path} entry {index}") for index, row in enumerate(rows)]


def resolve_images(root: Path, candidates: Sequence[Sequence[str]], benchmark: str) -> list[Path]:
    """For each item, the first existing candidate file under ``root``; all missing ones reported.

    Checked before any generation, so a wrong ``--images`` fails in a second, not after hours.
    """
    found: list[Path] = []
    missing: list[str] = []
    for names in candidates:
        for name in names:
            path = root / name
            if path.is_file():
                found.append(path)
                break
        else:
            missing.append(names[0])
    if missing:
        raise BenchmarkDataError(
            f"{benchmark}: {len(missing)} of {len(candidates)} images are missing under {root}, "
            f"e.g. {', '.join(missing[:3])}; pass --images pointing at the folder that holds them"
        )
    return found


def limited(rows: Sequence[Any], limit: int | None) -> list[Any]:
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    return list(rows if limit is None else rows[:limit])


def fraction(hits: Iterable[float]) -> float:
    values = list(hits)
    return sum(values) / len(values) if values else 0.0


def summarise_accuracy(records: Sequence[Record]) -> dict[str, Any]:
    """Accuracy of records carrying ``correct`` and ``parsed``, with ``n`` and ``unparsable``."""
    return {
        "accuracy": fraction(record["correct"] for record in records),
        "n": len(records),
        "unparsable": sum(not record["parsed"] for record in records),
    }


def greedy(max_new_tokens: int) -> Callable[[str], GenerationConfig]:
    """The reference evaluation's decoding: greedy, ``max_new_tokens`` (spec §1.14, §6.1)."""

    def config(task: str) -> GenerationConfig:
        from minigptv2.assistant import GenerationConfig

        return GenerationConfig(max_new_tokens=max_new_tokens)

    return config
