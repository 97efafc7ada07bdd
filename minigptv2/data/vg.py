"""Visual Genome region descriptions as ``[refer]`` samples (the reference's ``refvg``, spec §4.1).

Reads ``region_descriptions.json`` (a list of ``{"id": image_id, "regions": [{"x", "y", "width",
"height", "phrase", ...}]}``) and ``image_data.json`` (``{"image_id", "url", "width", "height"}``,
used to find each image: ``VG_100K/1.jpg`` or ``VG_100K_2/…`` from the URL's last two parts).
Like the reference (following OFA), only regions smaller than 16384 px² are used, an absolute
threshold whatever the image size (spec §10.25).
"""

from __future__ import annotations

import random
from pathlib import Path, PurePosixPath

from minigptv2.boxes import xywh_to_xyxy
from minigptv2.data.reader import (
    Reader,
    coco_box_text,
    process_text,
    read_image,
    read_json,
    require,
)
from minigptv2.data.sample import Sample
from minigptv2.tasks import REFER_TEMPLATES

MAX_REGION_AREA = 16384


def _image_path(info: dict) -> str:
    url = info.get("url")
    if url:
        parts = PurePosixPath(url).parts
        return "/".join(parts[-2:])
    return f"{info.get('image_id', info.get('id'))}.jpg"


class VisualGenomeRegions(Reader):
    """``targets``: ``boxes`` (pixels), ``phrase`` (raw), ``image_id``."""

    source = "refvg"

    def __init__(self, folder: str | Path, images: str | Path) -> None:
        super().__init__()
        folder = Path(folder)
        self.images = Path(images)
        infos = read_json(folder / "image_data.json")
        self.paths = {info.get("image_id", info.get("id")): _image_path(info) for info in infos}
        descriptions = read_json(folder / "region_descriptions.json")
        if descriptions:
            require(descriptions[0], ("id", "regions"), str(folder / "region_descriptions.json"))
        self.records = [
            (
                entry["id"],
                region["x"],
                region["y"],
                region["width"],
                region["height"],
                region["phrase"],
            )
            for entry in descriptions
            for region in entry["regions"]
            if region["width"] * region["height"] < MAX_REGION_AREA
        ]

    def build(self, index: int, rng: random.Random) -> Sample:
        image_id, x, y, width, height, phrase = self.records[index]
        image = read_image(self.images / self.paths[image_id])
        bbox = (x, y, width, height)
        box = coco_box_text(bbox, *image.size)
        instruction = rng.choice(REFER_TEMPLATES).format(process_text(phrase))
        return self.single_turn(
            image,
            "refer",
            instruction,
            box,
            boxes=[xywh_to_xyxy(bbox)],
            phrase=phrase,
            image_id=image_id,
        )
