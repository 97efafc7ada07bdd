import pytest
from eval_helpers import write_image, write_json

from minigptv2.eval import gqa
from minigptv2.eval.benchmark import Source


def test_gqa_reads_the_official_testdev_dict_and_scores_exact_match(tmp_path):
    questions = {
        "201307251": {
            "imageId": "n161313",
            "question": "Is it overcast?",
            "answer": "no",
            "fullAnswer": "No, it is clear.",
            "isBalanced": True,
        },
        "201640614": {"imageId": "n235859", "question": "Who is wearing a hat?", "answer": "man"},
    }
    write_json(tmp_path / "testdev_balanced_questions.json", questions)
    write_image(tmp_path / "images" / "n161313.jpg", 8, 8)
    write_image(tmp_path / "images" / "n235859.jpg", 8, 8)
    items = gqa.BENCHMARK.load(Source("testdev", tmp_path))
    assert [item.key for item in items] == ["201307251", "201640614"]
    assert items[1].prompt.endswith("short answer: Who is wearing a hat?")
    records = [gqa.score(items[0], "No"), gqa.score(items[1], "the man")]
    assert [r["correct"] for r in records] == [True, False]
    assert gqa.BENCHMARK.summarise(records)["accuracy"] == pytest.approx(0.5)


def test_gqa_accepts_the_reference_list_format(tmp_path):
    write_json(
        tmp_path / "testdev_balanced_questions.json",
        [{"image": "n1", "question": "q?", "answer": "yes"}],
    )
    write_image(tmp_path / "n1.jpg", 8, 8)
    (item,) = gqa.BENCHMARK.load(Source("testdev", tmp_path))
    assert item.target == {"answer": "yes"} and item.image.name == "n1.jpg"
