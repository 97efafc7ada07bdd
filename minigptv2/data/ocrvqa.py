"""OCR-VQA (questions about book covers) as ``[vqa]`` samples (spec §4.1).

``dataset.json`` maps a book id to ``{"imageURL", "questions": [...], "answers": [...], "split"}``;
the training split is ``split == 1`` and the image file is the id plus the extension of its URL
(``images/{id}.jpg``). One item per (question, answer) pair.
"""

from __future__ import annotations

import random
from pathlib import Path, PurePosixPath

from minigptv2.data.reader import Reader, process_text, read_image, read_json
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError
from minigptv2.tasks import VQA_TEMPLATES

TRAIN_SPLIT = 1


class OCRVQA(Reader):
    """``targets``: ``question``, ``answer`` (raw), ``book`` (the id)."""

    source = "ocrvqa"

    def __init__(
        self, annotation: str | Path, images: str | Path, split: int = TRAIN_SPLIT
    ) -> None:
        super().__init__()
        self.images = Path(images)
        content = read_json(Path(annotation))
        if not isinstance(content, dict):
            raise DataError(f"{annotation}: expected OCR-VQA's {{book_id: {{...}}}} layout")
        self.records = [
            (book, PurePosixPath(entry["imageURL"]).suffix, question, answer)
            for book, entry in content.items()
            if entry.get("split") == split
            for question, answer in zip(entry["questions"], entry["answers"], strict=True)
        ]

    def build(self, index: int, rng: random.Random) -> Sample:
        book, extension, question, answer = self.records[index]
        image = read_image(self.images / f"{book}{extension}")
        instruction = rng.choice(VQA_TEMPLATES).format(process_text(question))
        return self.single_turn(
            image,
            "vqa",
            instruction,
            process_text(answer),
            question=question,
            answer=answer,
            book=book,
        )
