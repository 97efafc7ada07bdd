"""IconVQA (IconQA "choose_txt"): pick the right text choice for a question about an icon image.

Files, either layout:

* the reference's ``choose_text_{split}.json`` in ``--data-root``: a list of
  ``{"image_id", "question", "choices": [...], "answer": index}``, images at
  ``{--images}/{image_id}/image.png``;
* the official IconQA release: ``{--data-root}/{split}/choose_txt/{question_id}/data.json``
  (``question``, ``choices``, ``answer``) beside its ``image.png``.

No text is generated (spec §6.3): every choice is scored by the model's loss as the answer to
``[vqa] Based on the image, respond to this question with a short answer: {question}`` and the
lowest wins (``likelihood.candidate_losses``, which averages each choice over its own tokens
rather than the reference's batch-dependent normalisation, spec §10.9).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from minigptv2.eval.benchmark import (
    Benchmark,
    BenchmarkDataError,
    Item,
    Record,
    Source,
    greedy,
    limited,
    read_json,
    require,
    require_rows,
    resolve_images,
    summarise_accuracy,
)
from minigptv2.eval.likelihood import candidate_losses
from minigptv2.eval.vqa import PROMPT

if TYPE_CHECKING:
    from minigptv2.assistant import Assistant

FIELDS = ("question", "choices", "answer")


def _rows_from_json(path: Path) -> list[dict[str, Any]]:
    rows = require_rows(read_json(path), ("image_id", *FIELDS), path)
    return [
        {**row, "key": str(row["image_id"]), "image": f"{row['image_id']}/image.png"}
        for row in rows
    ]


def _rows_from_folders(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for data in sorted(
        folder.glob("*/data.json"), key=lambda p: (len(p.parent.name), p.parent.name)
    ):
        row = require(read_json(data), FIELDS, str(data))
        rows.append({**row, "key": data.parent.name, "image": data.parent / "image.png"})
    return rows


def read_questions(source: Source) -> list[dict[str, Any]]:
    root = source.annotations("iconvqa", f"the folder with choose_text_{source.split}.json")
    flat = root / f"choose_text_{source.split}.json"
    folder = root / source.split / "choose_txt"
    if flat.is_file():
        rows = _rows_from_json(flat)
    elif folder.is_dir():
        rows = _rows_from_folders(folder)
    else:
        raise BenchmarkDataError(
            f"iconvqa: neither {flat} nor {folder}/ exists; point --data-root at the folder "
            "holding choose_text_val.json or the IconQA release"
        )
    for row in rows:
        choices, answer = row["choices"], row["answer"]
        if not (isinstance(choices, list) and choices and isinstance(answer, int)):
            raise BenchmarkDataError(f"iconvqa question {row['key']}: needs choices and an index")
        if not 0 <= answer < len(choices):
            raise BenchmarkDataError(f"iconvqa question {row['key']}: answer {answer} out of range")
    return rows


def load(source: Source) -> list[Item]:
    rows = limited(read_questions(source), source.limit)
    root = source.images or source.data_root
    images = resolve_images(root, [(str(row["image"]),) for row in rows], "iconvqa")
    return [
        Item(
            key=row["key"],
            task="choice",
            image=image,
            prompt=PROMPT.format(row["question"]),
            target={"choices": [str(choice) for choice in row["choices"]], "answer": row["answer"]},
        )
        for row, image in zip(rows, images, strict=True)
    ]


def answer(assistant: Assistant, items: list[Item]) -> list[tuple[str, dict[str, Any]]]:
    """The index of the lowest-loss choice, as text, with every choice's loss."""
    losses = candidate_losses(
        assistant,
        [item.image for item in items],
        [item.prompt for item in items],
        [item.target["choices"] for item in items],
    )
    return [(str(min(range(len(row)), key=row.__getitem__)), {"losses": row}) for row in losses]


def score(item: Item, answer: str) -> Record:
    choice = int(answer) if answer.strip().isdigit() else None
    choices = item.target["choices"]
    parsed = choice is not None and choice < len(choices)
    return {
        "key": item.key,
        "answer": answer,
        "parsed": parsed,
        "choice": choices[choice] if parsed else None,
        "correct": parsed and choice == item.target["answer"],
    }


BENCHMARK = Benchmark(
    name="iconvqa",
    splits=("val", "test"),
    load=load,
    score=score,
    summarise=summarise_accuracy,
    generation=greedy(1),  # unused: ``answer`` ranks the choices instead
    headline=("accuracy",),
    answer=answer,
)
