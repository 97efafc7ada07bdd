import pytest
import torch
from PIL import Image

from minigptv2.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from minigptv2.errors import PromptError
from minigptv2.processor import Processor
from minigptv2.prompts import (
    EVAL_STYLE,
    TRAIN_STYLE,
    Turn,
    render,
    render_prompt,
    split_rendered,
    to_text,
)


@pytest.fixture
def processor(tokenizer, tiny_config):
    return Processor(tokenizer, tiny_config)


def image(color=(255, 0, 0), size=(40, 30)):
    return Image.new("RGB", size, color)


def test_image_slot_expands_to_exactly_num_image_tokens(processor, tiny_config):
    encoded = processor.encode(render_prompt("[vqa] what?"))
    assert encoded.input_ids.count(IMAGE_TOKEN_ID) == tiny_config.num_image_tokens == 16
    start = encoded.input_ids.index(IMAGE_TOKEN_ID)
    run = encoded.input_ids[start : start + tiny_config.num_image_tokens]
    assert set(run) == {IMAGE_TOKEN_ID}


def test_segments_around_the_image_are_tokenised_separately(processor, tokenizer):
    encoded = processor.encode(render_prompt("[refer] the man", style=EVAL_STYLE))
    ids = encoded.input_ids
    end = len(ids) - ids[::-1].index(IMAGE_TOKEN_ID)
    assert ids[: end - 16] == [1, *tokenizer.encode("<s>[INST] <Img>")]
    assert ids[end:] == tokenizer.encode("</Img> [refer] the man [/INST]")


def test_eval_style_has_double_bos_and_train_style_one(processor):
    eval_ids = processor.encode(render_prompt("[vqa] q", style=EVAL_STYLE)).input_ids
    train_ids = processor.encode(render([Turn("[vqa] q", "a")], style=TRAIN_STYLE)).input_ids
    assert eval_ids[:2] == [1, 1]
    assert train_ids[0] == 1 and train_ids[1] != 1


def test_labels_cover_only_answers_and_their_eos(processor, tokenizer):
    turns = [Turn("[vqa] how many?", "two"), Turn("[vqa] colour?", "red")]
    encoded = processor.encode(render(turns, style=TRAIN_STYLE))
    supervised = [label for label in encoded.labels if label != IGNORE_INDEX]
    assert supervised == tokenizer.encode("two</s>") + tokenizer.encode("red</s>")
    assert encoded.labels[: encoded.prompt_length] == [IGNORE_INDEX] * encoded.prompt_length


def test_training_batch_is_right_padded(processor):
    batch = processor.training_batch(
        [[Turn("[vqa] q", "a")], [Turn("[vqa] a much longer question here", "b")]],
        [image(), image((0, 255, 0))],
    )
    mask = batch["attention_mask"]
    assert mask[0, 0] == 1 and mask[0, -1] == 0 and mask[1].all()
    assert batch["pixel_values"].shape == (2, 3, 112, 112)
    assert (batch["input_ids"] == IMAGE_TOKEN_ID).sum() == 32


def test_generation_batch_is_left_padded_and_text_only_mixes(processor):
    batch = processor.generation_batch(["[vqa] a long question about it", "hello"], [image(), None])
    mask = batch["attention_mask"]
    assert mask[0].all() and mask[1, 0] == 0 and mask[1, -1] == 1
    assert batch["pixel_values"].shape[0] == 1
    assert (batch["input_ids"][1] == IMAGE_TOKEN_ID).sum() == 0
    assert "labels" not in batch


def test_pixels_are_clip_normalised(processor):
    pixels = processor.pixels([image((255, 255, 255))])
    expected = (1 - 0.48145466) / 0.26862954
    torch.testing.assert_close(pixels[0, 0], torch.full((112, 112), expected))


def test_prompt_over_the_context_is_a_clear_error(processor, tiny_config):
    long_question = "[vqa] " + "where is the dog " * 200
    with pytest.raises(PromptError, match=f"{tiny_config.max_context_len}-token context"):
        processor.encode(render_prompt(long_question))


def test_answer_over_max_txt_len_is_a_clear_error(processor):
    with pytest.raises(PromptError, match="max_txt_len"):
        processor.encode(render([Turn("[vqa] q", "dog " * 200)]))


def test_mismatched_batch_sizes_are_a_clear_error(processor):
    with pytest.raises(PromptError, match="2 prompts but 1 images"):
        processor.generation_batch(["a", "b"], [image()])
    with pytest.raises(PromptError, match="not a single string"):
        processor.generation_batch("abc", [None, None, None])


def test_tokenizer_larger_than_the_model_is_refused(tokenizer, tiny_config):
    small = tiny_config.replace(
        language=tiny_config.language.__class__(
            vocab_size=100, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128
        )
    )
    with pytest.raises(PromptError, match="embeddings"):
        Processor(tokenizer, small)


def test_decode_cuts_at_eos(processor, tokenizer):
    ids = [*tokenizer.encode("red square"), tokenizer.eos_id, *tokenizer.encode("junk")]
    assert processor.decode(torch.tensor(ids)) == "red square"


def test_a_rendered_prompt_batches_as_the_turns_it_came_from(processor):
    turns = [Turn("[vqa] what colour?", "red"), Turn("[refer] the square")]
    pictures = [image(), None]
    prompts = [turns, "[caption] hello"]
    expected = processor.generation_batch(prompts, pictures, style=TRAIN_STYLE)
    rendered = [
        split_rendered(to_text(render(turns, image=True, style=TRAIN_STYLE))),
        render([Turn("[caption] hello")], image=False, style=TRAIN_STYLE),
    ]
    got = processor.rendered_batch(rendered, pictures)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_a_rendered_prompt_must_have_a_slot_exactly_when_it_has_an_image(processor):
    with_slot = render_prompt("[vqa] q", image=True)
    with pytest.raises(PromptError, match="1 <ImageHere> slot"):
        processor.rendered_batch([with_slot], [None])
    with pytest.raises(PromptError, match="0 <ImageHere> slot"):
        processor.rendered_batch([render_prompt("[vqa] q", image=False)], [image()])
