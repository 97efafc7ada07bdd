import json

import pytest
from PIL import Image

from minigptv2.assistant import Answer, Assistant, GenerationConfig
from minigptv2.boxes import box_to_text
from minigptv2.errors import ImageError, PromptError, UnknownTaskError
from minigptv2.processor import Processor
from minigptv2.prompts import Turn


@pytest.fixture
def assistant(tiny_model, tokenizer, tiny_config):
    return Assistant(tiny_model, Processor(tokenizer, tiny_config))


def image(size=(200, 100)):
    return Image.new("RGB", size, (200, 30, 30))


def test_batched_answers_match_single_answers(assistant):
    prompts = ["[vqa] what colour?", "[caption] A short image caption:"]
    config = GenerationConfig(max_new_tokens=6)
    batched = assistant.generate([image(), image((50, 80))], prompts, config)
    assert [a.text for a in batched] == [
        assistant.chat(image(), prompts[0], config=config).text,
        assistant.chat(image((50, 80)), prompts[1], config=config).text,
    ]


def test_grounding_is_parsed_in_pixels_of_the_original_image(assistant, monkeypatch):
    # Make the "model" answer with a known box string to test the decode -> parse path.
    answer_ids = assistant.processor.tokenizer.encode(
        "<p>red square</p> " + box_to_text((20, 10, 100, 50), 200, 100) + "</s>"
    )
    monkeypatch.setattr(
        assistant.model, "generate", lambda **kwargs: __import__("torch").tensor([answer_ids])
    )
    answer = assistant.chat(image((200, 100)), "[grounding] describe this image in detail")
    assert answer.text == "<p>red square</p> {<10><10><50><50>}"
    assert answer.grounding.to_json() == [
        {"phrase": "red square", "box": [20.0, 10.0, 100.0, 50.0]}
    ]
    assert json.loads(json.dumps(answer.to_json()))["grounding"][0]["phrase"] == "red square"


def test_multi_turn_chat_and_text_only(assistant):
    config = GenerationConfig(max_new_tokens=4)
    history = [Turn("[vqa] how many shapes?", "two")]
    assert isinstance(assistant.chat(image(), "[refer] the left one", history, config), Answer)
    assert assistant.chat(None, "hello", config=config).grounding.phrases == ()


def test_bad_inputs_are_clear_errors(assistant, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ImageError):
        assistant.chat(tmp_path / "x.jpg", "[vqa] what?")
    with pytest.raises(UnknownTaskError):
        assistant.chat(image(), "[segment] the cat")
    with pytest.raises(PromptError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
