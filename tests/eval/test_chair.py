import pytest
from eval_helpers import write_image, write_json

from minigptv2.eval import chair
from minigptv2.eval.benchmark import BenchmarkDataError, Source

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 62, "name": "chair"}]


@pytest.fixture
def coco(tmp_path):
    images = [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}, {"id": 73}]
    captions = {
        "images": images,
        "annotations": [
            {"image_id": 42, "id": 1, "caption": "A puppy sleeping on a sofa."},
            {"image_id": 73, "id": 2, "caption": "An empty room."},
        ],
    }
    instances = {
        "images": images,
        "categories": CATEGORIES,
        "annotations": [
            {"image_id": 42, "category_id": 18, "bbox": [1, 2, 3, 4], "id": 7},
            {"image_id": 73, "category_id": 62, "bbox": [1, 2, 3, 4], "id": 8},
        ],
    }
    write_json(tmp_path / "annotations" / "captions_val2014.json", captions)
    write_json(tmp_path / "annotations" / "instances_val2014.json", instances)
    for image in (42, 73):
        write_image(tmp_path / "val2014" / f"COCO_val2014_{image:012d}.jpg", 8, 8)
    return tmp_path


def test_ground_truth_merges_instances_and_reference_captions(coco):
    truth = chair.ground_truth(
        coco / "annotations" / "captions_val2014.json",
        coco / "annotations" / "instances_val2014.json",
    )
    assert truth == {42: {"dog", "couch"}, 73: {"chair"}}


def test_chair_scores_a_grounded_caption_without_its_boxes(coco):
    items = chair.BENCHMARK.load(Source("grounded", coco))
    assert {item.key for item in items} == {"42", "73"}
    assert all(item.prompt == "[grounding] please describe this image in details" for item in items)
    by_key = {item.key: item for item in items}
    records = [
        chair.score(by_key["42"], "A <p>dog</p> {<1><2><50><60>} on a <p>couch</p> {<0><0><9><9>}"),
        chair.score(by_key["73"], "A cat on a chair"),
    ]
    assert records[0]["caption"] == "A dog on a couch" and records[0]["hallucinated"] == []
    assert records[1]["hallucinated"] == ["cat"]
    summary = chair.summarise(records)
    assert summary["chair_i"] == pytest.approx(1 / 4) and summary["chair_s"] == pytest.approx(1 / 2)
    assert summary["recall"] == pytest.approx(3 / 3)
    assert summary["mean_words"] == pytest.approx((5 + 5) / 2)


def test_the_image_sample_is_fixed_and_limited(coco):
    assert chair.sample_images(list(range(1000)), 5) == chair.sample_images(
        list(reversed(range(1000))), 5
    )
    assert len(chair.BENCHMARK.load(Source("short", coco, limit=1))) == 1


def test_unknown_categories_are_reported(coco):
    path = coco / "annotations" / "instances_val2014.json"
    write_json(
        path,
        {
            "categories": [{"id": 1, "name": "unicorn"}],
            "annotations": [{"image_id": 42, "category_id": 1}],
        },
    )
    with pytest.raises(BenchmarkDataError, match="unicorn"):
        chair.BENCHMARK.load(Source("short", coco))
