"""CHAIR: object hallucination in captions of COCO val2014 images (Rohrbach et al. 2018).

Files in ``--data-root`` (flat or under ``annotations/``): ``captions_val2014.json`` and
``instances_val2014.json``. An image's ground-truth objects are the COCO classes of its instance
annotations plus the classes its five reference captions mention (as in the official script).
Images: ``COCO_val2014_{id:012d}.jpg`` (flat or under ``val2014/``).

The sample is a fixed random draw of ``--limit`` images (default 500, the usual CHAIR sample),
the same on every machine. Splits are the paper's three prompt styles (spec §6.4, §9.4):

* ``long``     — a detailed description, no task identifier;
* ``grounded`` — ``[grounding] please describe this image in details`` (boxes are removed
  before counting);
* ``short``    — ``[caption] Briefly describe this image.``

The paper's exact prompts and image sample are not published in the repository; these use the
training instruction pools (spec §4.2). Scores: CHAIR_i, CHAIR_s, object recall and the mean
caption length in words.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigptv2.boxes import parse_grounding
from minigptv2.eval.benchmark import (
    Benchmark,
    BenchmarkDataError,
    Item,
    Record,
    Source,
    find_file,
    read_json,
    require,
    resolve_images,
)
from minigptv2.eval.coco_objects import CLASS_OF, caption_objects
from minigptv2.eval.metrics import chair_scores

PROMPTS = {
    "long": "Describe this image in detail.",
    "grounded": "[grounding] please describe this image in details",
    "short": "[caption] Briefly describe this image.",
}
MAX_NEW_TOKENS = {"long": 256, "grounded": 256, "short": 32}
DEFAULT_IMAGES = 500
SEED = 2018


def ground_truth(captions: Path, instances: Path) -> dict[int, set[str]]:
    """COCO class names present in each image, from its instances and its reference captions."""
    objects: dict[int, set[str]] = defaultdict(set)
    data = require(read_json(instances), ("annotations", "categories"), str(instances))
    names = {category["id"]: category["name"] for category in data["categories"]}
    for index, row in enumerate(data["annotations"]):
        row = require(row, ("image_id", "category_id"), f"{instances} annotation {index}")
        name = names.get(row["category_id"])
        if name not in CLASS_OF:
            raise BenchmarkDataError(
                f"{instances}: category {row['category_id']} ({name}) is not a COCO class"
            )
        objects[row["image_id"]].add(CLASS_OF[name])
    data = require(read_json(captions), ("annotations", "images"), str(captions))
    for index, row in enumerate(data["annotations"]):
        row = require(row, ("image_id", "caption"), f"{captions} annotation {index}")
        objects[row["image_id"]].update(name for _, name in caption_objects(row["caption"]))
    for image in data["images"]:
        objects.setdefault(image["id"], set())
    return dict(objects)


def sample_images(image_ids: Sequence[int], count: int) -> list[int]:
    """``count`` image ids drawn with a fixed seed (sorted first, so file order cannot matter)."""
    ids = sorted(image_ids)
    random.Random(SEED).shuffle(ids)
    return ids[:count]


def load(source: Source) -> list[Item]:
    folder = source.annotations("chair", "the folder with captions_val2014.json")
    names = ("captions_val2014.json", "annotations/captions_val2014.json")
    captions = find_file(folder, names, "chair")
    names = ("instances_val2014.json", "annotations/instances_val2014.json")
    instances = find_file(folder, names, "chair")
    truth = ground_truth(captions, instances)
    chosen = sample_images(list(truth), source.limit or DEFAULT_IMAGES)
    candidates = [
        (f"COCO_val2014_{image:012d}.jpg", f"val2014/COCO_val2014_{image:012d}.jpg")
        for image in chosen
    ]
    images = resolve_images(source.image_root("chair"), candidates, "chair")
    return [
        Item(
            key=str(image_id),
            task=source.split,
            image=image,
            prompt=PROMPTS[source.split],
            target={"objects": sorted(truth[image_id])},
        )
        for image_id, image in zip(chosen, images, strict=True)
    ]


def score(item: Item, answer: str) -> Record:
    text = parse_grounding(answer, 1, 1).text  # the caption without its box markup
    mentions = caption_objects(text)
    truth = set(item.target["objects"])
    return {
        "key": item.key,
        "answer": answer,
        "caption": text,
        "parsed": bool(text.strip()),
        "words": len(text.split()),
        "mentions": [name for _, name in mentions],
        "hallucinated": [word for word, name in mentions if name not in truth],
        "objects": item.target["objects"],
    }


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    scores = chair_scores([r["mentions"] for r in records], [set(r["objects"]) for r in records])
    return {
        "chair_i": scores.chair_i,
        "chair_s": scores.chair_s,
        "recall": scores.recall,
        "mean_words": sum(r["words"] for r in records) / len(records) if records else 0.0,
        "mentions": scores.mentions,
        "hallucinated_mentions": scores.hallucinated_mentions,
        "n": len(records),
        "unparsable": sum(not r["parsed"] for r in records),
    }


def generation(task: str):
    from minigptv2.assistant import GenerationConfig

    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS[task])


BENCHMARK = Benchmark(
    name="chair",
    splits=tuple(PROMPTS),
    load=load,
    score=score,
    summarise=summarise,
    generation=generation,
    headline=("chair_i", "chair_s", "recall"),
    numbers=("mean_words",),
)
