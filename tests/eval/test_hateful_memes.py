import pytest
from eval_helpers import write_image, write_jsonl

from minigptv2.eval import hateful_memes
from minigptv2.eval.benchmark import Source


@pytest.fixture
def memes(tmp_path):
    rows = [
        {"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a range"},
        {"id": 46971, "img": "img/46971.png", "label": 0, "text": "bravery at its finest"},
    ]
    write_jsonl(tmp_path / "dev.jsonl", rows)
    for row in rows:
        write_image(tmp_path / row["img"], 8, 8)
    return Source("dev", tmp_path)


def test_reader_uses_the_reference_prompt_verbatim(memes):
    items = hateful_memes.BENCHMARK.load(memes)
    assert items[1].prompt == (
        "This is an image writting 'bravery at its finest'. Is this image hateful? "
        "Answer yes or no. Answer:"
    )
    assert [item.target["label"] for item in items] == [True, False]


def test_accuracy_and_auroc(memes):
    hateful, kind = hateful_memes.BENCHMARK.load(memes)
    records = [
        {**hateful_memes.score(hateful, "Yes."), "hateful_score": 0.3},
        {**hateful_memes.score(kind, "I think so"), "hateful_score": 0.7},
    ]
    summary = hateful_memes.summarise(records)
    assert summary["accuracy"] == 0.5 and summary["unparsable"] == 1
    assert summary["auroc"] == 0.0  # the hateful meme scored lower than the kind one
    del records[1]["hateful_score"]
    assert hateful_memes.summarise(records)["auroc"] is None  # no scores, no AUROC
