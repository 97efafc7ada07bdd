"""VSR (Visual Spatial Reasoning), zero-shot split: is a spatial statement about the image true?

File: the official JSON Lines of the zero-shot split (``test.jsonl``, also under ``zeroshot/``;
the HF dataset ``cambridgeltl/vsr_zeroshot`` holds the same rows), one row per statement::

    {"image": "000000085637.jpg", "caption": "The umbrella is far away from the motorcycle.",
     "label": 0, "relation": "far away from", ...}

Images are COCO 2017 files (flat, or under ``train2017/`` / ``val2017/``). Prompt (spec §6.3)
``[vqa] Based on the image, is this statement true or false? {caption}``, greedy, 20 new tokens.
An answer whose first word is neither "true" nor "false" is unparsable and wrong.
"""

from __future__ import annotations

from minigptv2.eval.benchmark import (
    Benchmark,
    Item,
    Record,
    Source,
    find_file,
    greedy,
    limited,
    read_jsonl,
    require_rows,
    resolve_images,
    summarise_accuracy,
)
from minigptv2.eval.metrics import parse_binary

PROMPT = "[vqa] Based on the image, is this statement true or false? {}"
SPLITS = ("test", "dev", "train")


def load(source: Source) -> list[Item]:
    folder = source.annotations("vsr", "the folder with the zero-shot split's test.jsonl")
    name = f"{source.split}.jsonl"
    path = find_file(folder, (name, f"zeroshot/{name}", f"splits/zeroshot/{name}"), "vsr")
    rows = require_rows(read_jsonl(path), ("image", "caption", "label"), path)
    rows = limited(rows, source.limit)
    candidates = [(r["image"], f"train2017/{r['image']}", f"val2017/{r['image']}") for r in rows]
    images = resolve_images(source.image_root("vsr"), candidates, "vsr")
    return [
        Item(str(index), "vqa", image, PROMPT.format(row["caption"]), {"label": bool(row["label"])})
        for index, (row, image) in enumerate(zip(rows, images, strict=True))
    ]


def score(item: Item, answer: str) -> Record:
    said = parse_binary(answer, "true", "false")
    return {
        "key": item.key,
        "answer": answer,
        "parsed": said is not None,
        "correct": said is not None and said == item.target["label"],
    }


BENCHMARK = Benchmark(
    name="vsr",
    splits=SPLITS,
    load=load,
    score=score,
    summarise=summarise_accuracy,
    generation=greedy(20),
    headline=("accuracy",),
)
