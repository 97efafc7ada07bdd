"""Drawing an answer's boxes and phrases on its image (what the demo and the CLI show).

Labels are drawn in Pillow's built-in font when it has every character of the phrase (English),
else in a system font that has them (a Korean phrase needs a font with Hangul: Debian's
``fonts-nanum`` or ``fonts-noto-cjk``, found at their usual paths or through fontconfig). No font
is downloaded or shipped: with none installed, such a box is labelled with its phrase's number
and ``Drawing.legend`` maps the numbers to the phrases, for the caller to print beside the image.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from minigptv2.boxes import Grounding
from minigptv2.errors import PromptError
from minigptv2.images import ImageSource, load_image

if TYPE_CHECKING:
    from minigptv2.assistant import Answer

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# The reference demo's colour list (spec §7), one colour per grounded phrase, cycling.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (210, 210, 0), (255, 0, 255), (0, 255, 255),
    (114, 128, 250), (0, 165, 255), (0, 128, 0), (144, 238, 144), (238, 238, 175), (255, 191, 0),
    (0, 128, 0), (226, 43, 138), (255, 0, 255), (0, 215, 255),
)  # fmt: skip

# Small images (Shapes is 112 px) are enlarged so boxes and labels stay legible.
MIN_DRAW_SIDE = 448
# Fonts with Hangul at the paths Debian installs them to (apt-get install fonts-nanum, or
# fonts-noto-cjk), tried before asking fontconfig.
KNOWN_FONT_FILES = (
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)
# What to install when no font has a label's characters (said beside the legend).
FONT_HINT = "apt-get install fonts-nanum for Korean labels"
# A code point no font draws (a noncharacter): what a font's missing glyph looks like.
_NO_GLYPH = "\uffff"


@dataclass(frozen=True)
class Drawing:
    """The image with the boxes drawn, and ``legend``: (number, phrase) for every box labelled
    with its phrase's number because no installed font has the phrase's characters."""

    image: Image.Image
    legend: tuple[tuple[int, str], ...] = ()

    def legend_text(self) -> str:
        """One line naming what the numbered labels stand for ("" when none is numbered)."""
        if not self.legend:
            return ""
        pairs = ", ".join(f"{number} = {phrase}" for number, phrase in self.legend)
        why = f"no installed font has their letters; {FONT_HINT}"
        return f"labels drawn as numbers ({why}): {pairs}"


def draw_boxes(image: ImageSource, result: Grounding | Answer) -> Image.Image:
    """A copy of ``image`` with every box of ``result`` drawn, labelled with its phrase.

    ``result`` is an ``Answer`` (from ``Assistant.chat``/``generate``) or its ``Grounding``; the
    boxes are in pixels of ``image``, which may also be a path or bytes. A phrase no installed
    font can write is labelled with its number: use ``draw_answer`` for the legend.
    """
    return draw_answer(image, result).image


def draw_answer(image: ImageSource, result: Grounding | Answer) -> Drawing:
    """``draw_boxes`` with the legend of the labels drawn as numbers (module docstring)."""
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
    legend: list[tuple[int, str]] = []
    for index, grounded in enumerate(grounding.phrases):
        color = COLORS[index % len(COLORS)]
        text, font = grounded.phrase, None
        if text:
            font = label_font(text)
            if font is None:  # no installed font has its letters: its number, in the legend
                legend.append((index + 1, text))
                text, font = str(index + 1), _default_font()
        for x1, y1, x2, y2 in grounded.boxes:
            box = (x1 * scale, y1 * scale, max(x1, x2 - 1) * scale, max(y1, y2 - 1) * scale)
            draw.rectangle(box, outline=color, width=3)
            if text:
                _label(draw, font, text, box, color)
    return Drawing(canvas, tuple(legend))


def label_font(text: str) -> Font | None:
    """A font that has a glyph for every character of ``text``: Pillow's built-in one if it
    does, else the first of ``font_candidates`` that does, else None."""
    default = _default_font()
    if covers(default, text):
        return default
    size = getattr(default, "size", 10)
    for path in font_candidates(text):
        font = _truetype(path, size)
        if font is not None and covers(font, text):
            return font
    return None


def covers(font: Font, text: str) -> bool:
    """Whether ``font`` draws every visible character of ``text`` with a glyph of its own
    (a missing one is drawn as the font's "no glyph" box, the same for every such character)."""
    missing = _mask(font, _NO_GLYPH)
    return all(char.isspace() or _mask(font, char) != missing for char in set(text))


def font_candidates(text: str) -> list[str]:
    """Font files that may have ``text``'s characters: ``KNOWN_FONT_FILES`` that exist, then
    those fontconfig lists as holding all of them (``fc-list :charset=…``), if it is installed.
    Each is still checked with ``covers``: a list is a hint, not a promise."""
    found = [path for path in KNOWN_FONT_FILES if Path(path).is_file()]
    charset = " ".join(f"{ord(char):x}" for char in sorted(set(text)) if not char.isspace())
    return found + [path for path in _fontconfig_files(charset) if path not in found]


@lru_cache(maxsize=64)
def _fontconfig_files(charset: str) -> tuple[str, ...]:
    fc_list = shutil.which("fc-list")
    if fc_list is None or not charset:
        return ()
    try:
        listed = subprocess.run(
            [fc_list, f":charset={charset}", "file"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    # One "PATH: " per line; sorted, so the choice does not depend on fontconfig's cache order.
    return tuple(sorted({line.strip().rstrip(":") for line in listed.splitlines() if line.strip()}))


@lru_cache(maxsize=1)
def _default_font() -> Font:
    return ImageFont.load_default()


@lru_cache(maxsize=16)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, size)
    except OSError:  # unreadable or not a font
        return None


def _mask(font: Font, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def _label(draw: ImageDraw.ImageDraw, font: Font, text: str, box, color) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 6, bottom - top + 4
    x, y = box[0], box[1] - height
    if y < 0:  # no room above the box: put the label inside it
        y = box[1]
    draw.rectangle((x, y, x + width, y + height), fill=color)
    draw.text((x + 3, y + 2 - top), text, fill=(0, 0, 0) if sum(color) > 380 else (255, 255, 255))
