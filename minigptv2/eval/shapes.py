"""The Shapes benchmark: fixed held-out scenes per task, scored with exact ground truth.

Splits: ``test`` and ``val`` (112 px squares, the shipped model's world), ``test-wide`` and
``val-wide`` (the same held-out rule, scenes 160-800 px a side at aspect 1:2 to 2:1); every scene
holds a (colour, shape) pair no training scene has (``minigptv2.data.shapes.HELD_OUT``).

Tasks and metrics (all fractions in [0, 1]):

* ``refer``     — Acc@0.5: the first box of the answer has IoU >= 0.5 with the target.
* ``vqa``       — exact match after lower-casing and dropping articles/punctuation.
* ``identify``  — exact match of the object's name ("red circle").

Languages: ``--language ko`` asks the same questions about the same scenes in Korean
(``minigptv2.data.shapes_languages``; Korean item ``i`` is the translation of English item
``i``), so the two sets of scores compare item by item. Korean answers of vqa and identify are
exact-matched after ``minigptv2.eval.metrics.normalise_korean_answer`` (spacing, punctuation, one
polite or copula ending, yes/no variants, counts in any form); the box tasks score boxes only.
* ``detection`` — F1 of all answer boxes against all target boxes (one-to-one, IoU >= 0.5).
* ``grounding`` — recall@0.5 of the scene's objects among the grounded caption's boxes.

An answer with no parsable box counts as a miss and is counted in ``unparsable``.

Seen and unseen: every headline key ``K`` also comes as ``K_seen`` and ``K_unseen``, the same
metric over the questions whose target does not / does involve a held-out (colour, shape) pair,
an object no training scene shows:

* refer, identify: the target object (the one referred to, the one in the box) is held out.
* vqa: an object the question is about or its answer depends on is held out, or the question
  names a held-out pair: the object asked about (colour/shape of "the circle on the left", "the
  object at {box}"), both objects of a relation, the objects counted ("how many blue shapes":
  the blue ones; "how many shapes": all, so always unseen), and for "is there a blue triangle?"
  and "how many blue triangles?" the pair named (a "no" still needs the unseen pair understood).
* detection: any of the target boxes (the answer's objects) is a held-out object.
* grounding: per object, not per question: ``grounding_recall50_unseen`` is the recall over the
  held-out objects of all scenes, ``_seen`` over the others.

``n`` counts questions per task; ``n_seen`` and ``n_unseen`` count those in each subset (for
grounding, objects: the unit its recall is over). A subset with nothing in it scores None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from minigptv2.boxes import parse_box, parse_grounding
from minigptv2.data.sample import Sample
from minigptv2.data.shapes import HELD_OUT, ShapesConfig, evaluation_set
from minigptv2.data.shapes_languages import LEXICONS
from minigptv2.eval.benchmark import Benchmark, BenchmarkDataError, Item, Source
from minigptv2.eval.metrics import Matching, exact_match, matched_targets, refer_correct

# Answer lengths: a box is short, a grounded caption of four objects is the longest.
MAX_NEW_TOKENS = {"refer": 16, "vqa": 8, "identify": 8, "detection": 64, "grounding": 96}
# Questions per task when no --limit is given.
DEFAULT_PER_TASK = 200
HEADLINE = ("refer_acc50", "vqa_acc", "identify_acc", "detection_f1", "grounding_recall50")


def items(split: str, per_task: int, language: str = "en") -> list[Item]:
    """``per_task`` fixed questions of every task in ``language``, the same on every machine."""
    config = ShapesConfig(language=language)
    result = []
    for task in MAX_NEW_TOKENS:
        for index, sample in enumerate(evaluation_set(task, per_task, split=split, config=config)):
            result.append(_item(task, index, sample))
    return result


def _item(task: str, index: int, sample: Sample) -> Item:
    turn = sample.turns[0]
    return Item(f"{task}:{index}", task, sample.image, turn.user, dict(sample.targets))


def load(source: Source) -> list[Item]:
    """``--limit`` questions of every task (default 200); no files needed."""
    return items(source.split, source.limit or DEFAULT_PER_TASK, source.language)


# -- which targets are unseen ---------------------------------------------------------------------


def _held_out(obj: dict[str, Any]) -> bool:
    return (obj["color"], obj["shape"]) in HELD_OUT


def _box_objects(target: dict[str, Any]) -> list[dict[str, Any]]:
    """The object behind each target box (boxes are objects' visible boxes, unique per scene)."""
    by_box = {tuple(obj["box"]): obj for obj in target["objects"]}
    return [by_box[tuple(box)] for box in target["boxes"]]


def _vqa_unseen(target: dict[str, Any]) -> bool:
    """Whether a VQA question involves a held-out pair (module docstring)."""
    objects = target["objects"]
    if "object" in target:  # colour/shape of one object, or a relation to a landmark
        involved = [objects[target["object"]]]
        if "landmark" in target:
            involved.append(objects[target["landmark"]])
        return any(_held_out(obj) for obj in involved)
    # A count or existence question: the (colour, shape) it names, None for any.
    color, shape = target["named"]
    counted = [
        obj
        for obj in objects
        if (color is None or obj["color"] == color) and (shape is None or obj["shape"] == shape)
    ]
    return any(_held_out(obj) for obj in counted) or (color, shape) in HELD_OUT


# -- scoring -------------------------------------------------------------------------------------


def score(item: Item, answer: str) -> dict[str, Any]:
    """Per-item record: raw answer, whether it parsed, the task's numbers and ``unseen``."""
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
    return {
        "parsed": box is not None,
        "correct": refer_correct(box, item.target["boxes"][0]),
        "unseen": _held_out(item.target["objects"][item.target["object"]]),
    }


def _text(item: Item, answer: str, width: int, height: int) -> dict[str, Any]:
    if item.task == "vqa":
        unseen = _vqa_unseen(item.target)
    else:
        unseen = _held_out(item.target["objects"][item.target["object"]])
    return {
        "parsed": True,
        "correct": exact_match(answer, item.target["answer"], item.target["language"]),
        "unseen": unseen,
    }


def _boxes(item: Item, answer: str, width: int, height: int) -> dict[str, Any]:
    predicted = parse_grounding(answer, width, height).boxes
    targets = [tuple(box) for box in item.target["boxes"]]
    matched = matched_targets(predicted, targets)
    held_out = [_held_out(obj) for obj in _box_objects(item.target)]
    return {
        "parsed": bool(predicted),
        "true_positives": len(matched),
        "predicted": len(predicted),
        "targets": len(targets),
        "unseen": any(held_out),
        # Per object, for grounding's seen/unseen recall.
        "unseen_targets": sum(held_out),
        "unseen_true_positives": sum(held_out[j] for j in matched),
    }


SCORERS: dict[str, Callable[[Item, str, int, int], dict[str, Any]]] = {
    "refer": _refer,
    "vqa": _text,
    "identify": _text,
    "detection": _boxes,
    "grounding": _boxes,
}


# -- summary -------------------------------------------------------------------------------------


def _accuracy(rows: Sequence[dict[str, Any]]) -> float | None:
    return sum(row["correct"] for row in rows) / len(rows) if rows else None


def _matching(rows: Sequence[dict[str, Any]]) -> Matching:
    total = Matching(0, 0, 0)
    for row in rows:
        total = total + Matching(row["true_positives"], row["predicted"], row["targets"])
    return total


def _grounding_recall(rows: Sequence[dict[str, Any]], unseen: bool) -> tuple[float | None, int]:
    """Recall over the held-out objects (``unseen``) or the others, and how many there were."""
    if unseen:
        hits = sum(row["unseen_true_positives"] for row in rows)
        total = sum(row["unseen_targets"] for row in rows)
    else:
        hits = sum(row["true_positives"] - row["unseen_true_positives"] for row in rows)
        total = sum(row["targets"] - row["unseen_targets"] for row in rows)
    return (hits / total if total else None), total


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's numbers from per-item records (order does not matter)."""
    by_task: dict[str, list[dict[str, Any]]] = {task: [] for task in MAX_NEW_TOKENS}
    for record in records:
        if "unseen" not in record:
            raise BenchmarkDataError(
                f"prediction {record['key']!r} was scored by an older minigptv2 (no seen/unseen "
                "fields); run the evaluation again with a new --out folder"
            )
        by_task[record["task"]].append(record)

    def metrics(rows: dict[str, list[dict[str, Any]]]) -> dict[str, float | None]:
        detection, grounding = _matching(rows["detection"]), _matching(rows["grounding"])
        return {
            "refer_acc50": _accuracy(rows["refer"]),
            "vqa_acc": _accuracy(rows["vqa"]),
            "identify_acc": _accuracy(rows["identify"]),
            "detection_f1": detection.f1 if rows["detection"] else None,
            "grounding_recall50": grounding.recall if rows["grounding"] else None,
        }

    # The whole set keeps its historical 0.0 for a task with no questions.
    summary: dict[str, Any] = {key: value or 0.0 for key, value in metrics(by_task).items()}
    counts: dict[str, dict[str, int]] = {}
    for name, unseen in (("seen", False), ("unseen", True)):
        subset = {
            task: [row for row in rows if row["unseen"] == unseen] for task, rows in by_task.items()
        }
        scores = metrics(subset)
        scores["grounding_recall50"], objects = _grounding_recall(by_task["grounding"], unseen)
        summary.update({f"{key}_{name}": value for key, value in scores.items()})
        counts[name] = {task: len(rows) for task, rows in subset.items()}
        counts[name]["grounding"] = objects
    summary["n"] = {task: len(rows) for task, rows in by_task.items()}
    summary["n_seen"], summary["n_unseen"] = counts["seen"], counts["unseen"]
    summary["unparsable"] = {
        task: sum(not row["parsed"] for row in rows) for task, rows in by_task.items()
    }
    return summary


def generation(task: str):
    from minigptv2.assistant import GenerationConfig

    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS[task])


BENCHMARK = Benchmark(
    name="shapes",
    # val-wide / test-wide: held-out scenes of 160-800 px a side at aspect 1:2 to 2:1, which the
    # model squashes to its square input (minigptv2.data.shapes.WORLDS["wide"]).
    splits=("test", "val", "test-wide", "val-wide"),
    languages=tuple(LEXICONS),
    load=load,
    score=score,
    summarise=summarise,
    generation=generation,
    headline=HEADLINE,
)
