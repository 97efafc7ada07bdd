"""RefCOCO, RefCOCO+ and RefCOCOg as referring ([refer]) and identify ([identify]) samples.

Reads the UNC release layout (spec §4.1, §5.6): a folder per dataset holding ``refs(unc).p``
(RefCOCO, RefCOCO+) or ``refs(umd).p`` (RefCOCOg) and ``instances.json``, with images from COCO
train2014 (``COCO_train2014_{image_id:012d}.jpg``). One item per referred object of the split;
each access draws one of its sentences. ``[refer]`` asks for the box of a processed sentence with
a random REC template; ``[identify]`` (the reference's ``invrefcoco*``) gives the box in a random
REG template and expects the sentence.

The refs file is a Python pickle. Unpickling can run arbitrary code, so it is read with an
unpickler that refuses every global: only the plain lists, dicts, strings and numbers the real
files contain can be built, and anything else is rejected with a ``DataError``.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

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
from minigptv2.errors import DataError
from minigptv2.tasks import IDENTIFY_TEMPLATES, REFER_TEMPLATES

# The reference's builder keys: dataset folder and which refs file it uses.
SPLIT_BY: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
# Source names as in the reference's configs ("refcocop" is RefCOCO+).
SOURCE_NAMES: dict[str, str] = {
    "refcoco": "refcoco",
    "refcoco+": "refcocop",
    "refcocog": "refcocog",
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds only built-in containers and scalars: every global lookup is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(
            f"the refs pickle asks for {module}.{name}; RefCOCO refs hold only lists, dicts, "
            "strings and numbers, so this file is not a refs file (or was tampered with)"
        )


def load_refs(path: Path) -> list[dict[str, Any]]:
    """A ``refs(*).p`` file as a list of dicts, read without executing any code."""
    if not path.is_file():
        raise DataError(f"refs file not found: {path}; unzip the dataset into its folder")
    with path.open("rb") as handle:
        try:
            # The released files are Python 2 pickles; their byte strings are UTF-8 text.
            refs = _PlainUnpickler(handle, encoding="utf-8", errors="replace").load()
        except (pickle.UnpicklingError, EOFError) as error:
            raise DataError(f"{path} is not a readable pickle ({error})") from None
    if not isinstance(refs, list):
        raise DataError(f"{path} holds a {type(refs).__name__}, expected a list of refs")
    return refs


class RefCOCO(Reader):
    """Referred objects of one split of RefCOCO / RefCOCO+ / RefCOCOg.

    ``targets``: ``boxes`` (the object's pixel box), ``sentence`` (raw), ``ref_id``.
    """

    def __init__(
        self,
        folder: str | Path,
        images: str | Path,
        dataset: str = "refcoco",
        task: str = "refer",
        split: str = "train",
    ) -> None:
        super().__init__()
        if dataset not in SPLIT_BY:
            raise DataError(f"unknown RefCOCO dataset {dataset!r}; use one of {list(SPLIT_BY)}")
        if task not in ("refer", "identify"):
            raise DataError(f"RefCOCO makes 'refer' or 'identify' samples, not {task!r}")
        folder = Path(folder)
        self.images = Path(images)
        self.task = task
        self.source = ("inv" if task == "identify" else "") + SOURCE_NAMES[dataset]
        refs = load_refs(folder / f"refs({SPLIT_BY[dataset]}).p")
        instances = read_json(folder / "instances.json")
        require(instances, ("annotations",), str(folder / "instances.json"))
        self.boxes = {ann["id"]: ann["bbox"] for ann in instances["annotations"]}
        self.records = [ref for ref in refs if ref.get("split") == split and ref["sentences"]]

    def build(self, index: int, rng: random.Random) -> Sample:
        ref = self.records[index]
        sentence = rng.choice(ref["sentences"])["sent"]
        image = read_image(self.images / f"COCO_train2014_{ref['image_id']:012d}.jpg")
        width, height = image.size
        bbox = self.boxes[ref["ann_id"]]
        box = coco_box_text(bbox, width, height)
        targets = {"boxes": [xywh_to_xyxy(bbox)], "sentence": sentence, "ref_id": ref["ref_id"]}
        if self.task == "refer":
            instruction = rng.choice(REFER_TEMPLATES).format(process_text(sentence))
            return self.single_turn(image, "refer", instruction, box, **targets)
        instruction = rng.choice(IDENTIFY_TEMPLATES).format(box)
        # The reference applies its text processor twice here (spec §4.1); it is idempotent.
        answer = process_text(process_text(sentence))
        return self.single_turn(image, "identify", instruction, answer, **targets)
