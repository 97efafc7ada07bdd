import pytest
from PIL import Image

from minigptv2.assistant import SHIPPED_MODEL, Assistant, GenerationConfig
from minigptv2.errors import PromptError, UnknownTaskError
from minigptv2.processor import Processor
from minigptv2.prompts import Turn, render

PROMPTS = ["[vqa] what colour is it?", "[refer] the red square", "[caption] Briefly describe it."]


@pytest.fixture
def assistant(tiny_model, tokenizer, tiny_config):
    return Assistant(tiny_model, Processor(tokenizer, tiny_config))


@pytest.fixture
def picture():
    return Image.new("RGB", (120, 90), (200, 30, 30))


def count_image_encodings(assistant, monkeypatch):
    calls = []
    real = assistant.model.encode_images

    def counted(pixels):
        calls.append(pixels.shape[0])
        return real(pixels)

    monkeypatch.setattr(assistant.model, "encode_images", counted)
    return calls


def test_three_turns_equal_chat_with_history_and_encode_the_image_once(
    assistant, picture, monkeypatch
):
    config = GenerationConfig(max_new_tokens=10)
    encodings = count_image_encodings(assistant, monkeypatch)
    session = assistant.session(picture)
    answers = [session.ask(prompt, config) for prompt in PROMPTS]
    assert encodings == [1]
    for turn, prompt in enumerate(PROMPTS):
        expected = assistant.chat(picture, prompt, session.history[:turn], config)
        assert answers[turn] == expected
    assert [turn.assistant for turn in session.history] == [answer.text for answer in answers]


def test_later_turns_reuse_the_cached_prompt(assistant, picture):
    config = GenerationConfig(max_new_tokens=6)
    session = assistant.session(picture)
    session.ask(PROMPTS[0], config)
    first_prompt = assistant.processor.encode(render([Turn(PROMPTS[0])]))
    session.ask(PROMPTS[1], config)
    # At least the whole first prompt (image included) came from the cache.
    assert session.reused_tokens >= len(first_prompt)


def test_streamed_turns_match_asked_turns_and_abandoning_one_keeps_the_session_usable(
    assistant, picture
):
    config = GenerationConfig(max_new_tokens=12)
    asked = assistant.session(picture)
    streamed = assistant.session(picture)
    for prompt in PROMPTS[:2]:
        assert "".join(streamed.stream(prompt, config)) == asked.ask(prompt, config).text
    assert streamed.history == asked.history
    abandoned = streamed.stream(PROMPTS[2], config)
    next(abandoned, None)
    abandoned.close()
    assert len(streamed.history) == 2  # an unfinished turn is not part of the conversation
    assert streamed.ask(PROMPTS[2], config) == asked.ask(PROMPTS[2], config)


def test_text_only_session_and_bad_turns(assistant):
    session = assistant.session(None)
    config = GenerationConfig(max_new_tokens=4)
    assert session.ask("hello", config) == assistant.chat(None, "hello", config=config)
    with pytest.raises(UnknownTaskError):
        session.ask("[segment] the cat")
    with pytest.raises(PromptError, match="tokens"):
        session.ask("the dog " * 400)
    assert len(session.history) == 1  # failed turns leave the conversation as it was
    session.reset()
    assert (
        session.history == [] and session.ask("hello", config).text == session.history[0].assistant
    )


@pytest.mark.skipif(
    not (SHIPPED_MODEL / "config.json").is_file(), reason="shipped model not built yet"
)
def test_shipped_model_session_reads_only_the_new_turn():
    from minigptv2.data.shapes import make_sample

    shipped = Assistant.load()
    scene = make_sample(3, "test", task="refer").image
    session = shipped.session(scene)
    config = GenerationConfig(max_new_tokens=40)
    for turn, prompt in enumerate(SHIPPED_PROMPTS):
        cached_before = len(session._cached_ids)
        answer = session.ask(prompt, config)
        assert answer == shipped.chat(scene, prompt, session.history[:turn], config)
        if turn > 0:
            # The trained model's answers re-tokenise to the ids it generated, so everything
            # already read is reused: only </s> and the new [INST] … [/INST] run.
            assert session.reused_tokens == cached_before > 0
    assert session.history[0].assistant.startswith("<p>")  # a real grounded answer was read


SHIPPED_PROMPTS = [
    "[grounding] describe this image in detail",
    "[refer] the red circle",
    "[vqa] how many shapes are there?",
]
