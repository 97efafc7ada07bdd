"""MiniGPT-v2's multi-task conversation set (stage 3, spec §4.1).

``multitask_conversation.json`` uses LLaVA's conversation layout (``{"id", "conversations"}``)
over COCO train2014 images ``COCO_train2014_{id}.jpg``; its questions may carry task tokens, so a
conversation can mix ``[refer]``, ``[vqa]`` and free-form turns about one image.
"""

from __future__ import annotations

import random
from pathlib import Path

from minigptv2.data.llava import conversation_turns
from minigptv2.data.reader import Reader, read_image, read_json, require
from minigptv2.data.sample import Sample


class MultitaskConversation(Reader):
    source = "multitask_conversation"

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__()
        self.images = Path(images)
        self.records = read_json(Path(annotation))
        if self.records:
            require(self.records[0], ("id", "conversations"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image = read_image(self.images / f"COCO_train2014_{entry['id']}.jpg")
        turns = conversation_turns(entry["conversations"], f"{self.source} record {entry['id']}")
        return Sample(image, turns, None, self.source)
