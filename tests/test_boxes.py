"""Tests for the box grammar (minigptv2/boxes.py): encoding, decoding, tolerant parsing and IoU."""

from __future__ import annotations

import random

import pytest

from minigptv2.boxes import (
    Box,
    GroundedPhrase,
    Grounding,
    bins_to_box,
    box_to_bins,
    box_to_text,
    boxes_to_text,
    iou,
    iou_inclusive,
    parse_box,
    parse_grounding,
    phrase_to_text,
    xywh_to_xyxy,
)


def assert_boxes_close(actual: tuple[Box, ...], expected: list[Box]) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-9), (actual, expected)


def assert_phrases(grounding: Grounding, expected: list[tuple[str | None, list[Box]]]) -> None:
    assert [p.phrase for p in grounding.phrases] == [phrase for phrase, _ in expected]
    for grounded, (_, boxes) in zip(grounding.phrases, expected, strict=True):
        assert_boxes_close(grounded.boxes, boxes)


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------


def test_box_to_text_hand_example() -> None:
    # 10/200, 20/400, 110/200, 220/400 -> 5 %, 5 %, 55 %, 55 %.
    assert box_to_text((10, 20, 110, 220), 200, 400) == "{<5><5><55><55>}"


def test_box_to_bins_truncates_instead_of_rounding() -> None:
    # 100/300 = 33.3 % -> 33; 299.9/300 = 99.97 % -> 99 (rounding would give 100); 200/300 -> 66.
    assert box_to_bins((100, 0, 299.9, 200), 300, 300) == (33, 0, 99, 66)


def test_box_to_bins_reproduces_reference_float_arithmetic() -> None:
    # 57 / 100 * 100 == 56.99999999999999 in floating point, so the reference data says 56.
    assert box_to_bins((57, 29, 80, 90), 100, 100) == (56, 28, 80, 90)


def test_right_and_bottom_border_map_to_100() -> None:
    assert box_to_bins((0, 0, 640, 480), 640, 480) == (0, 0, 100, 100)


def test_box_to_bins_clamps_out_of_image_values() -> None:
    assert box_to_bins((-30, -0.5, 700, 1000), 640, 480) == (0, 0, 100, 100)


def test_box_to_bins_orders_swapped_corners() -> None:
    assert box_to_bins((110, 220, 10, 20), 200, 400) == (5, 5, 55, 55)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-5, 10), (float("nan"), 10)])
def test_box_to_bins_rejects_bad_image_size(width: float, height: float) -> None:
    with pytest.raises(ValueError, match="width"):
        box_to_bins((1, 2, 3, 4), width, height)


def test_box_to_bins_rejects_non_finite_coordinates() -> None:
    with pytest.raises(ValueError, match="finite"):
        box_to_bins((1, 2, float("inf"), 4), 10, 10)


def test_xywh_to_xyxy() -> None:
    assert xywh_to_xyxy([10, 20, 30, 40]) == (10, 20, 40, 60)


def test_boxes_to_text_joins_with_delim_without_spaces() -> None:
    boxes = [(0, 0, 50, 50), (50, 50, 100, 100)]
    assert boxes_to_text(boxes, 100, 100) == "{<0><0><50><50>}<delim>{<50><50><100><100>}"
    assert boxes_to_text([], 100, 100) == ""


def test_phrase_to_text_exact_reference_string() -> None:
    # Pixel boxes chosen so that their bins are the sofas example of spec §3.2.
    boxes = [(114.5, 49.5, 140.5, 72.5), (52.5, 48.5, 86.5, 71.5)]
    assert (
        phrase_to_text("sofas", boxes, 200, 100)
        == "<p>sofas</p> {<57><49><70><72>}<delim>{<26><48><43><71>}"
    )


def test_phrase_to_text_requires_a_box() -> None:
    with pytest.raises(ValueError, match="at least one box"):
        phrase_to_text("sofas", [], 200, 100)


def test_bins_to_box_scales_without_centering() -> None:
    assert bins_to_box((50, 25, 100, 100), 640, 480) == (320.0, 120.0, 640.0, 480.0)
    assert bins_to_box((0, 0, 1, 1), 640, 480) == pytest.approx((0, 0, 6.4, 4.8))


@pytest.mark.parametrize("seed", range(100))
def test_encode_decode_round_trip_within_one_grid_cell(seed: int) -> None:
    rng = random.Random(seed)
    width, height = rng.uniform(1, 4000), rng.uniform(1, 4000)
    xs = sorted(rng.uniform(0, width) for _ in range(2))
    ys = sorted(rng.uniform(0, height) for _ in range(2))
    box = (xs[0], ys[0], xs[1], ys[1])

    decoded = bins_to_box(box_to_bins(box, width, height), width, height)

    # Truncation only moves coordinates towards the origin, by less than one cell (plus the
    # float slack of ``x / W * 100``, which can drop a value that lies exactly on a cell edge).
    cell = (width / 100, height / 100, width / 100, height / 100)
    for original, back, size in zip(box, decoded, cell, strict=True):
        assert -1e-9 <= original - back <= size + 1e-9
    # The text form carries exactly the same information as the bins.
    assert parse_box(box_to_text(box, width, height), width, height) == decoded


# --------------------------------------------------------------------------------------------------
# Parsing: observed reference outputs
# --------------------------------------------------------------------------------------------------


def test_parse_grounded_caption_reference_output() -> None:
    answer = "A <p>young man</p> {<8><0><62><91>} sitting at <p>his desk</p> {<0><85><100><100>}"
    grounding = parse_grounding(answer, 500, 400)
    assert grounding.text == "A young man sitting at his desk"
    assert_phrases(
        grounding,
        [("young man", [(40, 0, 310, 364)]), ("his desk", [(0, 340, 500, 400)])],
    )


def test_parse_detection_reference_output_with_two_boxes() -> None:
    answer = "<p>sofas</p> {<57><49><70><72>}<delim>{<26><48><43><71>}"
    grounding = parse_grounding(answer, 200, 100)
    assert grounding.text == "sofas"
    assert_phrases(grounding, [("sofas", [(114, 49, 140, 72), (52, 48, 86, 71)])])
    assert len(grounding.boxes) == 2


def test_parse_refer_answer_has_no_phrase() -> None:
    grounding = parse_grounding("{<12><5><40><90>}", 1000, 200)
    assert grounding == Grounding("", (GroundedPhrase(None, ((120.0, 10.0, 400.0, 180.0),)),))


def test_to_json_one_entry_per_box_rounded() -> None:
    grounding = parse_grounding("<p>cat</p> {<1><2><3><4>}<delim>{<10><10><20><20>}", 333, 333)
    assert grounding.to_json() == [
        {"phrase": "cat", "box": [3.33, 6.66, 9.99, 13.32]},
        {"phrase": "cat", "box": [33.3, 33.3, 66.6, 66.6]},
    ]


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, -1)])
def test_parse_grounding_rejects_bad_image_size(width: float, height: float) -> None:
    with pytest.raises(ValueError):
        parse_grounding("{<1><2><3><4>}", width, height)


# --------------------------------------------------------------------------------------------------
# Parsing: malformed output (image 100x100, so pixels equal bins)
# --------------------------------------------------------------------------------------------------

B1234 = (1, 2, 3, 4)
MALFORMED: list[tuple[str, list[tuple[str | None, list[Box]]]]] = [
    ("", []),
    ("   \n\t ", []),
    ("no boxes at all", []),
    ("{ <1> <2> <3> <4> }", [(None, [B1234])]),
    ("{< 1 >< 2 ><3 > <4>}", [(None, [B1234])]),
    ("<1><2><3><4>", [(None, [B1234])]),
    ("{<1><2><3><4>", [(None, [B1234])]),
    ("<1><2><3><4>}", [(None, [B1234])]),
    ("{<10><20><300><40>}", [(None, [(10, 20, 100, 40)])]),
    ("{<50><60><10><20>}", [(None, [(10, 20, 50, 60)])]),
    ("{<-5><-1><30><40>}", [(None, [(0, 0, 30, 40)])]),
    ("{<+5><2><3><4>}", [(None, [(3, 2, 5, 4)])]),
    ("{<999999><0><50><50>}", [(None, [(50, 0, 100, 50)])]),
    ("{<" + "9" * 400 + "><0><50><50>}", [(None, [(50, 0, 100, 50)])]),
    ("{<10.5><20.25><30.><.5>}", [(None, [(10.5, 0.5, 30, 20.25)])]),
    ("{<1><2><3>", []),
    ("{<12><5", []),
    ("{<12><5><40><90", []),
    ("{<1><2><3>}", []),
    ("{<1><2><3><4><5>}", []),
    ("{<1><2><3><4><5><6><7><8>}", []),
    ("the answer is {<12><5><40><90>} i think", [(None, [(12, 5, 40, 90)])]),
    ("<unk>{<12><5><40><90>}<unk></s>", [(None, [(12, 5, 40, 90)])]),
    ("{<12><unk><5><40><90>}", [(None, [(12, 5, 40, 90)])]),
    ("一只 <p>猫</p> {<1><2><3><4>} 🐱", [("猫", [B1234])]),
    ("<p>a <p>b</p> {<1><2><3><4>}", [("b", [B1234])]),
    ("<p>red car {<1><2><3><4>}", [("red car", [B1234])]),
    ("<p>red car</p>", []),
    ("<p>red car", []),
    ("</p> {<1><2><3><4>}", [(None, [B1234])]),
    ("<p></p> {<1><2><3><4>}", [(None, [B1234])]),
    ("<p>man</p>{<1><2><3><4>}", [("man", [B1234])]),
    ("<p>man</p> and {<1><2><3><4>}", [(None, [B1234])]),
    ("<delim>{<1><2><3><4>}<delim>", [(None, [B1234])]),
    (
        "<p>x</p> <delim> {<1><2><3><4>} <delim> {<5><6><7><8>} <delim>",
        [("x", [B1234, (5, 6, 7, 8)])],
    ),
    ("{<1><2><3><4>}{<5><6><7><8>}", [(None, [B1234, (5, 6, 7, 8)])]),
    ("{<1><2><3><4>} and {<5><6><7><8>}", [(None, [B1234]), (None, [(5, 6, 7, 8)])]),
    ("<p>a</p> {<1><2><3>}<delim>{<4><5><6><7>}", [("a", [(4, 5, 6, 7)])]),
    ("<p>cut</p> {<1><2><3><4>}<delim>{<5><6", [("cut", [B1234])]),
    ("<p>a</p> {<1><2><3><4>} <p", [("a", [B1234])]),
    # Zero-area boxes after clamping are valid output (a line, a point) and are kept.
    ("{<5><5><5><9>}", [(None, [(5, 5, 5, 9)])]),
    ("{<150><10><200><50>}", [(None, [(100, 10, 100, 50)])]),
    (
        "<p>a</p> {<1><2><3><4>} then <p>b</p> {<5><6><7><8>}<delim>{<9><9><9><9>} end",
        [("a", [B1234]), ("b", [(5, 6, 7, 8), (9, 9, 9, 9)])],
    ),
]


@pytest.mark.parametrize(("answer", "expected"), MALFORMED)
def test_parse_malformed_output(answer: str, expected: list[tuple[str | None, list[Box]]]) -> None:
    assert_phrases(parse_grounding(answer, 100, 100), expected)


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("A <p>young man</p> {<8><0><62><91>} sitting", "A young man sitting"),
        ("at <p>his desk</p> {<0><85><100><100>}.", "at his desk."),
        ("the answer is {<12><5><40><90>} i think", "the answer is i think"),
        ("<p>a <p>b</p> {<1><2><3><4>}", "a b"),
        ("<p>cut</p> {<1><2><3><4>}<delim>{<5><6", "cut"),
        ("a\n\n  b <unk> c</s>", "a b c"),
        ("{<1><2><3>} words stay", "words stay"),
    ],
)
def test_parse_grounding_plain_text(answer: str, text: str) -> None:
    assert parse_grounding(answer, 100, 100).text == text


def test_parse_many_boxes() -> None:
    boxes = [(i % 50, i % 30, 50 + i % 50, 70 + i % 30) for i in range(500)]
    answer = "<p>dots</p> " + "<delim>".join(f"{{<{a}><{b}><{c}><{d}>}}" for a, b, c, d in boxes)
    grounding = parse_grounding(answer, 100, 100)
    assert_phrases(grounding, [("dots", boxes)])


# --------------------------------------------------------------------------------------------------
# parse_box
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("{<12><5><40><90>}", (12, 5, 40, 90)),
        ("<p>a</p> {<1><2><3><4>}<delim>{<5><6><7><8>}", B1234),
        ("[12, 5, 40, 90]", (12, 5, 40, 90)),  # bare four numbers, like the RefCOCO scorer
        ("12 5 40 90 <unk>", (12, 5, 40, 90)),
        ("{<12><5><40>}", None),
        ("1 2 3 4 5", None),
        ("", None),
    ],
)
def test_parse_box(answer: str, expected: Box | None) -> None:
    result = parse_box(answer, 100, 100)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_box_strict_mode_ignores_bare_numbers() -> None:
    assert parse_box("[12, 5, 40, 90]", 100, 100, allow_bare=False) is None


# --------------------------------------------------------------------------------------------------
# Never raises
# --------------------------------------------------------------------------------------------------

PIECES = [
    "<p>",
    "</p>",
    "<delim>",
    "{",
    "}",
    "<",
    ">",
    "</",
    "<p",
    "<del",
    "<12>",
    "<-3>",
    "<999999>",
    "<1.5>",
    "< 7 >",
    "<1",
    "{<1><2><3><4>}",
    "<unk>",
    "</s>",
    "<s>",
    " ",
    "  ",
    "\n",
    "a",
    "man",
    "猫",
    "🐱",
    ".",
    ",",
    "0",
    "42",
    "-",
    "+",
    "\\",
    "$$",
    "[refer]",
    "\x00",
]


@pytest.mark.parametrize("seed", range(5))
def test_parse_grounding_never_raises_on_random_strings(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        answer = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        width, height = rng.uniform(1, 2000), rng.uniform(1, 2000)

        grounding = parse_grounding(answer, width, height)
        parse_box(answer, width, height)

        assert grounding.text == " ".join(grounding.text.split())
        assert "{" not in grounding.text and "}" not in grounding.text
        for grounded in grounding.phrases:
            assert grounded.boxes, answer
            assert grounded.phrase is None or grounded.phrase.strip() == grounded.phrase != ""
        for x1, y1, x2, y2 in grounding.boxes:
            assert 0 <= x1 <= x2 <= width + 1e-9 and 0 <= y1 <= y2 <= height + 1e-9, answer
        assert len(grounding.to_json()) == len(grounding.boxes)


def test_parse_grounding_is_fast_on_long_pathological_input() -> None:
    # Backtracking regexes can go quadratic on long runs of "<" and spaces; this must stay linear.
    answer = "< " * 50_000 + "{" + "<1>" * 50_000 + "<p>" * 10_000
    assert parse_grounding(answer, 10, 10).phrases == ()


# --------------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------------


def test_iou_identical_boxes() -> None:
    assert iou((1, 2, 11, 22), (1, 2, 11, 22)) == 1.0
    assert iou_inclusive((1, 2, 11, 22), (1, 2, 11, 22)) == 1.0


def test_iou_disjoint_boxes() -> None:
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou_inclusive((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_iou_partial_overlap() -> None:
    # Second box covers the right half of the first: inter 50, union 150.
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    # Contained box of half the area: inter 50, union 100.
    assert iou((0, 0, 10, 10), (0, 0, 10, 5)) == pytest.approx(0.5)
    # Inclusive pixels: 10x10 boxes [0..9] and [5..14] share 5 columns -> 50 / 150.
    assert iou_inclusive((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(1 / 3)


def test_iou_touching_edges() -> None:
    a, b = (0, 0, 10, 10), (10, 0, 20, 10)
    assert iou(a, b) == 0.0
    # "+1 pixel": the shared column counts, 11 of 121 + 121 - 11 pixels.
    assert iou_inclusive(a, b) == pytest.approx(11 / 231)


def test_iou_zero_area_boxes_do_not_divide_by_zero() -> None:
    point = (5, 5, 5, 5)
    assert iou(point, point) == 0.0
    assert iou(point, (0, 0, 10, 10)) == 0.0
    assert iou((0, 5, 10, 5), (0, 5, 10, 5)) == 0.0
    # Under the inclusive convention a point is one pixel.
    assert iou_inclusive(point, point) == 1.0


def random_box(rng: random.Random) -> Box:
    x1, x2 = sorted(rng.uniform(0, 50) for _ in range(2))
    y1, y2 = sorted(rng.uniform(0, 50) for _ in range(2))
    return (x1, y1, x2, y2)


def test_iou_is_symmetric_and_bounded() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a, b = random_box(rng), random_box(rng)
        assert iou(a, b) == pytest.approx(iou(b, a))
        assert 0.0 <= iou(a, b) <= 1.0
        assert iou_inclusive(a, b) == pytest.approx(iou_inclusive(b, a))
        assert 0.0 <= iou_inclusive(a, b) <= 1.0
