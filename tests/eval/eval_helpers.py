"""Fixture files in the benchmarks' real formats, and a scripted stand-in for the model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from minigptv2.assistant import Answer


class ScriptedAssistant:
    """Answers each prompt with ``reply(prompt)``; records every call (no model, instant)."""

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply = reply
        self.calls: list[tuple[list[Any], list[str], Any]] = []

    def generate(self, images: Sequence[Any], prompts: Sequence[str], config: Any) -> list[Answer]:
        self.calls.append((list(images), list(prompts), config))
        return [Answer(self.reply(prompt)) for prompt in prompts]


def write_image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 80, 40)).save(path)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
