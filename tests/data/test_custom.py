import json
from pathlib import Path

import pytest
from PIL import Image

from minigptv2.data.custom import CustomDataset, parse_row
from minigptv2.errors import DataError


def write_image(path: Path, size=(200, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def row(**fields) -> str:
    fields.setdefault("image", "img.png")
    fields.setdefault("conversation", [{"user": "[refer] the cat", "assistant": "{<1><2><3><4>}"}])
    return json.dumps(fields)


@pytest.fixture
def base(tmp_path):
    write_image(tmp_path / "img.png")
    return tmp_path


def test_a_valid_row_becomes_a_sample(base):
    parsed = parse_row(row(), base)
    assert parsed.problems == ()
    sample = parsed.sample
    assert sample.task == "refer" and sample.source == "custom"
    assert sample.image.size == (200, 100)
    assert sample.turns[0].user == "[refer] the cat"
    assert sample.turns[0].assistant == "{<1><2><3><4>}"


def test_pixel_boxes_are_converted_to_the_grid_of_the_original_size(base):
    conversation = [
        {"user": "[identify] {<20><10><100.5><99>}", "assistant": "a cat"},
        {
            "user": "[detection] cats",
            "assistant": "<p>cats</p> {<0><0><200><100>}<delim>{<57><1><58><2>}",
        },
    ]
    parsed = parse_row(row(conversation=conversation, box_format="pixels"), base)
    assert parsed.problems == ()
    turns = parsed.sample.turns
    # int(x / 200 * 100) and int(y / 100 * 100), the reference arithmetic: 100.5 -> 50, and
    # 58 -> 28 because 58 / 200 * 100 == 28.999999999999996 in floating point.
    assert turns[0].user == "[identify] {<10><10><50><99>}"
    assert turns[1].assistant == "<p>cats</p> {<0><0><100><100>}<delim>{<28><1><28><2>}"
    assert parsed.sample.task is None  # two different tasks


def test_text_only_rows_have_no_image(base):
    parsed = parse_row(row(image=None, conversation=[{"user": "hi", "assistant": "hello"}]), base)
    assert parsed.problems == () and parsed.sample.image is None and parsed.sample.task is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image": "missing.png"}, "image not found"),
        ({"image": "bad.png"}, "unreadable image"),
        ({"conversation": [{"user": "[refer] x", "assistant": "{<1><2><300><4>}"}]}, "outside"),
        ({"conversation": [{"user": "[refer] x", "assistant": "{<5><2><3><4>}"}]}, "swapped"),
        ({"conversation": [{"user": "[refer] x", "assistant": "{<1><2><3>}"}]}, "malformed box"),
        ({"conversation": [{"user": "[refer] x", "assistant": "{<01><2><3><4>}"}]}, "leading"),
        ({"conversation": [{"user": "[grounded] x", "assistant": "y"}]}, "unknown task"),
        ({"conversation": [{"user": "<ImageHere> x", "assistant": "y"}]}, "image slot"),
        ({"conversation": [{"user": "x", "assistant": " "}]}, "empty"),
        ({"conversation": [{"user": "x"}]}, "exactly"),
        ({"conversation": []}, "non-empty list"),
        ({"box_format": "percent"}, "box_format"),
        ({"captoin": "typo"}, "unknown key"),
        (
            {
                "box_format": "pixels",
                "conversation": [{"user": "x", "assistant": "{<0><0><201><5>}"}],
            },
            "outside the image (200x100)",
        ),
    ],
)
def test_bad_rows_name_their_problem(base, fields, message):
    (base / "bad.png").write_bytes(b"not an image")
    parsed = parse_row(row(**fields), base)
    assert parsed.sample is None
    assert any(message in problem for problem in parsed.problems), parsed.problems


def test_every_problem_of_a_row_is_listed(base):
    text = row(image="missing.png", conversation=[{"user": "[oops] x", "assistant": ""}])
    problems = parse_row(text, base).problems
    assert len(problems) == 3, problems


def test_malformed_json_is_a_problem_not_an_exception(base):
    assert "not valid JSON" in parse_row("{", base).problems[0]
    assert "JSON object" in parse_row("[1, 2]", base).problems[0]


def test_dataset_reads_rows_lazily_by_offset_and_skips_blank_lines(base):
    lines = [row(conversation=[{"user": f"[vqa] q{i}", "assistant": f"a{i}"}]) for i in range(5)]
    path = base / "data.jsonl"
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")
    dataset = CustomDataset(path)
    assert len(dataset) == 5
    assert [dataset[i].turns[0].assistant for i in range(5)] == [f"a{i}" for i in range(5)]
    with pytest.raises(IndexError):
        dataset[5]


def test_dataset_raises_data_error_with_the_line_number(base):
    path = base / "data.jsonl"
    path.write_text(row() + "\n" + row(image="missing.png") + "\n")
    dataset = CustomDataset(path)
    with pytest.raises(DataError, match="line 2: image not found"):
        dataset[1]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        CustomDataset(tmp_path / "nope.jsonl")


def test_a_byte_order_mark_before_the_first_row_is_accepted(base):
    assert parse_row("\ufeff" + row(), base).problems == ()
