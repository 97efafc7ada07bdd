"""LLaVA-Instruct-150K: detailed descriptions, complex reasoning and conversations (spec §4.1).

Each file (``detail_23k.json``, ``complex_reasoning_77k.json``, ``conversation_58k.json``) is a
list of ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}, ...]}`` over COCO
train2014 images ``COCO_train2014_{id}.jpg``. No task identifier is used (spec §3.1).

* detail / reasoning: one turn; the first human message without ``<image>`` and newlines,
  processed, and the first answer as written.
* conversation: every (human, gpt) pair is a turn, texts as written except that ``<image>`` and
  newlines are removed from the first question (spec §1.12). The model is trained on every answer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigptv2.data.reader import Reader, process_text, read_image, read_json, require
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError
from minigptv2.prompts import Turn

KINDS: dict[str, str] = {
    "detail": "llava_detail",
    "reason": "llava_reason",
    "conversation": "llava_conversation",
}


def first_question(text: str) -> str:
    """The first human message without the ``<image>`` marker and line breaks."""
    return text.replace("<image>", "").replace("\n", "").strip()


def conversation_turns(messages: Sequence[dict[str, Any]], where: str) -> tuple[Turn, ...]:
    """Alternating human/gpt messages as turns (an unanswered trailing question is dropped)."""
    turns = []
    for position in range(0, len(messages) - 1, 2):
        human, gpt = messages[position], messages[position + 1]
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise DataError(f"{where}: messages must alternate human, gpt; got {human.get('from')}")
        question = human["value"]
        question = first_question(question) if position == 0 else question.strip()
        turns.append(Turn(question, gpt["value"]))
    if not turns:
        raise DataError(f"{where}: no answered question in the conversation")
    return tuple(turns)


class LLaVA(Reader):
    """One LLaVA-Instruct file; ``kind`` is ``detail``, ``reason`` or ``conversation``."""

    def __init__(self, annotation: str | Path, images: str | Path, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise DataError(f"unknown LLaVA kind {kind!r}; use one of {list(KINDS)}")
        self.kind = kind
        self.source = KINDS[kind]
        self.images = Path(images)
        self.records = read_json(Path(annotation))
        if self.records:
            require(self.records[0], ("id", "conversations"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image = read_image(self.images / f"COCO_train2014_{entry['id']}.jpg")
        messages = entry["conversations"]
        where = f"{self.source} record {entry['id']}"
        if self.kind == "conversation":
            return Sample(image, conversation_turns(messages, where), None, self.source)
        turn = conversation_turns(messages[:2], where)[0]
        return self.single_turn(image, None, process_text(turn.user), turn.assistant)
