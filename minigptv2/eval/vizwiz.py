"""VizWiz VQA: questions from blind users' photos, many of them unanswerable.

File: the official ``val.json`` (also under ``Annotations/``), a list of::

    {"image": "VizWiz_val_00000000.jpg", "question": ..., "answerable": 0 or 1,
     "answer_type": ..., "answers": [{"answer": ..., "answer_confidence": ...}] * 10}

Images flat or under ``val/``. Prompt and decoding as the reference (spec §6.3): greedy,
20 new tokens, with the instruction to reply "unanswerable".

``accuracy`` is the official VizWiz metric, which is the VQA accuracy (normalisation and the
leave-one-out average over the ten answers), "unanswerable" being an ordinary answer. It is also
reported on the questions the annotators marked unanswerable and on the others.
``accuracy_reference_rule`` is MiniGPT-v2's simplified score (spec §10.10), for comparing with the
paper's number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from minigptv2.eval.benchmark import (
    Benchmark,
    Item,
    Record,
    Source,
    find_file,
    fraction,
    greedy,
    limited,
    read_json,
    require_rows,
    resolve_images,
)
from minigptv2.eval.metrics import vizwiz_reference_accuracy, vqa_accuracy

PROMPT = (
    "[vqa] The question is '{}' Based on the image, answer the question with a single word or "
    "phrase. and reply 'unanswerable' when the provided information is insufficient"
)


def load(source: Source) -> list[Item]:
    folder = source.annotations("vizwiz", "the folder with val.json")
    name = f"{source.split}.json"
    path = find_file(folder, (name, f"Annotations/{name}"), "vizwiz")
    rows = require_rows(read_json(path), ("image", "question", "answers"), path)
    rows = limited(rows, source.limit)
    candidates = [(row["image"], f"{source.split}/{row['image']}") for row in rows]
    images = resolve_images(source.image_root("vizwiz"), candidates, "vizwiz")
    return [
        Item(
            key=row["image"],
            task="vqa",
            image=image,
            prompt=PROMPT.format(row["question"]),
            target={
                "answers": [answer["answer"] for answer in row["answers"]],
                "answerable": bool(row.get("answerable", 1)),
            },
        )
        for row, image in zip(rows, images, strict=True)
    ]


def score(item: Item, answer: str) -> Record:
    parsed = bool(answer.strip())
    guess = answer if parsed else None
    answers = item.target["answers"]
    return {
        "key": item.key,
        "answer": answer,
        "parsed": parsed,
        "answerable": item.target["answerable"],
        "accuracy": vqa_accuracy(guess, answers),
        "accuracy_reference_rule": vizwiz_reference_accuracy(guess, answers),
    }


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    unanswerable = [r["accuracy"] for r in records if not r["answerable"]]
    return {
        "accuracy": fraction(r["accuracy"] for r in records),
        "accuracy_reference_rule": fraction(r["accuracy_reference_rule"] for r in records),
        "accuracy_unanswerable": fraction(unanswerable),
        "accuracy_answerable": fraction(r["accuracy"] for r in records if r["answerable"]),
        "n": len(records),
        "n_unanswerable": len(unanswerable),
        "unparsable": sum(not r["parsed"] for r in records),
    }


BENCHMARK = Benchmark(
    name="vizwiz",
    splits=("val",),
    load=load,
    score=score,
    summarise=summarise,
    generation=greedy(20),
    headline=(
        "accuracy",
        "accuracy_reference_rule",
        "accuracy_unanswerable",
        "accuracy_answerable",
    ),
)
