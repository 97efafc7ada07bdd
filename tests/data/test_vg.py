from data_fixtures import write_image, write_json

from minigptv2.data.vg import VisualGenomeRegions
from minigptv2.tasks import REFER_TEMPLATES


def test_small_regions_become_refer_samples(tmp_path):
    folder = tmp_path / "vg"
    write_json(
        folder / "image_data.json",
        [
            {
                "image_id": 1,
                "width": 100,
                "height": 50,
                "coco_id": None,
                "flickr_id": None,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
            }
        ],
    )
    write_json(
        folder / "region_descriptions.json",
        [
            {
                "id": 1,
                "regions": [
                    {
                        "region_id": 10,
                        "image_id": 1,
                        "x": 5,
                        "y": 5,
                        "width": 10,
                        "height": 20,
                        "phrase": "A Red car.",
                    },
                    {
                        "region_id": 11,
                        "image_id": 1,
                        "x": 0,
                        "y": 0,
                        "width": 128,
                        "height": 128,
                        "phrase": "too big",
                    },
                ],
            }
        ],
    )
    write_image(tmp_path / "images/VG_100K_2/1.jpg", (100, 50))
    reader = VisualGenomeRegions(folder, tmp_path / "images")
    assert len(reader) == 1  # 128 x 128 = 16384 px² is not below the threshold
    sample = reader[0]
    assert sample.source == "refvg" and sample.task == "refer"
    assert sample.turns[0].assistant == "{<5><10><15><50>}"
    assert sample.turns[0].user in {t.format("a red car") for t in REFER_TEMPLATES}
