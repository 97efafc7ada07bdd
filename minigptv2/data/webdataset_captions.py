"""LAION, CC3M and SBU image-text pairs from webdataset shards as ``[caption]`` samples.

These are the paper's weakly-labelled stage-1 data (spec §5.1). The shards are what ``img2dataset``
writes: per sample an image (``.jpg``/``.png``/``.webp``) and its caption in ``.txt`` (or in
``.json`` under ``"caption"``). The instruction is a random caption template and the answer the
processed caption (the stage-1 recipe was never released, spec §10.18; this follows the captioning
datasets of stage 2). Shards are read by offset (``shards.py``), never loaded whole.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from minigptv2.data.reader import Reader, process_text
from minigptv2.data.sample import Sample
from minigptv2.data.shards import TarShards
from minigptv2.errors import DataError
from minigptv2.images import load_image
from minigptv2.tasks import CAPTION_TEMPLATES


class WebDatasetCaptions(Reader):
    """``source`` names the collection (``laion``, ``cc3m``, ``sbu``); ``field`` is ``txt`` or
    ``json``. ``targets``: ``caption`` (raw) and ``key``."""

    def __init__(self, shards: Sequence[str | Path], source: str, field: str = "txt") -> None:
        super().__init__()
        if field not in ("txt", "json"):
            raise DataError(f"captions come from 'txt' or 'json' members, not {field!r}")
        self.source = source
        self.field = field
        self.shards = TarShards(shards, (field,))

    def __len__(self) -> int:
        return len(self.shards)

    def build(self, index: int, rng: random.Random) -> Sample:
        image_bytes, (text_bytes,) = self.shards.read(index)
        if self.field == "json":
            caption = json.loads(text_bytes)["caption"]
        else:
            caption = text_bytes.decode("utf-8")
        if not caption.strip():
            raise DataError(f"{self.source} sample {self.shards.key(index)} has an empty caption")
        image = load_image(image_bytes)
        return self.single_turn(
            image,
            "caption",
            rng.choice(CAPTION_TEMPLATES),
            process_text(caption),
            caption=caption,
            key=self.shards.key(index),
        )
