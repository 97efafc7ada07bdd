"""POPE: polling-based object probing ("Is there a {object} in the image?") on COCO val2014.

Files in ``--data-root``: the official ``coco_pope_{random,popular,adversarial}.json`` (JSON
Lines despite the name; also under ``coco/``), one question per line::

    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg",
     "text": "Is there a snowboard in the image?", "label": "yes"}

Images flat or under ``val2014/``. The paper does not evaluate POPE; we ask with the model's
short-answer VQA prompt (spec §4.2), greedy, 20 new tokens. Scores: accuracy, precision, recall
and F1 with "yes" as the positive class, and the fraction of "yes" answers, under two readings:

* tolerant (``accuracy``, ...): "no"/"not" in the first sentence is a no, "yes" there is a yes,
  case-insensitively; an answer with neither is unparsable and wrong (``metrics.pope_answer``).
* official (``accuracy_official``, ...): exactly the POPE authors' ``evaluate.py``: a no only
  if the first sentence has the case-sensitive word "No", "no" or "not", a yes otherwise, so
  every answer counts and rambling counts as yes (``metrics.pope_answer_official``). Where that
  script would divide by zero (no "yes" answers, say) the score is reported as 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    read_jsonl,
    require_rows,
    resolve_images,
)
from minigptv2.eval.metrics import binary_scores, pope_answer, pope_answer_official
from minigptv2.eval.vqa import PROMPT

SPLITS = ("random", "popular", "adversarial")


def load(source: Source) -> list[Item]:
    folder = source.annotations("pope", "the folder with coco_pope_random.json")
    name = f"coco_pope_{source.split}"
    candidates = (f"{name}.json", f"{name}.jsonl", f"coco/{name}.json", f"coco/{name}.jsonl")
    path = find_file(folder, candidates, "pope")
    rows = require_rows(read_jsonl(path), ("question_id", "image", "text", "label"), path)
    for row in rows:
        if row["label"] not in ("yes", "no"):
            raise BenchmarkDataError(f"{path}: question {row['question_id']} label is not yes/no")
    rows = limited(rows, source.limit)
    names = [(row["image"], f"val2014/{row['image']}") for row in rows]
    images = resolve_images(source.image_root("pope"), names, "pope")
    return [
        Item(
            key=str(row["question_id"]),
            task="vqa",
            image=image,
            prompt=PROMPT.format(row["text"]),
            target={"label": row["label"] == "yes"},
        )
        for row, image in zip(rows, images, strict=True)
    ]


def score(item: Item, answer: str) -> Record:
    said = pope_answer(answer)
    return {
        "key": item.key,
        "answer": answer,
        "parsed": said is not None,
        "said_yes": said,
        "label": item.target["label"],
    }


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    labels = [r["label"] for r in records]
    scores = binary_scores([r["said_yes"] for r in records], labels)
    # Read from the answer text, so predictions saved before this reading existed still score.
    official = binary_scores([pope_answer_official(r["answer"]) for r in records], labels)
    return {
        "accuracy": scores.accuracy,
        "precision": scores.precision,
        "recall": scores.recall,
        "f1": scores.f1,
        "yes_ratio": scores.yes_ratio,
        "accuracy_official": official.accuracy,
        "precision_official": official.precision,
        "recall_official": official.recall,
        "f1_official": official.f1,
        "yes_ratio_official": official.yes_ratio,
        "n": scores.n,
        "unparsable": scores.unparsable,
    }


BENCHMARK = Benchmark(
    name="pope",
    splits=SPLITS,
    load=load,
    score=score,
    summarise=summarise,
    generation=greedy(20),
    headline=(
        "accuracy",
        "precision",
        "recall",
        "f1",
        "yes_ratio",
        "accuracy_official",
        "f1_official",
        "yes_ratio_official",
    ),
)
