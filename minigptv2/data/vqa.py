"""VQAv2, OK-VQA and A-OKVQA as ``[vqa]`` samples (spec §4.1).

* VQAv2 and OK-VQA come in LAVIS's JSON (``vqa_train.json``, ``vqa_val.json``,
  ``okvqa_train.json``): a list of ``{"question_id", "question", "answer": [10 annotator answers],
  "image": "train2014/COCO_train2014_….jpg"}``.
* A-OKVQA comes in its official JSON (``aokvqa_v1p0_train.json``): a list of ``{"image_id",
  "question", "direct_answers": [10 answers], "choices", ...}`` over COCO 2017 images
  ``{image_id:012d}.jpg``.

The instruction is a random VQA template around the processed question; the answer is one
annotator answer drawn with probability proportional to its frequency, then processed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from minigptv2.data.reader import (
    Reader,
    process_text,
    read_image,
    read_json,
    require,
    weighted_answer,
)
from minigptv2.data.sample import Sample
from minigptv2.tasks import VQA_TEMPLATES


def vqa_sample(
    reader: Reader, image_path: Path, question: str, answers: Sequence[str], rng: random.Random
) -> Sample:
    """The shared shape of every VQA sample; ``targets``: ``question`` and ``answers`` (raw)."""
    image = read_image(image_path)
    instruction = rng.choice(VQA_TEMPLATES).format(process_text(question))
    answer = process_text(weighted_answer(answers, rng))
    return reader.single_turn(
        image, "vqa", instruction, answer, question=question, answers=list(answers)
    )


class LavisVQA(Reader):
    """VQAv2 (``source="coco_vqa"``) or OK-VQA (``source="ok_vqa"``) in LAVIS's format."""

    def __init__(
        self, annotations: Sequence[str | Path], images: str | Path, source: str = "coco_vqa"
    ) -> None:
        super().__init__()
        self.source = source
        self.images = Path(images)
        self.records = [entry for path in annotations for entry in read_json(Path(path))]
        if self.records:
            require(self.records[0], ("question", "answer", "image"), str(annotations[0]))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        answers = entry["answer"]
        answers = [answers] if isinstance(answers, str) else answers
        return vqa_sample(self, self.images / entry["image"], entry["question"], answers, rng)


class AOKVQA(Reader):
    """A-OKVQA's official train JSON; ``images`` is the COCO train2017 folder."""

    source = "aok_vqa"

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__()
        self.images = Path(images)
        self.records = read_json(Path(annotation))
        if self.records:
            require(self.records[0], ("image_id", "question", "direct_answers"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image_path = self.images / f"{int(entry['image_id']):012d}.jpg"
        # The reference processes the question twice; the processor is idempotent.
        question = process_text(entry["question"])
        return vqa_sample(self, image_path, question, entry["direct_answers"], rng)
