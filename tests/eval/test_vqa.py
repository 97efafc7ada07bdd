import pytest
from eval_helpers import write_image, write_json

from minigptv2.eval import vqa
from minigptv2.eval.benchmark import BenchmarkDataError, Source


def _answers(*words):
    return [
        {"answer": word, "raw_answer": word, "answer_confidence": "yes", "answer_id": i + 1}
        for i, word in enumerate(words)
    ]


@pytest.fixture
def okvqa(tmp_path):
    questions = [
        {"image_id": 9, "question": "What sport is this?", "question_id": 90},
        {"image_id": 25, "question": "How many animals?", "question_id": 250},
    ]
    annotations = [
        {
            "image_id": 25,
            "question_id": 250,
            "question_type": "how many",
            "answer_type": "number",
            "answers": _answers(*(["2"] * 10)),
        },
        {
            "image_id": 9,
            "question_id": 90,
            "question_type": "other",
            "answer_type": "other",
            "answers": _answers(*(["tennis"] * 6 + ["ball"] * 4)),
        },
    ]
    write_json(tmp_path / "OpenEnded_mscoco_val2014_questions.json", {"questions": questions})
    write_json(tmp_path / "mscoco_val2014_annotations.json", {"annotations": annotations})
    write_image(tmp_path / "img" / "val2014" / "COCO_val2014_000000000009.jpg", 8, 8)
    write_image(tmp_path / "img" / "000000000025.jpg", 8, 8)  # the COCO-2017 name also works
    return Source("val", tmp_path, tmp_path / "img")


def test_okvqa_reader_joins_questions_and_answers(okvqa):
    items = vqa.BENCHMARKS["okvqa"].load(okvqa)
    assert [item.key for item in items] == ["90", "250"]
    assert items[0].prompt == (
        "[vqa] Based on the image, respond to this question with a short answer: "
        "What sport is this?"
    )
    assert items[0].image.name == "COCO_val2014_000000000009.jpg"
    assert items[1].target == {"answers": ["2"] * 10, "answer_type": "number"}


def test_okvqa_scores_with_the_official_accuracy(okvqa):
    sport, count = vqa.BENCHMARKS["okvqa"].load(okvqa)
    records = [vqa.score(sport, "Ball."), vqa.score(count, "two"), vqa.score(sport, " ")]
    assert records[0]["accuracy"] == pytest.approx((4 * 1 + 6 * 1) / 10)  # 4 matches: >= 3 left
    assert records[1]["accuracy"] == 1.0 and records[1]["accuracy_reference_rule"] == 0.0
    assert not records[2]["parsed"] and records[2]["accuracy"] == 0.0
    summary = vqa.summarise(records)
    assert summary["accuracy"] == pytest.approx(2 / 3)
    assert summary["accuracy_per_answer_type"] == {"number": 1.0, "other": 0.5}
    assert summary["unparsable"] == 1


def test_a_question_without_annotation_is_an_error(okvqa):
    path = okvqa.data_root / "mscoco_val2014_annotations.json"
    write_json(path, {"annotations": []})
    with pytest.raises(BenchmarkDataError, match=r"question 90 .* has no entry"):
        vqa.BENCHMARKS["okvqa"].load(okvqa)
