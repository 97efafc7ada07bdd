"""COCO captions (Karpathy train split, LAVIS JSON) as ``[caption]`` samples (spec §4.1).

``coco_karpathy_train.json`` is a list of ``{"caption", "image": "train2014/COCO_train2014_….jpg",
"image_id"}``, one entry per caption. Like the reference, only entries whose image path contains
"train" are kept (so the Karpathy "restval" images from val2014 are dropped, spec §10.21). The
instruction is a random caption template; the answer is the processed caption.
"""

from __future__ import annotations

import random
from pathlib import Path

from minigptv2.data.reader import Reader, process_text, read_image, read_json, require
from minigptv2.data.sample import Sample
from minigptv2.tasks import CAPTION_TEMPLATES


class COCOCaptions(Reader):
    """``targets``: ``caption`` (raw)."""

    source = "coco_caption"

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__()
        self.images = Path(images)
        entries = read_json(Path(annotation))
        self.records = [entry for entry in entries if "train" in entry.get("image", "")]
        if self.records:
            require(self.records[0], ("caption", "image"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image = read_image(self.images / entry["image"])
        instruction = rng.choice(CAPTION_TEMPLATES)
        answer = process_text(entry["caption"])
        return self.single_turn(image, "caption", instruction, answer, caption=entry["caption"])
