import pytest
from eval_helpers import write_image, write_jsonl

from minigptv2.eval import pope
from minigptv2.eval.benchmark import BenchmarkDataError, Source

ROWS = [
    {
        "question_id": 1,
        "image": "COCO_val2014_000000310196.jpg",
        "text": "Is there a snowboard in the image?",
        "label": "yes",
    },
    {
        "question_id": 2,
        "image": "COCO_val2014_000000310196.jpg",
        "text": "Is there a dog in the image?",
        "label": "no",
    },
    {
        "question_id": 3,
        "image": "COCO_val2014_000000310196.jpg",
        "text": "Is there a person in the image?",
        "label": "yes",
    },
]


def test_pope_reader_and_scores(tmp_path):
    write_jsonl(tmp_path / "coco" / "coco_pope_adversarial.json", ROWS)
    write_image(tmp_path / "val2014" / "COCO_val2014_000000310196.jpg", 8, 8)
    items = pope.BENCHMARK.load(Source("adversarial", tmp_path))
    assert items[0].prompt.endswith("short answer: Is there a snowboard in the image?")
    answers = ["Yes, there is.", "Yes.", "It is hard to say."]
    records = [pope.score(item, answer) for item, answer in zip(items, answers, strict=True)]
    summary = pope.summarise(records)
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["precision"] == pytest.approx(1 / 2)
    assert summary["recall"] == pytest.approx(1 / 2)
    assert summary["yes_ratio"] == pytest.approx(2 / 3)
    assert summary["unparsable"] == 1 and records[2]["answer"] == "It is hard to say."


def test_pope_rejects_labels_other_than_yes_no(tmp_path):
    write_jsonl(tmp_path / "coco_pope_random.json", [{**ROWS[0], "label": "maybe"}])
    with pytest.raises(BenchmarkDataError, match="label is not yes/no"):
        pope.BENCHMARK.load(Source("random", tmp_path))
