import pickle

import pytest
from data_fixtures import write_image, write_json

from minigptv2.data.refcoco import RefCOCO, load_refs
from minigptv2.errors import DataError
from minigptv2.tasks import IDENTIFY_TEMPLATES, REFER_TEMPLATES


def sentence(text, sent_id):
    return {"tokens": text.split(), "raw": text, "sent_id": sent_id, "sent": text}


@pytest.fixture
def refcocog(tmp_path):
    """RefCOCOg's layout: refs(umd).p (a protocol-2 pickle, like the Python 2 release) and
    instances.json, images named as in COCO train2014."""
    folder = tmp_path / "refcocog"
    refs = [
        {"ref_id": 0, "ann_id": 11, "image_id": 7, "split": "train", "category_id": 1,
         "file_name": "COCO_train2014_000000000007_11.jpg", "sent_ids": [0, 1],
         "sentences": [sentence("The man (left).", 0), sentence("Man in RED shirt!", 1)]},
        {"ref_id": 1, "ann_id": 12, "image_id": 8, "split": "val", "category_id": 1,
         "file_name": "COCO_train2014_000000000008_12.jpg", "sent_ids": [2],
         "sentences": [sentence("a dog", 2)]},
        {"ref_id": 2, "ann_id": 13, "image_id": 8, "split": "train", "category_id": 2,
         "file_name": "COCO_train2014_000000000008_13.jpg", "sent_ids": [3],
         "sentences": [sentence("the white cup", 3)]},
    ]  # fmt: skip
    folder.mkdir()
    (folder / "refs(umd).p").write_bytes(pickle.dumps(refs, protocol=2))
    write_json(
        folder / "instances.json",
        {
            "images": [
                {"id": 7, "width": 200, "height": 100},
                {"id": 8, "width": 640, "height": 480},
            ],
            "annotations": [
                {"id": 11, "image_id": 7, "bbox": [20, 10, 50, 40], "category_id": 1},
                {"id": 12, "image_id": 8, "bbox": [0, 0, 10, 10], "category_id": 1},
                {"id": 13, "image_id": 8, "bbox": [320.5, 240, 319.5, 240], "category_id": 2},
            ],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cup"}],
        },
    )
    images = tmp_path / "train2014"
    write_image(images / "COCO_train2014_000000000007.jpg", (200, 100))
    write_image(images / "COCO_train2014_000000000008.jpg", (640, 480))
    return folder, images


def test_refer_samples_give_the_box_on_the_grid_of_the_original_size(refcocog):
    reader = RefCOCO(*refcocog, dataset="refcocog", task="refer")
    assert len(reader) == 2  # the "val" ref is left out
    first = reader[0]
    assert first.task == "refer" and first.source == "refcocog"
    # [20, 10, 50, 40] on 200x100: x 20/200 -> 10, y 10/100 -> 10, x+w 70/200 -> 35, y+h 50 -> 50
    assert first.turns[0].assistant == "{<10><10><35><50>}"
    user = first.turns[0].user
    assert any(
        user == t.format("the man left") or user == t.format("man in red shirt")
        for t in REFER_TEMPLATES
    )
    assert first.targets["boxes"] == [(20, 10, 70, 50)]
    # A box that touches the right and bottom border reaches 100.
    assert reader[1].turns[0].assistant == "{<50><50><100><100>}"


def test_identify_samples_put_the_box_in_the_question(refcocog):
    reader = RefCOCO(*refcocog, dataset="refcocog", task="identify")
    sample = reader[0]
    assert sample.source == "invrefcocog" and sample.task == "identify"
    assert sample.turns[0].user in {t.format("{<10><10><35><50>}") for t in IDENTIFY_TEMPLATES}
    assert sample.turns[0].assistant in {"the man left", "man in red shirt"}


def test_each_access_draws_a_sentence_from_its_rng(refcocog):
    import random

    reader = RefCOCO(*refcocog, dataset="refcocog", task="identify")
    answers = {reader.build(0, random.Random(seed)).turns[0].assistant for seed in range(30)}
    assert answers == {"the man left", "man in red shirt"}
    assert reader[0] == reader[0]  # item i is deterministic


def test_the_refs_pickle_is_read_without_running_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0, "x": Evil()}], protocol=2))
    with pytest.raises(DataError, match=r"builtin_*\.print"):
        load_refs(path)
    with pytest.raises(DataError, match="not found"):
        load_refs(tmp_path / "refs(umd).p")
