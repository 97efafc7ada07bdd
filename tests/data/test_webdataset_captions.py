import json

from data_fixtures import image_bytes, write_tar

from minigptv2.data.webdataset_captions import WebDatasetCaptions
from minigptv2.tasks import CAPTION_TEMPLATES


def test_img2dataset_shards_become_caption_samples(tmp_path):
    shard = write_tar(
        tmp_path / "cc3m-00000.tar",
        {
            "000000000.jpg": image_bytes((32, 24)),
            "000000000.txt": b"A Dog; running (fast).",
            "000000000.json": json.dumps(
                {"caption": "A Dog; running (fast).", "url": "x"}
            ).encode(),
            "000000001.jpg": image_bytes((8, 8)),
            "000000001.txt": b"   ",
            "000000001.json": json.dumps({"caption": " "}).encode(),
        },
    )
    for field in ("txt", "json"):
        reader = WebDatasetCaptions([shard], "cc3m", field)
        assert len(reader) == 2
        sample = reader[0]
        assert sample.source == "cc3m" and sample.task == "caption"
        assert sample.turns[0].user in CAPTION_TEMPLATES
        assert sample.turns[0].assistant == "a dog running fast"
        assert sample.image.size == (32, 24) and sample.targets["key"] == "cc3m-00000.tar#0"
