from data_fixtures import write_image, write_json

from minigptv2.data.textcaps import TextCaps
from minigptv2.tasks import CAPTION_TEMPLATES


def test_textcaps_entries_become_caption_samples(tmp_path):
    annotation = write_json(
        tmp_path / "TextCaps_0.1_train.json",
        {
            "dataset_type": "train",
            "dataset_name": "textcaps",
            "data": [
                {"image_id": "011e7e629fb9ae7b", "caption_str": "A bottle of Coca-Cola: 'Classic'.",
                 "image_width": 1024, "image_height": 768, "caption_id": 1},
            ],
        },
    )  # fmt: skip
    write_image(tmp_path / "train_images/011e7e629fb9ae7b.jpg", (50, 40))
    sample = TextCaps(annotation, tmp_path / "train_images")[0]
    assert sample.turns[0].assistant == "a bottle of coca-cola 'classic'"
    assert sample.turns[0].user in CAPTION_TEMPLATES and sample.task == "caption"
    assert sample.source == "textcaps_caption"
