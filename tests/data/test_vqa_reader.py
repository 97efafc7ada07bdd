import random
from collections import Counter

from data_fixtures import write_image, write_json

from minigptv2.data.vqa import AOKVQA, LavisVQA
from minigptv2.tasks import VQA_TEMPLATES


def test_vqav2_lavis_entries_answer_by_annotator_frequency(tmp_path):
    answers = ["umbrella"] * 8 + ["Parasol."] * 2
    train = write_json(
        tmp_path / "vqa_train.json",
        [
            {
                "question_id": 1,
                "question": "What is the man holding?",
                "answer": answers,
                "image": "train2014/COCO_train2014_000000000009.jpg",
                "dataset": "vqa",
            }
        ],
    )
    val = write_json(
        tmp_path / "vqa_val.json",
        [
            {
                "question_id": 2,
                "question": "Is it raining?",
                "answer": ["yes"] * 10,
                "image": "val2014/COCO_val2014_000000000042.jpg",
                "dataset": "vqa",
            }
        ],
    )
    write_image(tmp_path / "coco/train2014/COCO_train2014_000000000009.jpg", (30, 20))
    write_image(tmp_path / "coco/val2014/COCO_val2014_000000000042.jpg", (30, 20))
    reader = LavisVQA([train, val], tmp_path / "coco")
    assert len(reader) == 2
    sample = reader[0]
    assert sample.task == "vqa" and sample.source == "coco_vqa"
    assert sample.turns[0].user in {t.format("what is the man holding?") for t in VQA_TEMPLATES}
    drawn = Counter(reader.build(0, random.Random(s)).turns[0].assistant for s in range(400))
    assert set(drawn) == {"umbrella", "parasol"}
    assert 0.7 < drawn["umbrella"] / 400 < 0.9  # 8 of 10 annotators
    assert reader[1].turns[0].assistant == "yes"


def test_okvqa_uses_the_same_format_under_its_own_name(tmp_path):
    annotation = write_json(
        tmp_path / "okvqa_train.json",
        [
            {
                "question_id": 5,
                "question": "What sport?",
                "answer": ["tennis"] * 10,
                "image": "train2014/COCO_train2014_000000000005.jpg",
            }
        ],
    )
    write_image(tmp_path / "train2014/COCO_train2014_000000000005.jpg", (8, 8))
    sample = LavisVQA([annotation], tmp_path, source="ok_vqa")[0]
    assert sample.source == "ok_vqa" and sample.turns[0].assistant == "tennis"


def test_aokvqa_reads_direct_answers_and_coco_2017_images(tmp_path):
    annotation = write_json(
        tmp_path / "aokvqa_v1p0_train.json",
        [
            {
                "split": "train",
                "image_id": 299207,
                "question_id": "22MexNkBPpdZGX6sxbxVBH",
                "question": "What is the man by the bags awaiting?",
                "choices": ["skateboarder", "train", "delivery", "cab"],
                "correct_choice_idx": 3,
                "direct_answers": ["cab"] * 10,
                "difficult_direct_answer": False,
                "rationales": ["A man with bags waits for a cab."],
            }
        ],
    )
    write_image(tmp_path / "train2017/000000299207.jpg", (16, 16))
    sample = AOKVQA(annotation, tmp_path / "train2017")[0]
    assert sample.source == "aok_vqa" and sample.turns[0].assistant == "cab"
    assert sample.turns[0].user.endswith("what is the man by the bags awaiting?")
