import pytest
from data_fixtures import write_image, write_json

from minigptv2.data.llava import LLaVA
from minigptv2.prompts import render, to_text


def conversation(*texts):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(texts)]


@pytest.fixture
def images(tmp_path):
    write_image(tmp_path / "train2014/COCO_train2014_000000033471.jpg", (40, 30))
    return tmp_path / "train2014"


def test_detail_and_reason_are_one_processed_question_and_a_raw_answer(tmp_path, images):
    for kind, name in (("detail", "detail_23k.json"), ("reason", "complex_reasoning_77k.json")):
        annotation = write_json(
            tmp_path / name,
            [
                {
                    "id": "000000033471",
                    "image": "000000033471.jpg",
                    "conversations": conversation(
                        "<image>\nWhat is unusual (here)?", "The Cat; is ON a roof."
                    ),
                }
            ],
        )
        sample = LLaVA(annotation, images, kind)[0]
        assert sample.source == f"llava_{kind}" and sample.task is None
        # The reference's processor turns ")" into a space, so "(here)?" becomes "here ?".
        assert sample.turns[0].user == "what is unusual here ?"
        assert sample.turns[0].assistant == "The Cat; is ON a roof."


def test_conversations_keep_every_turn_and_put_the_image_first(tmp_path, images):
    annotation = write_json(
        tmp_path / "conversation_58k.json",
        [
            {
                "id": "000000033471",
                "image": "000000033471.jpg",
                "conversations": conversation(
                    "What color is the bus?\n<image>",
                    "Red.",
                    "Where is it?",
                    "On a street.",
                    "Why?",
                ),
            }
        ],
    )
    sample = LLaVA(annotation, images, "conversation")[0]
    assert [(t.user, t.assistant) for t in sample.turns] == [
        ("What color is the bus?", "Red."),
        ("Where is it?", "On a street."),
    ]
    text = to_text(render(sample.turns))
    assert text.startswith("[INST] <Img><ImageHere></Img> What color is the bus?  [/INST]Red.</s>")
    assert text.count("<ImageHere>") == 1
