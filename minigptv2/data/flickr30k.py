"""Flickr30k Entities as grounded captions and object parsing (stage 3, spec §3.1, §4.1).

Reads the Flickr30k Entities release: ``Sentences/{image_id}.txt`` (five captions per image, each
phrase marked ``[/EN#18/people A young man]``) and ``Annotations/{image_id}.xml`` (image size and
one ``<object>`` per box, whose ``<name>`` elements list the entity ids it belongs to; entities
without a box carry ``<nobndbox>``), and the split files ``train.txt`` etc. of image ids.
One item per (image, caption); captions with no boxed phrase are skipped.

The authors trained on their own filtered JSON exports of these annotations (spec §5.6, not
released in the repository); this reader builds the same three sample kinds from the public files:

* ``grounding`` (``flickr_grounded_caption``): a ``[grounding]`` template; the caption with each
  boxed phrase written ``<p>phrase</p> {box}<delim>{box}``.
* ``caption_to_phrase`` (``flickr_CaptionToPhrase``): ``[detection] {caption}``; each boxed phrase
  with its boxes, separated by a space.
* ``phrase_to_box`` (``flickr_ObjectToPhrase``): ``[detection] {phrase}`` for one boxed phrase
  (drawn per access); ``<p>{phrase}</p> {boxes}``.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from minigptv2.boxes import Box, phrase_to_text
from minigptv2.data.reader import Reader, grounded_caption, read_image
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError
from minigptv2.tasks import DETECTION_TEMPLATES, GROUNDING_TEMPLATES

SOURCES: dict[str, str] = {
    "grounding": "flickr_grounded_caption",
    "caption_to_phrase": "flickr_CaptionToPhrase",
    "phrase_to_box": "flickr_ObjectToPhrase",
}
_PHRASE = re.compile(r"\[/EN#(\d+)/[^ \]]+ ([^\]]*)\]")

Phrase = tuple[int, int, str]  # start, end in the plain caption, entity id


def parse_sentence(line: str) -> tuple[str, list[Phrase]]:
    """``[/EN#18/people A man] runs`` -> (``"A man runs"``, [(0, 5, "18")])."""
    plain, phrases, cursor = [], [], 0
    length = 0
    for match in _PHRASE.finditer(line):
        before = line[cursor : match.start()]
        plain.append(before)
        length += len(before)
        text = match.group(2)
        phrases.append((length, length + len(text), match.group(1)))
        plain.append(text)
        length += len(text)
        cursor = match.end()
    plain.append(line[cursor:])
    return "".join(plain).strip(), phrases


def parse_annotation(path: Path) -> tuple[tuple[int, int], dict[str, list[Box]]]:
    """Image size and the boxes of each entity id from a Flickr30k Entities XML file."""
    if not path.is_file():
        raise DataError(f"annotation not found: {path}")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise DataError(f"{path} is not valid XML ({error})") from None
    size = root.find("size")
    if size is None:
        raise DataError(f"{path} has no <size>")
    width, height = int(size.findtext("width", "0")), int(size.findtext("height", "0"))
    boxes: dict[str, list[Box]] = {}
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        box = tuple(float(bndbox.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax"))
        for name in obj.iter("name"):
            boxes.setdefault((name.text or "").strip(), []).append(box)  # type: ignore[arg-type]
    return (width, height), boxes


class Flickr30kEntities(Reader):
    """``targets``: ``caption`` (plain), ``phrases`` as ``[(phrase, [pixel boxes])]``."""

    def __init__(
        self, folder: str | Path, images: str | Path, task: str = "grounding", split: str = "train"
    ) -> None:
        super().__init__()
        if task not in SOURCES:
            raise DataError(f"Flickr30k Entities makes {list(SOURCES)} samples, not {task!r}")
        self.folder = Path(folder)
        self.images = Path(images)
        self.task = task
        self.source = SOURCES[task]
        split_file = self.folder / f"{split}.txt"
        if split_file.is_file():
            ids = split_file.read_text().split()
        else:
            ids = sorted(path.stem for path in (self.folder / "Sentences").glob("*.txt"))
        if not ids:
            raise DataError(f"no Flickr30k Entities images under {self.folder} (split {split!r})")
        # Five captions per image; the caption file is read on access.
        self.records = [(image_id, number) for image_id in ids for number in range(5)]

    def _grounded(self, image_id: str, number: int) -> tuple[str, list[tuple[int, int, list[Box]]]]:
        """The plain caption and the character spans of its boxed phrases with their boxes."""
        lines = (self.folder / "Sentences" / f"{image_id}.txt").read_text().splitlines()
        if number >= len(lines):
            raise DataError(f"{image_id}.txt has no caption {number + 1}")
        caption, spans = parse_sentence(lines[number])
        _, boxes = parse_annotation(self.folder / "Annotations" / f"{image_id}.xml")
        grounded = [
            (start, end, boxes[entity]) for start, end, entity in spans if boxes.get(entity)
        ]
        if not grounded:
            raise DataError(f"caption {number + 1} of image {image_id} has no boxed phrase")
        return caption, grounded

    def build(self, index: int, rng: random.Random) -> Sample:
        image_id, number = self.records[index]
        caption, spans = self._grounded(image_id, number)
        phrases = [(caption[start:end], boxes) for start, end, boxes in spans]
        image = read_image(self.images / f"{image_id}.jpg")
        width, height = image.size
        targets = {"caption": caption, "phrases": phrases}
        if self.task == "grounding":
            answer = grounded_caption(caption, spans, width, height)
            instruction = rng.choice(GROUNDING_TEMPLATES)
            return self.single_turn(image, "grounding", instruction, answer, **targets)
        template = rng.choice(DETECTION_TEMPLATES)
        if self.task == "caption_to_phrase":
            answer = " ".join(phrase_to_text(p, b, width, height) for p, b in phrases)
            return self.single_turn(image, "detection", template.format(caption), answer, **targets)
        phrase, boxes = rng.choice(phrases)
        answer = phrase_to_text(phrase, boxes, width, height)
        return self.single_turn(image, "detection", template.format(phrase), answer, **targets)
