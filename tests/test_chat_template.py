"""A language model's own chat template and tokenizer behind MiniGPT-v2's interface."""

import pytest
from llm_helpers import tiny_tokenizer

from minigptv2.config import get_preset
from minigptv2.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from minigptv2.errors import PromptError
from minigptv2.processor import Processor
from minigptv2.prompts import TRAIN_STYLE, ChatTemplate, Turn, chat_format, render, to_text
from minigptv2.tokenizer import HFTokenizer, Tokenizer, load_tokenizer

CHAT = [Turn("[refer] the red circle", "{<1><2><3><4>}"), Turn("[vqa] colour?")]


@pytest.fixture(scope="module", params=["mistral", "qwen2", "phi3"])
def folder(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    tiny_tokenizer(request.param, path)
    return request.param, path


def test_a_transformers_folder_gets_the_transformers_wrapper(folder, tmp_path):
    family, path = folder
    tokenizer = load_tokenizer(path)
    assert isinstance(tokenizer, HFTokenizer) and tokenizer.chat_template
    # The end of an answer is the token the template writes after one.
    assert (
        tokenizer.stop_text == {"mistral": "</s>", "qwen2": "<|im_end|>", "phi3": "<|end|>"}[family]
    )
    assert (tokenizer.bos_id is None) == (family == "qwen2")
    # The interface's literal markers map to this tokenizer's own ids.
    ids = tokenizer.encode("yes</s>")
    assert ids[-1] == tokenizer.eos_id and tokenizer.decode(ids) == "yes"
    text = "[refer] where is {<10><20><30><40>} <p>red</p>"
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_native_rendering_keeps_the_interface_inside_the_user_turn(folder):
    family, path = folder
    tokenizer = load_tokenizer(path)
    pieces = render(CHAT, style=ChatTemplate(tokenizer))
    expected = {
        "mistral": "[INST] <Img><ImageHere></Img> [refer] the red circle [/INST]"
        "{<1><2><3><4>}</s>[INST] [vqa] colour? [/INST]",
        "qwen2": "<|im_start|>user\n<Img><ImageHere></Img> [refer] the red circle<|im_end|>\n"
        "<|im_start|>assistant\n{<1><2><3><4>}<|im_end|>\n<|im_start|>user\n[vqa] colour?"
        "<|im_end|>\n<|im_start|>assistant\n",
        "phi3": "<|user|>\n<Img><ImageHere></Img> [refer] the red circle<|end|>\n<|assistant|>\n"
        "{<1><2><3><4>}<|end|>\n<|user|>\n[vqa] colour?<|end|>\n<|assistant|>\n",
    }[family]
    assert to_text(pieces) == expected
    assert [piece.text for piece in pieces if piece.supervised] == [
        "{<1><2><3><4>}" + tokenizer.stop_text
    ]


def test_labels_are_the_answer_and_its_end_of_turn_token(folder):
    _, path = folder
    tokenizer = load_tokenizer(path)
    config = get_preset("tiny").replace(chat_format="native")  # 512 embeddings: room enough
    processor = Processor(tokenizer, config)
    style = chat_format(config, tokenizer, training=True)
    encoded = processor.encode(render([CHAT[0]], style=style))
    answer = [label for label in encoded.labels if label != IGNORE_INDEX]
    assert answer == [*tokenizer.encode("{<1><2><3><4>}"), tokenizer.eos_id]
    assert encoded.input_ids.count(IMAGE_TOKEN_ID) == config.num_image_tokens
    starts_with_bos = tokenizer.bos_id is not None
    assert (encoded.input_ids[0] == tokenizer.bos_id) == starts_with_bos
    assert encoded.input_ids.count(tokenizer.bos_id) == (1 if starts_with_bos else 0)


def test_chat_format_is_read_from_the_config(folder, tokenizer):
    _, path = folder
    shapes = get_preset("shapes")
    assert chat_format(shapes, tokenizer, training=False) is TRAIN_STYLE
    native = shapes.replace(chat_format="native")
    assert isinstance(chat_format(native, load_tokenizer(path), training=True), ChatTemplate)


def test_a_tokenizer_without_template_cannot_be_native(tokenizer):
    assert isinstance(tokenizer, Tokenizer)
    with pytest.raises(PromptError, match="has no chat template"):
        ChatTemplate(tokenizer)
