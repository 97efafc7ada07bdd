import pytest
import torch
from eval_helpers import write_image

from minigptv2.assistant import Assistant
from minigptv2.eval import hateful_memes, iconvqa
from minigptv2.eval.benchmark import Item
from minigptv2.eval.likelihood import candidate_losses
from minigptv2.processor import Processor
from minigptv2.prompts import Turn


@pytest.fixture
def assistant(tiny_model, tokenizer, tiny_config):
    return Assistant(tiny_model, Processor(tokenizer, tiny_config))


@pytest.fixture
def images(tmp_path):
    return [write_image(tmp_path / f"{i}.png", 12 + i, 10) for i in range(2)]


def test_a_candidates_loss_is_its_mean_token_loss_whatever_the_batch(assistant, images):
    prompts = ["[vqa] what colour is the object", "[vqa] how many shapes are there"]
    together = candidate_losses(assistant, images, prompts, [["red", "a blue circle"], ["2"]])
    alone = candidate_losses(assistant, images[:1], prompts[:1], [["a blue circle"]])
    assert together[0][1] == pytest.approx(alone[0][0], rel=1e-4)
    # The same number the language model's own loss gives for that one conversation.
    batch = assistant.processor.training_batch(
        [[Turn(prompts[0], "a blue circle")]], images[:1], style=assistant.style
    )
    with torch.no_grad():
        expected = assistant.model(**batch).loss.item()
    assert alone[0][0] == pytest.approx(expected, rel=1e-4)
    assert [len(row) for row in together] == [2, 1]


def test_iconvqa_picks_the_lowest_loss_choice(assistant, images):
    item = Item(
        "1",
        "choice",
        images[0],
        "[vqa] which colour",
        {"choices": ["red", "blue", "green"], "answer": 0},
    )
    ((text, extras),) = iconvqa.answer(assistant, [item])
    losses = extras["losses"]
    assert int(text) == losses.index(min(losses)) and len(losses) == 3


def test_hateful_memes_answers_with_text_and_a_yes_over_no_score(assistant, images):
    item = Item("7", "vqa", images[1], hateful_memes.PROMPT.format("a meme"), {"label": True})
    ((text, extras),) = hateful_memes.answer(assistant, [item])
    ((yes, no),) = candidate_losses(assistant, [item.image], [item.prompt], [["yes", "no"]])
    assert extras["hateful_score"] == pytest.approx(no - yes, rel=1e-4)
    assert isinstance(text, str)
