from data_fixtures import write_image, write_json

from minigptv2.data.coco_captions import COCOCaptions
from minigptv2.tasks import CAPTION_TEMPLATES


def test_karpathy_train_entries_become_caption_samples(tmp_path):
    annotation = write_json(
        tmp_path / "coco_karpathy_train.json",
        [
            {
                "caption": "A man riding a horse.",
                "image": "train2014/COCO_train2014_000000000009.jpg",
                "image_id": "coco_9",
            },
            {
                "caption": "Restval: dropped.",
                "image": "val2014/COCO_val2014_000000000042.jpg",
                "image_id": "coco_42",
            },
            {
                "caption": "Two (small) dogs; playing!",
                "image": "train2014/COCO_train2014_000000000010.jpg",
                "image_id": "coco_10",
            },
        ],
    )
    write_image(tmp_path / "images/train2014/COCO_train2014_000000000009.jpg", (64, 48))
    write_image(tmp_path / "images/train2014/COCO_train2014_000000000010.jpg", (64, 48))
    reader = COCOCaptions(annotation, tmp_path / "images")
    assert len(reader) == 2
    samples = [reader[0], reader[1]]
    assert [s.turns[0].assistant for s in samples] == [
        "a man riding a horse",
        "two small dogs playing",
    ]
    assert all(s.task == "caption" and s.turns[0].user in CAPTION_TEMPLATES for s in samples)
    assert samples[0].image.size == (64, 48) and samples[0].source == "coco_caption"
