"""Hateful Memes: is a meme (image + its text) hateful? Accuracy, and AUROC from a model score.

Files in ``--data-root``: the official ``{split}.jsonl`` (``dev.jsonl``, ``dev_seen.jsonl``,
``dev_unseen.jsonl``, ``test_seen.jsonl``, ``test_unseen.jsonl``), one meme per line::

    {"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a range"}

``img`` is relative to ``--images`` (default: the data root). Prompt exactly as the reference,
typo and no task identifier included (spec §6.3):
``This is an image writting '{text}'. Is this image hateful? Answer yes or no. Answer:``.
The generated answer (greedy, 20 new tokens) gives the accuracy the paper reports; an answer
whose first word is not yes/no is unparsable and wrong. The challenge's own metric, AUROC, needs
a score: we use the model's preference for "yes" over "no" (the difference of their answer
losses), computed for every meme.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from minigptv2.eval.likelihood import candidate_losses
from minigptv2.eval.metrics import auroc, parse_binary

if TYPE_CHECKING:
    from minigptv2.assistant import Assistant

PROMPT = "This is an image writting '{}'. Is this image hateful? Answer yes or no. Answer:"
SPLITS = ("dev", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
DECODING = greedy(20)


def load(source: Source) -> list[Item]:
    folder = source.annotations("hateful_memes", "the folder with dev.jsonl and img/")
    path = find_file(folder, (f"{source.split}.jsonl",), "hateful_memes")
    rows = limited(
        require_rows(read_jsonl(path), ("id", "img", "label", "text"), path), source.limit
    )
    images = resolve_images(
        source.image_root("hateful_memes"), [(row["img"],) for row in rows], "hateful_memes"
    )
    return [
        Item(
            str(row["id"]), "vqa", image, PROMPT.format(row["text"]), {"label": bool(row["label"])}
        )
        for row, image in zip(rows, images, strict=True)
    ]


def answer(assistant: Assistant, items: list[Item]) -> list[tuple[str, dict[str, Any]]]:
    """The generated answer, plus ``hateful_score`` = loss("no") - loss("yes")."""
    images = [item.image for item in items]
    prompts = [item.prompt for item in items]
    texts = assistant.generate(images, prompts, DECODING("vqa"))
    losses = candidate_losses(assistant, images, prompts, [("yes", "no")] * len(items))
    return [
        (text.text, {"hateful_score": no - yes})
        for text, (yes, no) in zip(texts, losses, strict=True)
    ]


def score(item: Item, answer: str) -> Record:
    said = parse_binary(answer, "yes", "no")
    return {
        "key": item.key,
        "answer": answer,
        "parsed": said is not None,
        "label": item.target["label"],
        "correct": said is not None and said == item.target["label"],
    }


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    scored = [r for r in records if r.get("hateful_score") is not None]
    area = None
    if scored and len(scored) == len(records):
        area = auroc([r["hateful_score"] for r in scored], [r["label"] for r in scored])
    return {**summarise_accuracy(records), "auroc": area}


BENCHMARK = Benchmark(
    name="hateful_memes",
    splits=SPLITS,
    load=load,
    score=score,
    summarise=summarise,
    generation=DECODING,
    headline=("accuracy", "auroc"),
    answer=answer,
)
