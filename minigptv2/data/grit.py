"""GRIT-20M (Kosmos-2's grounded image-text pairs) as grounding, refer and identify samples.

The paper uses GRIT in stage 1 for grounded captions and referring expressions (spec §5.1; its
processing was never released, §10.18). GRIT is distributed as parquet metadata that
``img2dataset`` turns into webdataset shards: per sample an image and a ``.json`` holding the
parquet row, with ``caption``, ``noun_chunks`` and ``ref_exps``, each a list of
``[start, end, x1, y1, x2, y2, score]``: a character span of the caption and its box as
fractions of the original image's width and height (so the 0-100 grid is that fraction x 100).

* ``grounding``: a ``[grounding]`` template; the caption with every noun chunk tagged and boxed.
* ``refer``: a ``[refer]`` template around one referring expression; its box.
* ``identify``: an ``[identify]`` template around the box; the expression.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigptv2.boxes import box_to_text
from minigptv2.data.reader import Reader, grounded_caption, process_text
from minigptv2.data.sample import Sample
from minigptv2.data.shards import TarShards
from minigptv2.errors import DataError
from minigptv2.images import load_image
from minigptv2.tasks import GROUNDING_TEMPLATES, IDENTIFY_TEMPLATES, REFER_TEMPLATES

TASKS: tuple[str, ...] = ("grounding", "refer", "identify")
# GRIT boxes are fractions of the image size: a unit "image" puts them on the grid directly.
UNIT = 1.0


def _span_box(span: Sequence[float]) -> tuple[float, float, float, float]:
    return (span[2], span[3], span[4], span[5])


class GRIT(Reader):
    """``targets``: ``caption``, ``key``, and ``boxes`` as fractions ``(x1, y1, x2, y2)``."""

    def __init__(self, shards: Sequence[str | Path], task: str = "grounding") -> None:
        super().__init__()
        if task not in TASKS:
            raise DataError(f"GRIT makes {list(TASKS)} samples, not {task!r}")
        self.task = task
        self.source = f"grit_{task}"
        self.shards = TarShards(shards, ("json",))

    def __len__(self) -> int:
        return len(self.shards)

    def build(self, index: int, rng: random.Random) -> Sample:
        image_bytes, (meta_bytes,) = self.shards.read(index)
        meta: dict[str, Any] = json.loads(meta_bytes)
        caption = meta["caption"]
        key = self.shards.key(index)
        image = load_image(image_bytes)
        if self.task == "grounding":
            chunks = meta.get("noun_chunks") or []
            if not chunks:
                raise DataError(f"GRIT sample {key} has no noun chunks to ground")
            spans = [(int(c[0]), int(c[1]), [_span_box(c)]) for c in chunks]
            answer = grounded_caption(caption, spans, UNIT, UNIT)
            boxes = [_span_box(c) for c in chunks]
            instruction = rng.choice(GROUNDING_TEMPLATES)
            return self.single_turn(
                image, "grounding", instruction, answer, caption=caption, key=key, boxes=boxes
            )
        expressions = meta.get("ref_exps") or []
        if not expressions:
            raise DataError(f"GRIT sample {key} has no referring expressions")
        chosen = rng.choice(expressions)
        expression = process_text(caption[int(chosen[0]) : int(chosen[1])])
        box = box_to_text(_span_box(chosen), UNIT, UNIT)
        targets = {"caption": caption, "key": key, "boxes": [_span_box(chosen)]}
        if self.task == "refer":
            instruction = rng.choice(REFER_TEMPLATES).format(expression)
            return self.single_turn(image, "refer", instruction, box, **targets)
        instruction = rng.choice(IDENTIFY_TEMPLATES).format(box)
        return self.single_turn(image, "identify", instruction, expression, **targets)
