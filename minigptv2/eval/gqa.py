"""GQA test-dev (balanced): compositional questions on Visual Genome images, exact match.

File: ``testdev_balanced_questions.json`` from the official release, a dict
``{question_id: {"imageId": "n161313", "question": ..., "answer": ..., ...}}`` (a list of
``{"image", "question", "answer"}`` as the reference preprocessed it is accepted too). Images:
``{imageId}.jpg`` (also under ``images/``). Prompt as OK-VQA (spec §6.3), greedy, 20 new tokens.
Scoring: the lower-cased, trimmed answer equals the label (the official GQA rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minigptv2.eval.benchmark import (
    Benchmark,
    BenchmarkDataError,
    Item,
    Record,
    Source,
    find_file,
    greedy,
    limited,
    read_json,
    require,
    resolve_images,
    summarise_accuracy,
)
from minigptv2.eval.metrics import gqa_correct
from minigptv2.eval.vqa import PROMPT

FILES = {
    "testdev": ("testdev_balanced_questions.json", "questions/testdev_balanced_questions.json")
}


def read_questions(path: Path) -> list[dict[str, Any]]:
    """``{"key", "image", "question", "answer"}`` per question, in file order."""
    data = read_json(path)
    if isinstance(data, dict):
        rows = []
        for key, row in data.items():
            row = require(row, ("imageId", "question", "answer"), f"{path} question {key}")
            rows.append({"key": str(key), "image": f"{row['imageId']}.jpg", **_qa(row)})
        return rows
    if isinstance(data, list):
        rows = []
        for index, row in enumerate(data):
            row = require(row, ("image", "question", "answer"), f"{path} entry {index}")
            image = str(row["image"])
            image = image if image.endswith(".jpg") else f"{image}.jpg"
            rows.append({"key": str(row.get("question_id", index)), "image": image, **_qa(row)})
        return rows
    raise BenchmarkDataError(f"{path} should hold a JSON object of questions")


def _qa(row: dict[str, Any]) -> dict[str, str]:
    return {"question": str(row["question"]), "answer": str(row["answer"])}


def load(source: Source) -> list[Item]:
    folder = source.annotations("gqa", "the folder with testdev_balanced_questions.json")
    rows = limited(read_questions(find_file(folder, FILES[source.split], "gqa")), source.limit)
    images = resolve_images(
        source.image_root("gqa"), [(row["image"], f"images/{row['image']}") for row in rows], "gqa"
    )
    return [
        Item(row["key"], "vqa", image, PROMPT.format(row["question"]), {"answer": row["answer"]})
        for row, image in zip(rows, images, strict=True)
    ]


def score(item: Item, answer: str) -> Record:
    parsed = bool(answer.strip())
    return {
        "key": item.key,
        "answer": answer,
        "parsed": parsed,
        "correct": gqa_correct(answer if parsed else None, item.target["answer"]),
    }


BENCHMARK = Benchmark(
    name="gqa",
    splits=tuple(FILES),
    load=load,
    score=score,
    summarise=summarise_accuracy,
    generation=greedy(20),
    headline=("accuracy",),
)
