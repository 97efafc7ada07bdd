from data_fixtures import write_image, write_json

from minigptv2.data.multitask_conversation import MultitaskConversation


def test_turns_keep_their_task_tokens(tmp_path):
    annotation = write_json(
        tmp_path / "multitask_conversation.json",
        [{"id": "000000000009", "conversations": [
            {"from": "human", "value": "<image>\n[refer] where is the dog?"},
            {"from": "gpt", "value": "{<10><20><30><40>}"},
            {"from": "human", "value": "[vqa] what is it eating?"},
            {"from": "gpt", "value": "A bone."},
        ]}],
    )  # fmt: skip
    write_image(tmp_path / "img/COCO_train2014_000000000009.jpg", (10, 10))
    sample = MultitaskConversation(annotation, tmp_path / "img")[0]
    assert sample.source == "multitask_conversation" and sample.task is None
    assert [t.user for t in sample.turns] == [
        "[refer] where is the dog?",
        "[vqa] what is it eating?",
    ]
    assert [t.assistant for t in sample.turns] == ["{<10><20><30><40>}", "A bone."]
