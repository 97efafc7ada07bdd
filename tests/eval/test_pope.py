import pytest
from eval_helpers import write_image, write_jsonl

from minigptv2.eval import pope
from minigptv2.eval.benchmark import BenchmarkDataError, Source
from minigptv2.eval.metrics import pope_answer, pope_answer_official

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


# (answer, the official script's reading: True = "yes", the tolerant reading: True/False/None)
OFFICIAL_CASES = [
    ("No, there is not.", False, False),
    ("Yes, there is a snowboard.", True, True),
    ("There is no dog", False, False),  # "no" anywhere in the first sentence
    ("Yes. No cat here.", True, True),  # only the text before the first "." counts
    # Case-sensitive words split on single spaces: only "No", "no" and "not" say no.
    ("NO", True, False),
    ("Not at all", True, False),
    ("No!", True, False),
    ("no\nthere is none", True, False),
    # Everything that does not say no is a "yes" there; the tolerant reading calls it unparsable.
    ("It is hard to say", True, None),
    ("", True, None),
]


@pytest.mark.parametrize(("answer", "official", "tolerant"), OFFICIAL_CASES)
def test_pope_official_rule_reads_answers_as_the_pope_script(answer, official, tolerant):
    assert pope_answer_official(answer) is official
    assert pope_answer(answer) is tolerant


def test_pope_official_scores_count_every_answer_as_yes_or_no(tmp_path):
    write_jsonl(tmp_path / "coco_pope_random.json", ROWS)
    write_image(tmp_path / "COCO_val2014_000000310196.jpg", 8, 8)
    items = pope.BENCHMARK.load(Source("random", tmp_path))
    answers = ["Yes, there is.", "NO.", "It is hard to say."]  # labels: yes, no, yes
    summary = pope.summarise([pope.score(item, a) for item, a in zip(items, answers, strict=True)])
    # Official: yes, yes, yes -> TP 2, FP 1. Tolerant: yes, no, unparsable.
    assert summary["accuracy_official"] == pytest.approx(2 / 3)
    assert summary["precision_official"] == pytest.approx(2 / 3)
    assert summary["recall_official"] == 1.0
    assert summary["f1_official"] == pytest.approx(0.8)
    assert summary["yes_ratio_official"] == 1.0
    assert summary["accuracy"] == pytest.approx(2 / 3) and summary["yes_ratio"] == pytest.approx(
        1 / 3
    )
