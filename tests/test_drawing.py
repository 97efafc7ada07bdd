from pathlib import Path

import pytest
from PIL import Image

from minigptv2 import drawing
from minigptv2.assistant import Answer
from minigptv2.boxes import parse_grounding
from minigptv2.drawing import COLORS, MIN_DRAW_SIDE, draw_answer, draw_boxes
from minigptv2.errors import ImageError, PromptError


def answer_for(text, size):
    return Answer(text, parse_grounding(text, *size))


def test_each_phrase_gets_its_colour_on_the_enlarged_image(tmp_path):
    image = Image.new("RGB", (112, 112), (255, 255, 255))
    answer = answer_for(
        "<p>left</p> {<0><0><50><50>} <p>right</p> {<50><50><100><100>}", (112, 112)
    )
    drawn = draw_boxes(image, answer)
    assert drawn.size == (MIN_DRAW_SIDE, MIN_DRAW_SIDE)
    scale = MIN_DRAW_SIDE / 112
    # The bottom edge of each box, away from its label, has the phrase's colour.
    first_box, second_box = answer.grounding.boxes
    assert (
        drawn.getpixel((round(first_box[2] * scale / 2), round((first_box[3] - 1) * scale)))
        == COLORS[0]
    )
    assert (
        drawn.getpixel((round(second_box[0] * scale + 30), round((second_box[3] - 1) * scale)))
        == COLORS[1]
    )
    assert image.getpixel((0, 0)) == (255, 255, 255)  # the input is left untouched
    # A Grounding and a path work too, and give the same picture.
    path = tmp_path / "scene.png"
    image.save(path)
    assert draw_boxes(path, answer.grounding).tobytes() == drawn.tobytes()


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(PromptError, match="Answer or a Grounding"):
        draw_boxes(Image.new("RGB", (10, 10)), "{<0><0><50><50>}")
    with pytest.raises(ImageError):
        draw_boxes(tmp_path / "missing.png", answer_for("x", (10, 10)))


# -- labels in letters the built-in font lacks (Korean) -------------------------------------------

KOREAN = "<p>빨간 원</p> {<0><0><50><50>} <p>blue square</p> {<50><50><100><100>}"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def label_pixels(drawn, box):
    """The label strip above ``box`` (in the drawn image's pixels): its distinct colours."""
    x1, _, _, _ = box
    return set(drawn.crop((x1, 0, x1 + 60, 18)).getdata())


def test_without_a_font_for_the_phrase_its_box_gets_a_number_and_a_legend(monkeypatch):
    looked_up = []
    monkeypatch.setattr(drawing, "font_candidates", lambda text: looked_up.append(text) or [])
    image = Image.new("RGB", (112, 112), (255, 255, 255))
    result = draw_answer(image, answer_for(KOREAN, (112, 112)))
    assert result.legend == ((1, "빨간 원"),)  # the English phrase keeps its words
    assert looked_up == ["빨간 원"]
    assert "1 = 빨간 원" in result.legend_text() and "fonts-nanum" in result.legend_text()
    # The label is the number "1": the same pixels as a phrase that is the number itself.
    numbered = draw_boxes(image, answer_for("<p>1</p> {<0><0><50><50>}", (112, 112)))
    strip = (0, 0, 60, 18)
    assert result.image.crop(strip).tobytes() == numbered.crop(strip).tobytes()
    assert draw_boxes(image, answer_for(KOREAN, (112, 112))).tobytes() == result.image.tobytes()


def test_a_font_is_used_only_once_it_is_checked_to_have_the_letters(monkeypatch):
    if not Path(DEJAVU).is_file():
        pytest.skip(f"{DEJAVU} is not installed (apt-get install fonts-dejavu-core)")
    # fontconfig may offer a font without the letters (fc-match always answers): checked.
    monkeypatch.setattr(drawing, "font_candidates", lambda text: [DEJAVU])
    assert drawing.label_font("빨간 원") is None
    # Greek is not in the built-in font but is in DejaVu: the label is drawn in letters.
    font = drawing.label_font("κύκλος")
    assert font is not None and font.path == DEJAVU
    image = Image.new("RGB", (112, 112), (255, 255, 255))
    result = draw_answer(image, answer_for("<p>κύκλος</p> {<0><0><50><50>}", (112, 112)))
    assert result.legend == ()
    english = drawing.label_font("red circle")
    assert english is not None and english is not font  # English keeps the built-in font


def test_font_candidates_ask_fontconfig_for_fonts_with_every_letter(monkeypatch):
    calls = []

    class Listed:
        stdout = "/fonts/NanumGothic.ttf: \n/fonts/Other.ttc: \n"

    def run(command, **kwargs):
        calls.append(command)
        return Listed()

    drawing._fontconfig_files.cache_clear()
    monkeypatch.setattr(drawing.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(drawing.subprocess, "run", run)
    monkeypatch.setattr(drawing, "KNOWN_FONT_FILES", ())
    try:
        assert drawing.font_candidates("원 빨") == ["/fonts/NanumGothic.ttf", "/fonts/Other.ttc"]
        assert calls == [["/usr/bin/fc-list", ":charset=be68 c6d0", "file"]]
        monkeypatch.setattr(drawing.shutil, "which", lambda name: None)  # no fontconfig
        assert drawing.font_candidates("가") == []
    finally:
        drawing._fontconfig_files.cache_clear()
