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


STREAM_PROMPTS = ["[vqa] what colour?", "[grounding] describe this image in detail", "hello"]


@pytest.mark.parametrize("prompt", STREAM_PROMPTS)
def test_streamed_deltas_join_to_the_generated_text(assistant, prompt):
    config = GenerationConfig(max_new_tokens=24)
    deltas = list(assistant.stream(image(), prompt, config))
    assert "".join(deltas) == assistant.chat(image(), prompt, config=config).text
    assert all(deltas)  # no empty deltas are sent


def test_stream_yields_while_generating_and_can_be_abandoned(assistant, monkeypatch):
    import torch

    steps_run = []
    closed = []
    real_steps = assistant.model.generate_steps

    def tracked_steps(*args, **kwargs):
        try:
            for ids in real_steps(*args, **kwargs):
                steps_run.append(ids)
                yield ids
        finally:
            closed.append(True)

    monkeypatch.setattr(assistant.model, "generate_steps", tracked_steps)
    # Make every step produce text: the model always prefers one token.
    tokenizer = assistant.processor.tokenizer
    red = tokenizer.encode("red")[-1]
    head = assistant.model.language_model.get_output_embeddings()
    with torch.no_grad():
        head.bias = torch.nn.Parameter(torch.zeros(head.out_features))
        head.bias[red] = 1e4
    stream = assistant.stream(image(), "[vqa] what colour?", GenerationConfig(max_new_tokens=50))
    first = next(stream)
    # Text arrives after the first step, long before the answer ends.
    assert first == tokenizer.decode([red]) and len(steps_run) == 1
    # Between steps the consumer is in its own grad mode, not the generator's inference mode.
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    stream.close()
    assert closed == [True] and len(steps_run) <= 2


def test_stream_checks_input_before_generating(assistant):
    with pytest.raises(UnknownTaskError):
        assistant.stream(image(), "[segment] the cat")
    with pytest.raises(PromptError):
        assistant.stream(image(), [Turn("[vqa] a", "b")])  # nothing left to answer
