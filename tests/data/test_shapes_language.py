"""The Shapes world's text-only rows: every colour-shape phrase, no image."""

import pytest

from minigptv2.data.shapes import HELD_OUT, LANGUAGE, PALETTE, SHAPES, make_pack, make_sample
from minigptv2.errors import ConfigError


def test_text_only_rows_name_every_pair_and_carry_no_image():
    samples = [make_sample(index, "train", task=LANGUAGE) for index in range(400)]
    assert all(sample.image is None and len(sample.turns) == 1 for sample in samples)
    text = " ".join(f"{s.turns[0].user} {s.turns[0].assistant}" for s in samples)
    for color in PALETTE:
        for shape in SHAPES:
            assert f"{color} {shape}" in text
    # The held-out pairs are words here, never pictures.
    assert all(f"{c} {s}" in text for c, s in HELD_OUT)


def test_questions_about_a_phrase_answer_from_the_phrase():
    for index in range(100):
        turn = make_sample(index, "train", task=LANGUAGE).turns[0]
        if turn.user.startswith("what colour is a "):
            assert turn.user.split()[4] == turn.assistant
        elif turn.user.startswith("what shape is a "):
            assert turn.user.split()[5].rstrip("?") == turn.assistant


def test_packs_refuse_rows_of_their_own():
    with pytest.raises(ConfigError, match="leave conversation and language out"):
        make_pack(0, "train", {"refer": 1.0, LANGUAGE: 1.0}, 4)
