import pytest
from eval_helpers import write_image, write_json

from minigptv2.eval import vizwiz
from minigptv2.eval.benchmark import Source


def _answers(*words):
    return [{"answer": word, "answer_confidence": "yes"} for word in words]


def test_vizwiz_reader_and_both_accuracies(tmp_path):
    rows = [
        {
            "image": "VizWiz_val_00000000.jpg",
            "question": "Ok. There is another picture I hope it is a better one.",
            "answers": _answers(*(["unanswerable"] * 9 + ["cannot tell"])),
            "answer_type": "unanswerable",
            "answerable": 0,
        },
        {
            "image": "VizWiz_val_00000001.jpg",
            "question": "What color is this?",
            "answers": _answers(*(["Red"] * 2 + ["dark red"] * 8)),
            "answer_type": "other",
            "answerable": 1,
        },
    ]
    write_json(tmp_path / "Annotations" / "val.json", rows)
    write_image(tmp_path / "val" / "VizWiz_val_00000000.jpg", 8, 8)
    write_image(tmp_path / "val" / "VizWiz_val_00000001.jpg", 8, 8)
    items = vizwiz.BENCHMARK.load(Source("val", tmp_path))
    assert items[0].prompt == (
        "[vqa] The question is 'Ok. There is another picture I hope it is a better one.' Based "
        "on the image, answer the question with a single word or phrase. and reply "
        "'unanswerable' when the provided information is insufficient"
    )
    records = [vizwiz.score(items[0], "unanswerable"), vizwiz.score(items[1], "red")]
    assert records[0]["accuracy"] == 1.0
    # Official: "Red" (unanimous? no) gets only the punctuation rule, so case still differs.
    assert records[1]["accuracy"] == 0.0
    assert records[1]["accuracy_reference_rule"] == pytest.approx(2 / 3)
    summary = vizwiz.summarise(records)
    assert summary["accuracy_unanswerable"] == 1.0 and summary["accuracy_answerable"] == 0.0
    assert summary["n_unanswerable"] == 1
