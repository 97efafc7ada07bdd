"""TextCaps (captions that read the text in the image) as ``[caption]`` samples (spec §4.1).

``TextCaps_0.1_train.json`` is ``{"data": [{"image_id", "caption_str", ...}, ...]}`` with one
entry per caption; images are ``{image_id}.jpg`` in the train images folder.
"""

from __future__ import annotations

import random
from pathlib import Path

from minigptv2.data.reader import Reader, process_text, read_image, read_json, require
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError
from minigptv2.tasks import CAPTION_TEMPLATES


class TextCaps(Reader):
    """``targets``: ``caption`` (raw)."""

    source = "textcaps_caption"

    def __init__(self, annotation: str | Path, images: str | Path) -> None:
        super().__init__()
        self.images = Path(images)
        content = read_json(Path(annotation))
        if not isinstance(content, dict) or "data" not in content:
            raise DataError(f"{annotation}: expected TextCaps' {{'data': [...]}} layout")
        self.records = content["data"]
        if self.records:
            require(self.records[0], ("image_id", "caption_str"), str(annotation))

    def build(self, index: int, rng: random.Random) -> Sample:
        entry = self.records[index]
        image = read_image(self.images / f"{entry['image_id']}.jpg")
        instruction = rng.choice(CAPTION_TEMPLATES)
        answer = process_text(entry["caption_str"])
        return self.single_turn(image, "caption", instruction, answer, caption=entry["caption_str"])
