import pytest
from PIL import Image

from minigptv2.assistant import Answer
from minigptv2.boxes import parse_grounding
from minigptv2.drawing import COLORS, MIN_DRAW_SIDE, draw_boxes
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
