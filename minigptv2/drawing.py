"""Drawing an answer's boxes and phrases on its image (what the demo and the CLI show)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from minigptv2.boxes import Grounding
from minigptv2.errors import PromptError
from minigptv2.images import ImageSource, load_image

if TYPE_CHECKING:
    from minigptv2.assistant import Answer

# The reference demo's colour list (spec §7), one colour per grounded phrase, cycling.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (210, 210, 0), (255, 0, 255), (0, 255, 255),
    (114, 128, 250), (0, 165, 255), (0, 128, 0), (144, 238, 144), (238, 238, 175), (255, 191, 0),
    (0, 128, 0), (226, 43, 138), (255, 0, 255), (0, 215, 255),
)  # fmt: skip

# Small images (Shapes is 112 px) are enlarged so boxes and labels stay legible.
MIN_DRAW_SIDE = 448


def draw_boxes(image: ImageSource, result: Grounding | Answer) -> Image.Image:
    """A copy of ``image`` with every box of ``result`` drawn, labelled with its phrase.

    ``result`` is an ``Answer`` (from ``Assistant.chat``/``generate``) or its ``Grounding``; the
    boxes are in pixels of ``image``, which may also be a path or bytes.
    """
    image = load_image(image)
    # An Answer carries its Grounding; duck-typed so drawing never imports the model stack.
    grounding = getattr(result, "grounding", result)
    if not isinstance(grounding, Grounding):
        raise PromptError(
            f"draw_boxes needs an Answer or a Grounding, got {type(result).__name__}; pass what "
            "Assistant.chat returned"
        )
    scale = max(1.0, MIN_DRAW_SIDE / max(image.size))
    size = (round(image.width * scale), round(image.height * scale))
    canvas = image.convert("RGB").resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for index, grounded in enumerate(grounding.phrases):
        color = COLORS[index % len(COLORS)]
        for x1, y1, x2, y2 in grounded.boxes:
            box = (x1 * scale, y1 * scale, max(x1, x2 - 1) * scale, max(y1, y2 - 1) * scale)
            draw.rectangle(box, outline=color, width=3)
            if grounded.phrase:
                _label(draw, font, grounded.phrase, box, color)
    return canvas


def _label(draw: ImageDraw.ImageDraw, font, text: str, box, color) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 6, bottom - top + 4
    x, y = box[0], box[1] - height
    if y < 0:  # no room above the box: put the label inside it
        y = box[1]
    draw.rectangle((x, y, x + width, y + height), fill=color)
    draw.text((x + 3, y + 2 - top), text, fill=(0, 0, 0) if sum(color) > 380 else (255, 255, 255))
