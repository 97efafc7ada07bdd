"""OK-VQA and VQAv2: open-ended questions on COCO, scored with the official VQA accuracy.

Files (the official releases, in ``--data-root``):

* OK-VQA: ``OpenEnded_mscoco_val2014_questions.json`` and ``mscoco_val2014_annotations.json``
  (the reference's ``*_clean.json`` copies are accepted too);
* VQAv2: ``v2_OpenEnded_mscoco_val2014_questions.json`` and ``v2_mscoco_val2014_annotations.json``.

Questions are ``{"questions": [{"image_id", "question", "question_id"}]}``; annotations
``{"annotations": [{"question_id", "answers": [{"answer", ...}] * 10, "answer_type", ...}]}``.
Images: ``COCO_val2014_{image_id:012d}.jpg`` (also under ``val2014/``), or the COCO-2017 name
``{image_id:012d}.jpg`` the reference used. Prompt (spec §6.3):
``[vqa] Based on the image, respond to this question with a short answer: {question}``, greedy,
20 new tokens. ``accuracy`` is the official metric; ``accuracy_reference_rule`` the variant of
MiniGPT-v2's copy of the scorer. An empty answer is unparsable (and scores 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigptv2.eval.benchmark import (
    Benchmark,
    BenchmarkDataError,
    Item,
    Record,
    Source,
    find_file,
    fraction,
    greedy,
    limited,
    read_json,
    require,
    resolve_images,
)
from minigptv2.eval.metrics import vqa_accuracy

PROMPT = "[vqa] Based on the image, respond to this question with a short answer: {}"
FILES = {
    "okvqa": (
        (
            "OpenEnded_mscoco_val2014_questions.json",
            "OpenEnded_mscoco_val2014_questions_clean.json",
        ),
        ("mscoco_val2014_annotations.json", "mscoco_val2014_annotations_clean.json"),
    ),
    "vqav2": (
        ("v2_OpenEnded_mscoco_val2014_questions.json",),
        ("v2_mscoco_val2014_annotations.json",),
    ),
}


def coco_image_names(image_id: int, split: str = "val2014") -> tuple[str, ...]:
    """Where a COCO image may be: 2014 names (flat or in their folder), or 2017 names."""
    name = f"COCO_{split}_{image_id:012d}.jpg"
    return (name, f"{split}/{name}", f"{image_id:012d}.jpg")


def read_questions(questions: Path, annotations: Path) -> list[dict[str, Any]]:
    """Questions joined with their human answers by ``question_id``, in the questions' order."""
    asked = require(read_json(questions), ("questions",), str(questions))["questions"]
    answered = require(read_json(annotations), ("annotations",), str(annotations))["annotations"]
    by_id = {}
    for index, row in enumerate(answered):
        row = require(row, ("question_id", "answers"), f"{annotations} annotation {index}")
        by_id[row["question_id"]] = row
    joined = []
    for index, row in enumerate(asked):
        row = require(row, ("image_id", "question", "question_id"), f"{questions} question {index}")
        if row["question_id"] not in by_id:
            raise BenchmarkDataError(
                f"question {row['question_id']} of {questions} has no entry in {annotations}; "
                "pass the annotation file of the same split"
            )
        annotation = by_id[row["question_id"]]
        answers = [answer["answer"] for answer in annotation["answers"]]
        joined.append({**row, "answers": answers, "answer_type": annotation.get("answer_type", "")})
    return joined


def loader(name: str):
    def load(source: Source) -> list[Item]:
        folder = source.annotations(name, f"the folder with {FILES[name][0][0]}")
        questions = find_file(folder, FILES[name][0], name)
        annotations = find_file(folder, FILES[name][1], name)
        rows = limited(read_questions(questions, annotations), source.limit)
        images = resolve_images(
            source.image_root(name), [coco_image_names(row["image_id"]) for row in rows], name
        )
        return [
            Item(
                key=str(row["question_id"]),
                task="vqa",
                image=image,
                prompt=PROMPT.format(row["question"]),
                target={"answers": row["answers"], "answer_type": row["answer_type"]},
            )
            for row, image in zip(rows, images, strict=True)
        ]

    return load


def score(item: Item, answer: str) -> Record:
    answers = item.target["answers"]
    parsed = bool(answer.strip())
    guess = answer if parsed else None
    return {
        "key": item.key,
        "answer": answer,
        "parsed": parsed,
        "answer_type": item.target["answer_type"],
        "accuracy": vqa_accuracy(guess, answers),
        "accuracy_reference_rule": vqa_accuracy(guess, answers, reference_rule=True),
    }


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    by_type: dict[str, list[float]] = defaultdict(list)
    for record in records:
        by_type[record["answer_type"] or "all"].append(record["accuracy"])
    return {
        "accuracy": fraction(record["accuracy"] for record in records),
        "accuracy_reference_rule": fraction(r["accuracy_reference_rule"] for r in records),
        "accuracy_per_answer_type": {kind: fraction(v) for kind, v in sorted(by_type.items())},
        "n": len(records),
        "unparsable": sum(not record["parsed"] for record in records),
    }


BENCHMARKS = {
    name: Benchmark(
        name=name,
        splits=("val",),
        load=loader(name),
        score=score,
        summarise=summarise,
        generation=greedy(20),
        headline=("accuracy", "accuracy_reference_rule"),
    )
    for name in FILES
}
