"""RefCOCO, RefCOCO+ and RefCOCOg referring-expression comprehension (spec §6.2).

Files: the authors' evaluation splits, one JSON list per split named ``{dataset}_{split}.json``
(flat, or in a ``{dataset}/`` subfolder as their script expects). Each entry is one expression::

    {"img_id": "COCO_train2014_000000580957_4", "sents": "bowl behind the others",
     "bbox": [468.3, 0.91, 171.7, 116.12], "height": 428, "width": 640}

The image is the first 27 characters of ``img_id`` + ``.jpg`` (COCO train2014). Prompt
``[refer] give me the location of {sents}``, greedy decoding, 20 new tokens.

Scoring is per expression. (The reference collects answers per ``img_id`` and scores each of them
against that id's box; expressions sharing an ``img_id`` share the object and box in every shipped
split, so the counts are the same.) Two readings of each answer:

* standard, tolerant (``acc50``, ``mean_iou``): the first box anywhere in the answer, values
  clamped to 0..100 and corners reordered (``boxes.parse_box``); hit when IoU >= 0.5.
* reference (``acc50_reference_rule``): exactly MiniGPT-v2's ``eval_ref.py``, the rule of the
  paper's numbers: the answer must open with ``{<d><d><d><d>}`` (1-3 digits each) after deleting
  ``<unk>`` and spaces, hold no other integer, and is used as written (no clamping, no
  reordering; ``metrics.reference_refer_box``); hit when the "+1 pixel" IoU is strictly > 0.5.
  Its ``--resample`` re-asking of rejected answers is not reproduced: they are misses here, as
  in the script without that flag.
"""

from __future__ import annotations

from typing import Any

from minigptv2.boxes import parse_box, xywh_to_xyxy
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
)
from minigptv2.eval.metrics import refer_iou, refer_scores, reference_refer_box

SPLITS = {
    "refcoco": ("val", "testA", "testB"),
    "refcoco+": ("val", "testA", "testB"),
    "refcocog": ("val", "test"),
}
PROMPT = "[refer] give me the location of {}"
IMAGE_NAME_LENGTH = 27  # "COCO_train2014_" + 12 digits
FIELDS = ("img_id", "sents", "bbox", "height", "width")


def split_file(source: Source, dataset: str) -> Any:
    folder = source.annotations(dataset, "the folder with refcoco_val.json etc.")
    name = f"{dataset}_{source.split}.json"
    return find_file(folder, (name, f"{dataset}/{name}"), dataset)


def read_entries(path: Any, dataset: str) -> list[dict[str, Any]]:
    """The split's entries, checked: every field present, a 4-number box, a positive size."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise BenchmarkDataError(f"{path} should hold a JSON list of expressions")
    entries = []
    for index, row in enumerate(rows):
        where = f"{path} entry {index}"
        row = require(row, FIELDS, where)
        bbox = row["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise BenchmarkDataError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        if not (row["width"] > 0 and row["height"] > 0):
            raise BenchmarkDataError(f"{where}: width/height must be positive")
        sentence = row["sents"]
        if isinstance(sentence, list):  # the reference's re-queued form, one expression
            sentence = sentence[0]
        entries.append({**row, "sents": str(sentence)})
    return entries


def loader(dataset: str):
    def load(source: Source) -> list[Item]:
        entries = limited(read_entries(split_file(source, dataset), dataset), source.limit)
        names = [entry["img_id"][:IMAGE_NAME_LENGTH] + ".jpg" for entry in entries]
        root = source.image_root(dataset)
        images = resolve_images(root, [(name, f"train2014/{name}") for name in names], dataset)
        return [
            Item(
                key=f"{index}",  # position in the split file: one key per expression
                task="refer",
                image=image,
                prompt=PROMPT.format(entry["sents"]),
                target={
                    "img_id": entry["img_id"],
                    "box": list(xywh_to_xyxy(entry["bbox"])),
                    "width": entry["width"],
                    "height": entry["height"],
                },
            )
            for index, (entry, image) in enumerate(zip(entries, images, strict=True))
        ]

    return load


def score(item: Item, answer: str) -> Record:
    target = item.target
    box = parse_box(answer, target["width"], target["height"], allow_bare=False)
    reference_box = reference_refer_box(answer, target["width"], target["height"])
    return {
        "key": item.key,
        "img_id": target["img_id"],
        "answer": answer,
        "parsed": box is not None,
        "box": None if box is None else list(box),  # pixels; JSON keeps floats exactly
        "reference_box": None if reference_box is None else list(reference_box),
        "target": target["box"],
        "iou": refer_iou(box, tuple(target["box"])),
    }


def summarise(records: list[Record]) -> dict[str, Any]:
    """Acc@0.5 under both readings and mean IoU, one prediction per expression."""
    if any("reference_box" not in r for r in records):
        raise BenchmarkDataError(
            "the saved predictions were scored by an older minigptv2 (no reference_box); "
            "evaluate into a new --out folder"
        )
    predicted = [None if r["box"] is None else tuple(r["box"]) for r in records]
    as_written = [
        None if r["reference_box"] is None else tuple(r["reference_box"]) for r in records
    ]
    targets = [tuple(r["target"]) for r in records]
    standard = refer_scores(predicted, targets)
    reference = refer_scores(as_written, targets, reference_rule=True)
    return {
        "acc50": standard.acc50,
        "acc50_reference_rule": reference.acc50,
        "mean_iou": standard.mean_iou,
        "n": standard.n,
        "unparsable": standard.unparsable,
        "unparsable_reference_rule": reference.unparsable,
    }


BENCHMARKS = {
    dataset: Benchmark(
        name=dataset,
        splits=splits,
        load=loader(dataset),
        score=score,
        summarise=summarise,
        generation=greedy(20),
        headline=("acc50", "acc50_reference_rule", "mean_iou"),
    )
    for dataset, splits in SPLITS.items()
}
