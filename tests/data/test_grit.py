import json

import pytest
from data_fixtures import image_bytes, write_tar

from minigptv2.data.grit import GRIT
from minigptv2.errors import DataError
from minigptv2.tasks import IDENTIFY_TEMPLATES, REFER_TEMPLATES

CAPTION = "a dog chasing a red ball in the park"
META = {
    "caption": CAPTION,
    "width": 640,
    "height": 480,
    # [start, end, x1, y1, x2, y2, score]; boxes are fractions of the original image size.
    "noun_chunks": [[0, 5, 0.1, 0.2, 0.5, 0.9, 0.8], [14, 24, 0.55, 0.6, 0.7, 0.75, 0.7]],
    "ref_exps": [[0, 5, 0.1, 0.2, 0.5, 0.9, 0.8]],
    "url": "http://example.com/1.jpg",
}


@pytest.fixture
def shard(tmp_path):
    # img2dataset resized the image (to 48x36 here): boxes stay relative to the original.
    return write_tar(
        tmp_path / "grit-00000.tar",
        {
            "00000/000000001.jpg": image_bytes((48, 36)),
            "00000/000000001.json": json.dumps(META).encode(),
            "00000/000000001.txt": CAPTION.encode(),
            "00000/000000002.jpg": image_bytes((48, 36)),
            "00000/000000002.json": json.dumps(
                {**META, "noun_chunks": [], "ref_exps": []}
            ).encode(),
        },
    )


def test_grounded_caption_tags_and_boxes_every_noun_chunk(shard):
    sample = GRIT([shard], "grounding")[0]
    assert sample.task == "grounding" and sample.source == "grit_grounding"
    assert sample.turns[0].assistant == (
        "<p>a dog</p> {<10><20><50><90>} chasing <p>a red ball</p> {<55><60><70><75>} in the park"
    )


def test_refer_and_identify_use_the_referring_expressions(shard):
    refer = GRIT([shard], "refer")[0]
    assert refer.turns[0].assistant == "{<10><20><50><90>}"
    assert refer.turns[0].user in {t.format("a dog") for t in REFER_TEMPLATES}
    identify = GRIT([shard], "identify")[0]
    assert identify.turns[0].user in {t.format("{<10><20><50><90>}") for t in IDENTIFY_TEMPLATES}
    assert identify.turns[0].assistant == "a dog"


def test_a_sample_without_annotations_is_a_data_error(shard):
    with pytest.raises(DataError, match="no noun chunks"):
        GRIT([shard], "grounding")[1]
