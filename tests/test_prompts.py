import pytest

from minigptv2.errors import PromptError, UnknownTaskError
from minigptv2.prompts import (
    EVAL_STYLE,
    TRAIN_STYLE,
    Piece,
    Turn,
    render,
    render_prompt,
    split_rendered,
    to_text,
)

# Golden generation prompts (the reference evaluation/demo rendering, spec §2.2), one per task.
IMG = "<s>[INST] <Img><ImageHere></Img> "
EVAL_GOLDEN = {
    "[vqa] what color is the bus?": IMG + "[vqa] what color is the bus? [/INST]",
    "[caption] Briefly describe this image.": IMG
    + "[caption] Briefly describe this image. [/INST]",
    "[grounding] describe this image in detail": IMG
    + "[grounding] describe this image in detail [/INST]",
    "[refer] give me the location of the man": IMG
    + "[refer] give me the location of the man [/INST]",
    "[detection] sofas": IMG + "[detection] sofas [/INST]",
    "[identify] what is this {<4><50><30><65>}": IMG
    + "[identify] what is this {<4><50><30><65>} [/INST]",
}

# Golden training examples (dataset trailing space + template space = two spaces, spec §4.2).
TRAIN_GOLDEN = {
    (
        "[vqa] what is the man holding?",
        "umbrella",
    ): "[INST] <Img><ImageHere></Img> [vqa] what is the man holding?  [/INST]umbrella</s>",
    (
        "[caption] A short image caption:",
        "a man riding a horse",
    ): "[INST] <Img><ImageHere></Img> [caption] A short image caption:  [/INST]"
    "a man riding a horse</s>",
    (
        "[grounding] summarize this image in details",
        "<p>a dog</p> {<1><2><3><4>}",
    ): "[INST] <Img><ImageHere></Img> [grounding] summarize this image in details  [/INST]"
    "<p>a dog</p> {<1><2><3><4>}</s>",
    (
        "[refer] where is the man ?",
        "{<12><5><40><90>}",
    ): "[INST] <Img><ImageHere></Img> [refer] where is the man ?  [/INST]{<12><5><40><90>}</s>",
    (
        "[detection] two dogs",
        "<p>two dogs</p> {<1><2><3><4>}<delim>{<5><6><7><8>}",
    ): "[INST] <Img><ImageHere></Img> [detection] two dogs  [/INST]"
    "<p>two dogs</p> {<1><2><3><4>}<delim>{<5><6><7><8>}</s>",
    (
        "[identify] what is it in {<23><10><51><98>}",
        "man in red shirt",
    ): "[INST] <Img><ImageHere></Img> [identify] what is it in {<23><10><51><98>}  [/INST]"
    "man in red shirt</s>",
}


@pytest.mark.parametrize(("instruction", "expected"), EVAL_GOLDEN.items())
def test_eval_prompt_golden(instruction, expected):
    assert to_text(render_prompt(instruction)) == expected


@pytest.mark.parametrize(("pair", "expected"), TRAIN_GOLDEN.items())
def test_training_example_golden(pair, expected):
    instruction, answer = pair
    pieces = render([Turn(instruction, answer)], style=TRAIN_STYLE)
    assert to_text(pieces) == expected
    assert [piece.supervised for piece in pieces] == [False, True]
    assert pieces[1].text == answer + "</s>"


def test_caption_template_trailing_space_gives_three_spaces():
    pieces = render([Turn("[caption] A photo of ", "a cat")], style=TRAIN_STYLE)
    assert pieces[0].text.endswith("A photo of   [/INST]")


def test_two_turn_training_chat():
    turns = [Turn("[vqa] how many dogs?", "two"), Turn("[refer] the left dog", "{<1><2><30><40>}")]
    pieces = render(turns, style=TRAIN_STYLE)
    assert pieces == [
        Piece("[INST] <Img><ImageHere></Img> [vqa] how many dogs?  [/INST]"),
        Piece("two</s>", supervised=True),
        Piece("<s>[INST] [refer] the left dog  [/INST]"),
        Piece("{<1><2><30><40>}</s>", supervised=True),
    ]


def test_two_turn_generation_prompt_keeps_the_real_first_answer():
    turns = [Turn("[vqa] how many dogs?", "two"), Turn("[refer] the left dog")]
    assert to_text(render(turns, style=EVAL_STYLE)) == (
        "<s>[INST] <Img><ImageHere></Img> [vqa] how many dogs? [/INST]two</s>"
        "<s>[INST] [refer] the left dog [/INST]"
    )


def test_text_only_prompt_has_no_image_slot():
    assert to_text(render_prompt("say hello", image=False)) == "<s>[INST] say hello [/INST]"


def test_image_alone_first_turn():
    assert to_text(render_prompt("")) == "<s>[INST] <Img><ImageHere></Img> [/INST]"


def test_unknown_task_token_is_refused():
    with pytest.raises(UnknownTaskError, match=r"\[vqa\]"):
        render_prompt("[detect] the cat")


def test_reserved_markers_are_refused():
    with pytest.raises(PromptError, match="ImageHere"):
        render_prompt("look at <ImageHere> please")


def test_only_the_last_turn_may_be_open():
    with pytest.raises(PromptError, match="turn 1 of 2"):
        render([Turn("q1"), Turn("q2")])
    with pytest.raises(PromptError):
        render([])


@pytest.mark.parametrize("style", [TRAIN_STYLE, EVAL_STYLE])
@pytest.mark.parametrize("image", [True, False])
def test_rendered_text_splits_back_into_the_same_pieces(style, image):
    answered = [
        Turn("[grounding] describe", "a <p>cat</p> {<1><2><3><4>}"),
        Turn("[vqa] and?", "two"),
    ]
    for turns in (answered, [*answered, Turn("[refer] the dog")], [Turn("hi")]):
        pieces = render(turns, image=image, style=style)
        assert split_rendered(to_text(pieces)) == pieces
