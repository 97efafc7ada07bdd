"""transformers' doors onto the shipped model: Auto classes, generate, chat template, pipeline.

Every answer is compared with ``Assistant.chat`` on the same inputs, never with fixed text, so the
tests hold when the shipped model is retrained.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigptv2.assistant import SHIPPED_MODEL, Assistant, GenerationConfig
from minigptv2.data.shapes import make_sample
from minigptv2.errors import ImageError, PromptError
from minigptv2.prompts import Turn

pytestmark = pytest.mark.skipif(
    not (SHIPPED_MODEL / "config.json").is_file(), reason="shipped model not built yet"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    pipeline,
)

from minigptv2.integrations.hf_config import MiniGPTv2HFConfig  # noqa: E402
from minigptv2.integrations.hf_model import (  # noqa: E402
    MAX_NEW_TOKENS,
    MiniGPTv2ForConditionalGeneration,
)
from minigptv2.integrations.hf_processor import MiniGPTv2Processor  # noqa: E402


@pytest.fixture(scope="module")
def assistant():
    return Assistant.load()


@pytest.fixture(scope="module")
def model():
    return AutoModelForImageTextToText.from_pretrained(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two held-out scenes saved as PNG, each with a question of a different task."""
    folder = tmp_path_factory.mktemp("scenes")
    result = []
    for index, task in enumerate(("vqa", "grounding")):
        sample = make_sample(index, "test", task=task)
        path = folder / f"scene{index}.png"
        sample.image.save(path)
        result.append((path, sample.turns[0].user))
    return result


# -- registration follows the pinned transformers --------------------------------------------------


def test_the_pinned_transformers_maps_minigptv2_to_our_classes():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    pinned = next(
        line.split("==")[1].strip('",')
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.strip().startswith('"transformers==')
    )
    assert transformers.__version__ == pinned, "the integration is tested with the pinned version"
    assert CONFIG_MAPPING["minigptv2"] is MiniGPTv2HFConfig
    assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[MiniGPTv2HFConfig] is (
        MiniGPTv2ForConditionalGeneration
    )
    assert PROCESSOR_MAPPING[MiniGPTv2HFConfig] is MiniGPTv2Processor


def test_importing_minigptv2_imports_nothing_heavy_and_registers_when_transformers_loads():
    code = (
        "import sys, minigptv2\n"
        "heavy = [m for m in ('torch', 'transformers', 'minigptv2.model') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from transformers import AutoConfig\n"
        f"config = AutoConfig.from_pretrained({str(SHIPPED_MODEL)!r})\n"
        "assert type(config).__name__ == 'MiniGPTv2HFConfig', type(config)\n"
        "assert 'minigptv2.model.minigptv2' not in sys.modules  # the config alone stays light\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "could not register" not in done.stderr


def test_the_config_is_our_config(assistant):
    config = AutoConfig.from_pretrained(SHIPPED_MODEL)
    assert isinstance(config, MiniGPTv2HFConfig)
    assert config.to_minigptv2() == assistant.model.config


def test_generation_defaults_are_the_assistants(model, assistant):
    assert GenerationConfig().max_new_tokens == MAX_NEW_TOKENS
    assert model.generation_config.max_new_tokens == MAX_NEW_TOKENS
    assert not model.generation_config.do_sample
    assert model.generation_config.eos_token_id == assistant.processor.tokenizer.eos_id


# -- loading, generating, decoding ---------------------------------------------------------------


def test_the_auto_model_holds_the_same_weights_as_the_assistant(model, assistant):
    ours = assistant.model.state_dict()
    theirs = model.model.state_dict()
    assert ours.keys() == theirs.keys()
    for key, tensor in ours.items():
        assert torch.equal(tensor, theirs[key]), key


def test_generate_and_batch_decode_give_the_assistants_answers(model, processor, assistant, scenes):
    images = [path for path, _ in scenes]
    questions = [question for _, question in scenes]
    inputs = processor(images=images, text=questions)
    answers = processor.batch_decode(model.generate(**inputs))
    expected = [answer.text for answer in assistant.generate(images, questions)]
    assert answers == expected
    single = processor(images=images[0], text=questions[0])
    assert processor.batch_decode(model.generate(**single)) == expected[:1]


def test_text_only_prompts_answer_as_the_assistant(model, processor, assistant):
    inputs = processor(text="[vqa] what colour is a circle?")
    assert "pixel_values" not in inputs
    (answer,) = processor.batch_decode(model.generate(**inputs, max_new_tokens=8))
    assert (
        answer
        == assistant.chat(None, "[vqa] what colour is a circle?", config=GenerationConfig(8)).text
    )


def test_unsupported_generation_settings_are_refused(model, processor, scenes):
    inputs = processor(images=scenes[0][0], text=scenes[0][1])
    with pytest.raises(ValueError, match="num_beams"):
        model.generate(**inputs, num_beams=2)


def test_forward_gives_the_models_logits(model, processor, assistant, scenes):
    inputs = processor(images=scenes[0][0], text=scenes[0][1])
    expected = assistant.model(**inputs).logits
    torch.testing.assert_close(model(**inputs).logits, expected, atol=0, rtol=0)


# -- chat template ---------------------------------------------------------------------------------


def test_chat_messages_render_and_answer_as_the_assistants_turns(
    model, processor, assistant, scenes
):
    (path, question), (_, follow_up) = scenes
    first = assistant.chat(path, question)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "path": str(path)}, {"type": "text", "text": question}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": first.text}]},
        {"role": "user", "content": follow_up},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.endswith(" [/INST]") and text.count("<ImageHere>") == 1
    inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True)
    # The rendered text, tokenised again with the image, gives the same ids.
    again = processor(images=path, text=text)
    assert torch.equal(again["input_ids"], inputs["input_ids"])
    (answer,) = processor.batch_decode(model.generate(**inputs))
    assert answer == assistant.chat(path, follow_up, history=[Turn(question, first.text)]).text


def test_chat_template_refuses_what_the_template_cannot_say(processor, scenes):
    path, question = scenes[0]
    image = {"type": "image", "path": str(path)}
    with pytest.raises(PromptError, match="no system prompt"):
        processor.apply_chat_template([{"role": "system", "content": "be brief"}])
    with pytest.raises(PromptError, match="one image per conversation"):
        processor.apply_chat_template(
            [{"role": "user", "content": [image, image, {"type": "text", "text": question}]}]
        )
    with pytest.raises(ImageError, match="not fetched"):
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image", "url": "https://x.org/a.png"}]}]
        )


# -- grounding -------------------------------------------------------------------------------------


def test_post_process_grounding_gives_the_assistants_pixel_boxes(
    model, processor, assistant, scenes
):
    path, question = scenes[1]  # a [grounding] question
    from PIL import Image

    size = Image.open(path).size
    ids = model.generate(**processor(images=path, text=question))
    (result,) = processor.post_process_grounding(ids, [size])
    answer = assistant.chat(path, question)
    assert result == {"text": answer.grounding.text, "grounding": answer.grounding.to_json()}
    assert processor.post_process_grounding([answer.text], [size]) == [result]


# -- pipeline --------------------------------------------------------------------------------------


def test_the_pipeline_answers_as_the_assistant(assistant, scenes):
    pipe = pipeline("image-text-to-text", model=str(SHIPPED_MODEL))
    path, question = scenes[0]
    expected = assistant.chat(path, question).text
    (new,) = pipe(images=str(path), text=question, return_full_text=False)
    assert new["generated_text"] == expected
    (full,) = pipe(images=str(path), text=question)
    assert full["generated_text"] == question + expected
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "path": str(path)}, {"type": "text", "text": question}],
        }
    ]
    (chat,) = pipe(text=messages)
    assert chat["generated_text"][-1] == {"role": "assistant", "content": expected}


# -- saving ----------------------------------------------------------------------------------------


def test_save_pretrained_writes_a_folder_both_apis_load(
    model, processor, assistant, scenes, tmp_path
):
    folder = tmp_path / "saved"
    processor.save_pretrained(folder)  # either order works: the model's save keeps the tokenizer
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model_type"] == "minigptv2"
    assert (folder / "tokenizer.model").read_bytes() == (
        SHIPPED_MODEL / "tokenizer.model"
    ).read_bytes()
    path, question = scenes[0]
    expected = assistant.chat(path, question).text
    assert Assistant.load(folder).chat(path, question).text == expected
    reloaded = AutoModelForImageTextToText.from_pretrained(folder)
    again = AutoProcessor.from_pretrained(folder)
    assert again.batch_decode(reloaded.generate(**again(images=path, text=question))) == [expected]
