from eval_helpers import write_image, write_jsonl

from minigptv2.eval import vsr
from minigptv2.eval.benchmark import Source

ROWS = [
    {
        "image": "000000085637.jpg",
        "image_link": "http://images.cocodataset.org/train2017/000000085637.jpg",
        "caption": "The umbrella is far away from the motorcycle.",
        "label": 0,
        "relation": "far away from",
    },
    {"image": "000000000139.jpg", "caption": "The cat is on the bed.", "label": 1},
    {"image": "000000000139.jpg", "caption": "The bed is under the cat.", "label": 1},
]


def test_vsr_reader_prompt_and_true_false_scoring(tmp_path):
    write_jsonl(tmp_path / "zeroshot" / "test.jsonl", ROWS)
    write_image(tmp_path / "images" / "train2017" / "000000085637.jpg", 8, 8)
    write_image(tmp_path / "images" / "val2017" / "000000000139.jpg", 8, 8)
    items = vsr.BENCHMARK.load(Source("test", tmp_path, tmp_path / "images"))
    assert items[0].prompt == (
        "[vqa] Based on the image, is this statement true or false? "
        "The umbrella is far away from the motorcycle."
    )
    assert [item.target["label"] for item in items] == [False, True, True]
    records = [
        vsr.score(items[0], "False."),
        vsr.score(items[1], "false"),
        vsr.score(items[2], "?"),
    ]
    assert [r["correct"] for r in records] == [True, False, False]
    summary = vsr.BENCHMARK.summarise(records)
    assert summary["accuracy"] == 1 / 3 and summary["unparsable"] == 1
