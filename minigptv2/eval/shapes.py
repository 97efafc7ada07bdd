"""The Shapes benchmark: fixed held-out scenes per task, scored with exact ground truth.

Splits: ``test`` and ``val`` (112 px squares, the shipped model's world), ``test-wide`` and
``val-wide`` (the same held-out rule, scenes 160-800 px a side at aspect 1:2 to 2:1); every scene
holds a (colour, shape) pair no training scene has (``minigptv2.data.shapes``).

Tasks and metrics (all fractions in [0, 1]):

* ``refer``     — Acc@0.5: the first box of the answer has IoU >= 0.5 with the target.
* ``vqa``       — exact match after lower-casing and dropping articles/punctuation.
* ``identify``  — exact match of the object's name ("red circle").
* ``detection`` — F1 of all answer boxes against all target boxes (one-to-one, IoU >= 0.5).
* ``grounding`` — recall@0.5 of the scene's objects among the grounded caption's boxes.

An answer with no parsable box counts as a miss and is counted in ``unparsable``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minigptv2.boxes import parse_box, parse_grounding
from minigptv2.data.sample import Sample
from minigptv2.data.shapes import evaluation_set
from minigptv2.eval.benchmark import Benchmark, Item, Source
from minigptv2.eval.metrics import Matching, exact_match, match_boxes, refer_correct

# Answer lengths: a box is short, a grounded caption of four objects is the longest.
MAX_NEW_TOKENS = {"refer": 16, "vqa": 8, "identify": 8, "detection": 64, "grounding": 96}
# Questions per task when no --limit is given.
DEFAULT_PER_TASK = 200


def items(split: str, per_task: int) -> list[Item]:
    """``per_task`` fixed questions of every task, the same on every machine."""
    result = []
    for task in MAX_NEW_TOKENS:
        for index, sample in enumerate(evaluation_set(task, per_task, split=split)):
            result.append(_item(task, index, sample))
    return result


def _item(task: str, index: int, sample: Sample) -> Item:
    turn = sample.turns[0]
    return Item(f"{task}:{index}", task, sample.image, turn.user, dict(sample.targets))


def load(source: Source) -> list[Item]:
    """``--limit`` questions of every task (default 200); no files needed."""
    return items(source.split, source.limit or DEFAULT_PER_TASK)


def score(item: Item, answer: str) -> dict[str, Any]:
    """Per-item record: raw answer, whether it parsed, and the task's numbers."""
    width, height = item.image.size
    scorer = SCORERS[item.task]
    return {
        "key": item.key,
        "task": item.task,
        "answer": answer,
        **scorer(item, answer, width, height),
    }


def _refer(item: Item, answer: str, width: int, height: int) -> dict[str, Any]:
    box = parse_box(answer, width, height, allow_bare=False)
    return {"parsed": box is not None, "correct": refer_correct(box, item.target["boxes"][0])}


def _text(item: Item, answer: str, width: int, height: int) -> dict[str, Any]:
    return {"parsed": True, "correct": exact_match(answer, item.target["answer"])}


def _boxes(item: Item, answer: str, width: int, height: int) -> dict[str, Any]:
    predicted = parse_grounding(answer, width, height).boxes
    targets = [tuple(box) for box in item.target["boxes"]]
    matching = match_boxes(predicted, targets)
    return {
        "parsed": bool(predicted),
        "true_positives": matching.true_positives,
        "predicted": matching.predicted,
        "targets": matching.targets,
    }


SCORERS: dict[str, Callable[[Item, str, int, int], dict[str, Any]]] = {
    "refer": _refer,
    "vqa": _text,
    "identify": _text,
    "detection": _boxes,
    "grounding": _boxes,
}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's numbers from per-item records (order does not matter)."""
    by_task: dict[str, list[dict[str, Any]]] = {task: [] for task in MAX_NEW_TOKENS}
    for record in records:
        by_task[record["task"]].append(record)

    def accuracy(task: str) -> float:
        rows = by_task[task]
        return sum(row["correct"] for row in rows) / len(rows) if rows else 0.0

    def matching(task: str) -> Matching:
        total = Matching(0, 0, 0)
        for row in by_task[task]:
            total = total + Matching(row["true_positives"], row["predicted"], row["targets"])
        return total

    return {
        "refer_acc50": accuracy("refer"),
        "vqa_acc": accuracy("vqa"),
        "identify_acc": accuracy("identify"),
        "detection_f1": matching("detection").f1,
        "grounding_recall50": matching("grounding").recall,
        "n": {task: len(rows) for task, rows in by_task.items()},
        "unparsable": {
            task: sum(not row["parsed"] for row in rows) for task, rows in by_task.items()
        },
    }


def generation(task: str):
    from minigptv2.assistant import GenerationConfig

    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS[task])


BENCHMARK = Benchmark(
    name="shapes",
    # val-wide / test-wide: held-out scenes of 160-800 px a side at aspect 1:2 to 2:1, which the
    # model squashes to its square input (minigptv2.data.shapes.WORLDS["wide"]).
    splits=("test", "val", "test-wide", "val-wide"),
    load=load,
    score=score,
    summarise=summarise,
    generation=generation,
    headline=("refer_acc50", "vqa_acc", "identify_acc", "detection_f1", "grounding_recall50"),
)
