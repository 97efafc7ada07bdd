"""GQA balanced training questions as ``[vqa]`` samples (spec §4.1).

Reads either layout of ``train_balanced_questions.json``: LAVIS's list of ``{"image", "question",
"answer"}``, or the official dict ``{question_id: {"imageId", "question", "answer", ...}}`` with
images ``{imageId}.jpg``. The answer is processed; GQA has one answer per question.
"""

from __future__ import annotations

import random
from pathlib import Path

from minigptv2.data.reader import Reader, process_text, read_image, read_json, require
from minigptv2.data.sample import Sample
from minigptv2.tasks import VQA_TEMPLATES


class GQA(Reader):
    """``targets``: ``question``, ``answer`` (raw)."""

    source = "gqa"

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__()
        self.images = Path(images)
        content = read_json(Path(annotation))
        if isinstance(content, dict):  # the official release, keyed by question id
            self.records = [
                {"image": f"{q['imageId']}.jpg", "question": q["question"], "answer": q["answer"]}
                for q in content.values()
            ]
        else:
            self.records = content
        if self.records:
            require(self.records[0], ("image", "question", "answer"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image = read_image(self.images / entry["image"])
        instruction = rng.choice(VQA_TEMPLATES).format(process_text(entry["question"]))
        return self.single_turn(
            image,
            "vqa",
            instruction,
            process_text(entry["answer"]),
            question=entry["question"],
            answer=entry["answer"],
        )
