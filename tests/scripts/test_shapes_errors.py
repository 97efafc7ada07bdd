"""scripts/shapes_errors.py: the breakdowns it draws from eval predictions."""

from __future__ import annotations

import json

import pytest

# Two objects in a 200 x 100 scene; the grid is 0-100 on each side, so x halves and y stays.
OBJECTS = [
    {"shape": "triangle", "color": "blue", "box": [20, 10, 60, 50]},
    {"shape": "circle", "color": "red", "box": [120, 40, 180, 90]},
]


@pytest.fixture(scope="module")
def errors(load_script):
    return load_script("shapes_errors")


def refer(answer: str, expression: str = "the triangle", correct: bool = False) -> dict:
    expected = {"objects": OBJECTS, "object": 0, "answer": "{<10><10><30><50>}",
                "expression": expression, "kind": "refer", "language": "en"}  # fmt: skip
    return {"task": "refer", "answer": answer, "correct": correct, "unseen": False,
            "expected": expected}  # fmt: skip


def test_a_wrong_box_is_told_apart_by_where_it_lands(errors):
    assert errors.refer_landing(refer("{<10><10><30><50>}", correct=True)) == "right"
    assert errors.refer_landing(refer("{<60><40><90><90>}")) == "other object"
    assert errors.refer_landing(refer("{<25><30><40><60>}")) == "near target"
    assert errors.refer_landing(refer("{<92><1><99><5>}")) == "nowhere"
    assert errors.refer_landing(refer("a triangle")) == "unparsable"


def test_expression_kinds_in_english_and_korean(errors):
    assert errors.expression_kind(refer("", "the triangle")) == "shape"
    assert errors.expression_kind(refer("", "the blue triangle")) == "color+shape"
    assert errors.expression_kind(refer("", "the blue triangle on the left")) == "color+shape+place"
    korean = refer("", "왼쪽에 있는 파란 삼각형")
    korean["expected"]["language"] = "ko"
    assert errors.expression_kind(korean) == "color+shape+place"
    korean["expected"]["expression"] = "파란 삼각형"
    assert errors.expression_kind(korean) == "color+shape"


def test_exists_questions_split_by_what_the_scene_holds(errors):
    def exists(named):
        return {"expected": {"kind": "exists", "named": named, "objects": OBJECTS}}

    assert errors.exists_kind(exists(["blue", "triangle"])) == "exists: present"
    assert errors.exists_kind(exists(["red", "triangle"])) == "exists: swap"  # both there, apart
    assert errors.exists_kind(exists(["green", "square"])) == "exists: absent"


def test_breakdown_of_a_predictions_file(errors, tmp_path, capsys):
    identify = {"task": "identify", "answer": "blue square", "correct": False, "unseen": True,
                "expected": {"objects": OBJECTS, "object": 0, "language": "en"}}  # fmt: skip
    rows = [refer("{<60><40><90><90>}"), refer("{<10><10><30><50>}", correct=True), identify]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert errors.main([str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["refer"] == {"shape": {"other object": 1, "right": 1}}
    assert result["identify"] == {"held-out pairs": {"wrong shape": 1}}
    with pytest.raises(SystemExit, match="minigptv2 eval --out"):
        errors.main([str(tmp_path / "missing")])


def test_merged_image_tokens_a_box_covers(errors):
    # Shapes: 112 px, 14-px patches -> 8 x 8, merged 4 at a time -> 2 tokens a patch row.
    assert errors.token_cells((0, 0, 10, 10), 8, 4) == {(0, 0)}
    assert errors.token_cells((40, 0, 60, 10), 8, 4) == {(0, 0), (0, 1)}  # across the border
    assert errors.token_cells((60, 60, 90, 70), 8, 4) == {(4, 1), (5, 1)}


def test_refer_split_by_whether_the_target_shares_a_token(errors):
    apart = refer("{<10><10><30><50>}", correct=True)  # the objects lie in different strips
    together = refer("{<60><40><90><90>}")
    together["expected"] = dict(together["expected"], objects=[
        OBJECTS[0], {"shape": "circle", "color": "red", "box": [40, 10, 70, 40]}])  # fmt: skip
    result = errors.refer_by_token([apart, together], 112)
    assert result["has its own tokens"] == {"right": 1, "asked": 1, "accuracy": 1.0}
    assert result["shares a token with another object"]["asked"] == 1
    # A neighbour at grid x 35-45 meets the target (x 10-30) in the left half-width token at
    # 112 px, but not at 168 px, where a token is a third of the width.
    near = refer("{<60><40><90><90>}")
    near["expected"] = dict(near["expected"], objects=[
        OBJECTS[0], {"shape": "circle", "color": "red", "box": [70, 10, 90, 40]}])  # fmt: skip
    assert list(errors.refer_by_token([near], 112)) == ["shares a token with another object"]
    assert list(errors.refer_by_token([near], 168)) == ["has its own tokens"]
