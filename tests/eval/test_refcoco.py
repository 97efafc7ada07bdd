import os
from pathlib import Path

import pytest
from eval_helpers import ScriptedAssistant, write_image, write_json

from minigptv2.eval import refcoco, runner
from minigptv2.eval.benchmark import BenchmarkDataError, Source
from minigptv2.eval.refcoco import read_entries

# The team's copy of the RefCOCO eval splits sits beside the repository (../shared); a clone made
# elsewhere (e.g. by CI) finds it through MINIGPTV2_SHARED or the workspace's /work/shared.
SHARED = next(
    (
        root / "data" / "refcoco_eval"
        for root in (
            Path(os.environ.get("MINIGPTV2_SHARED", "/nonexistent")),
            Path(__file__).resolve().parents[3] / "shared",
            Path("/work/shared"),
        )
        if (root / "data" / "refcoco_eval").is_dir()
    ),
    Path("/nonexistent"),
)
SIZES = {
    "refcoco_val": 10834,
    "refcoco_testA": 5657,
    "refcoco_testB": 5095,
    "refcoco+_val": 10758,
    "refcoco+_testA": 5726,
    "refcoco+_testB": 4889,
    "refcocog_val": 4896,
    "refcocog_test": 9602,
}

# Two expressions for one object of one image (the case the reference scored wrongly), one more.
ENTRIES = [
    {
        "img_id": "COCO_train2014_000000580957_4",
        "sents": "bowl behind the others",
        "bbox": [468.3, 0.91, 171.7, 116.12],  # touches the right border (468.3 + 171.7 = 640)
        "height": 428,
        "width": 640,
    },
    {
        "img_id": "COCO_train2014_000000580957_4",
        "sents": "dish in top right corner",
        "bbox": [468.3, 0.91, 171.7, 116.12],
        "height": 428,
        "width": 640,
    },
    {
        "img_id": "COCO_train2014_000000000077_12",
        "sents": "man on the left",
        "bbox": [10, 20, 30, 40],
        "height": 100,
        "width": 200,
    },
]


@pytest.fixture
def split(tmp_path):
    write_json(tmp_path / "ann" / "refcoco_val.json", ENTRIES)
    write_image(tmp_path / "img" / "COCO_train2014_000000580957.jpg", 64, 43)
    write_image(tmp_path / "img" / "COCO_train2014_000000000077.jpg", 20, 10)
    return Source("val", tmp_path / "ann", tmp_path / "img")


def test_reader_gives_one_item_per_expression(split):
    items = refcoco.BENCHMARKS["refcoco"].load(split)
    assert [item.key for item in items] == ["0", "1", "2"]
    assert items[1].prompt == "[refer] give me the location of dish in top right corner"
    assert items[0].image == split.images / "COCO_train2014_000000580957.jpg"
    assert items[0].target["box"] == pytest.approx([468.3, 0.91, 640.0, 117.03])
    assert (items[0].target["width"], items[0].target["height"]) == (640, 428)


def test_expressions_of_one_image_are_scored_separately(split):
    items = refcoco.BENCHMARKS["refcoco"].load(split)
    right = "{<73><0><100><27>}"  # the border-touching target on the 0..100 grid
    answers = {items[0].prompt: right, items[1].prompt: "{<0><0><10><10>}"}
    records = [refcoco.score(item, answers.get(item.prompt, "no box here")) for item in items]
    summary = refcoco.summarise(records)
    assert records[0]["iou"] > 0.9 and records[1]["iou"] == 0.0
    assert summary["acc50"] == pytest.approx(1 / 3)
    assert summary["acc50_reference_rule"] == pytest.approx(1 / 3)
    assert summary["n"] == 3 and summary["unparsable"] == summary["unparsable_reference_rule"] == 1
    assert records[2]["answer"] == "no box here" and not records[2]["parsed"]


def test_runner_scores_the_split_end_to_end(split):
    assistant = ScriptedAssistant(
        lambda prompt: "{<73><0><100><27>}" if "bowl" in prompt else "{<5>"
    )
    summary = runner.evaluate(
        assistant, "refcoco", "val", data_root=split.data_root, images=split.images, batch_size=2
    )
    assert summary["acc50"] == pytest.approx(1 / 3) and summary["unparsable"] == 2
    assert summary["paper"]["acc50_reference_rule"] == {"minigptv2": 88.69, "minigptv2_chat": 88.06}
    assert all(
        config.max_new_tokens == 20 and not config.do_sample for *_, config in assistant.calls
    )
    table = runner.markdown_table(summary)
    assert "| acc50_reference_rule (%) | 33.33 | 88.69 | 88.06 |" in table


def test_missing_images_and_files_are_named(split, tmp_path):
    (split.images / "COCO_train2014_000000000077.jpg").unlink()
    with pytest.raises(BenchmarkDataError, match=r"1 of 3 images are missing.*000000000077"):
        refcoco.BENCHMARKS["refcoco"].load(split)
    with pytest.raises(BenchmarkDataError, match=r"refcoco_testA\.json"):
        refcoco.BENCHMARKS["refcoco"].load(Source("testA", split.data_root, split.images))
    with pytest.raises(BenchmarkDataError, match="--data-root"):
        refcoco.BENCHMARKS["refcoco"].load(Source("val"))


def test_malformed_entries_are_reported(tmp_path):
    bad = write_json(tmp_path / "refcoco_val.json", [{**ENTRIES[0], "bbox": [1, 2, 3]}])
    with pytest.raises(BenchmarkDataError, match="entry 0: bbox"):
        read_entries(bad, "refcoco")
    bad = write_json(tmp_path / "refcoco_val.json", [{"img_id": "x"}])
    with pytest.raises(BenchmarkDataError, match="lacks sents, bbox, height, width"):
        read_entries(bad, "refcoco")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared RefCOCO split files not present")
@pytest.mark.parametrize(("name", "size"), SIZES.items())
def test_the_shared_split_files_parse_with_the_published_denominators(name, size):
    entries = read_entries(SHARED / f"{name}.json", name.split("_")[0])
    assert len(entries) == size
    assert all(len(entry["img_id"][: refcoco.IMAGE_NAME_LENGTH]) == 27 for entry in entries)
    assert all(entry["img_id"].startswith("COCO_train2014_") for entry in entries)


# Hand-made answers for a 200 x 100 image whose target is its right half, one per rule of the
# authors' eval_ref.py: (answer, hit under the tolerant standard reading, hit under the reference).
REFERENCE_CASES = [
    ("{<50><0><100><100>}", True, True),
    # eval_ref.py deletes "<unk>" and every space, then strips, before matching.
    ("<unk> { <50> <0> <100> <100> }\n", True, True),
    ("{<50><0><100><100>} on the right", True, True),
    # Flipped corners: the standard reading reorders them, the reference scores the flip (a miss).
    ("{<100><100><50><0>}", True, False),
    # Over 100: clamped by the standard reading; the reference scales 200 to 400 px (IoU 1/3).
    ("{<50><0><200><100>}", True, False),
    # The regex is anchored at the start (re.match): a box after words is not accepted.
    ("It is at {<50><0><100><100>}", True, False),
    # A fifth integer anywhere makes the script's 4-way unpack fail: a miss.
    ("{<50><0><100><100>}<delim>{<0><0><10><10>}", True, False),
    ("{<50><0><100><100>} and 2 more", True, False),
    # At most three digits per value, integers only.
    ("{<50><0><0100><100>}", True, False),
    ("{<50.0><0><100><100>}", True, False),
    ("[50, 0, 100, 100]", False, False),
    # int() of a 5000-digit string raises in Python >= 3.11: still just a miss.
    ("{<50><0><100><100>}" + "9" * 5000, True, False),
]


@pytest.mark.parametrize(
    ("answer", "standard", "reference"), REFERENCE_CASES, ids=[a[:40] for a, *_ in REFERENCE_CASES]
)
def test_reference_rule_reads_answers_as_eval_ref_does(answer, standard, reference):
    target = {"img_id": "COCO_train2014_000000000077_12", "box": [100, 0, 200, 100]}
    item = refcoco.Item("0", "refer", None, "", {**target, "width": 200, "height": 100})
    summary = refcoco.summarise([refcoco.score(item, answer)])
    assert summary["acc50"] == float(standard)
    assert summary["acc50_reference_rule"] == float(reference)
