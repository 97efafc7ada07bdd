import pytest
from eval_helpers import write_image, write_json

from minigptv2.eval import iconvqa
from minigptv2.eval.benchmark import BenchmarkDataError, Source


def test_reference_json_layout(tmp_path):
    rows = [
        {
            "image_id": "33",
            "question": "Which shape is a circle?",
            "choices": ["A", "B"],
            "answer": 1,
        }
    ]
    write_json(tmp_path / "choose_text_val.json", rows)
    write_image(tmp_path / "images" / "33" / "image.png", 8, 8)
    (item,) = iconvqa.BENCHMARK.load(Source("val", tmp_path, tmp_path / "images"))
    assert item.target == {"choices": ["A", "B"], "answer": 1}
    assert item.prompt.endswith("short answer: Which shape is a circle?")
    assert iconvqa.score(item, "1")["correct"] and not iconvqa.score(item, "0")["correct"]
    record = iconvqa.score(item, "7")
    assert not record["parsed"] and not record["correct"]


def test_official_folder_layout(tmp_path):
    for qid, answer in (("10", 0), ("9", 2)):
        folder = tmp_path / "val" / "choose_txt" / qid
        write_json(
            folder / "data.json",
            {
                "question": "How many?",
                "choices": ["1", "2", "3"],
                "answer": answer,
                "ques_type": "choose_txt",
            },
        )
        write_image(folder / "image.png", 8, 8)
    items = iconvqa.BENCHMARK.load(Source("val", tmp_path))
    assert [item.key for item in items] == ["9", "10"]  # numeric order
    assert items[0].image == tmp_path / "val" / "choose_txt" / "9" / "image.png"


def test_bad_answer_index_is_reported(tmp_path):
    rows = [{"image_id": "1", "question": "q", "choices": ["a"], "answer": 3}]
    write_json(tmp_path / "choose_text_val.json", rows)
    with pytest.raises(BenchmarkDataError, match="answer 3 out of range"):
        iconvqa.BENCHMARK.load(Source("val", tmp_path))
