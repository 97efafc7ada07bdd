"""Shared fixtures: a SentencePiece tokenizer trained on the spot and the tiny model preset;
an English + Korean tokenizer and a stand-in for the shipped ``shapes-ko`` model."""

from __future__ import annotations

from dataclasses import replace as dataclasses_replace

import pytest
import torch

from minigptv2.config import get_preset
from minigptv2.tasks import INSTRUCTION_POOLS
from minigptv2.tokenizer import Tokenizer, train_tokenizer

CORPUS = [
    "[INST] <Img><ImageHere></Img> [/INST] <s> </s> <p> </p> <delim> {<0><12><45><100>}",
    "where is the man in the red shirt ? the dog is on the left of the table",
    "a young man sitting at his desk with a cup of coffee and two sofas",
    "red green blue yellow circle square triangle how many shapes are there",
    "what colour is the object the answer is yes no true false unanswerable 0123456789",
]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    lines = CORPUS + [template for pool in INSTRUCTION_POOLS.values() for template in pool]
    return train_tokenizer(lines * 4, tmp_path_factory.mktemp("tokenizer"), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_config():
    return get_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config):
    from minigptv2.model import MiniGPTv2

    torch.manual_seed(0)
    return MiniGPTv2(tiny_config)


@pytest.fixture(scope="session")
def korean_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """A from-scratch tokenizer as ``scripts/train_shapes.sh shapes-ko`` trains one: on English +
    Korean Shapes text, with a piece for every Hangul syllable the world writes."""
    from minigptv2.train.config import DataConfig
    from minigptv2.train.data import corpus, vocabulary_mixture
    from minigptv2.train.loop import TEMPLATE_SYMBOLS

    lines = corpus(vocabulary_mixture(DataConfig(language="en+ko"), seed=0), 1500)
    folder = tmp_path_factory.mktemp("korean_tokenizer")
    return train_tokenizer(lines, folder, vocab_size=600, symbols=TEMPLATE_SYMBOLS)


@pytest.fixture(scope="session")
def korean_model_folder(tmp_path_factory, korean_tokenizer, tiny_config):
    """A tiny random model saved with the English + Korean tokenizer: a stand-in for
    ``minigptv2/assets/shapes-ko`` (same format; random answers, real plumbing)."""
    from minigptv2.checkpoints import save_pretrained
    from minigptv2.model import MiniGPTv2

    language = dataclasses_replace(tiny_config.language, vocab_size=korean_tokenizer.vocab_size)
    torch.manual_seed(0)
    model = MiniGPTv2(tiny_config.replace(language=language, prompt_style="train"))
    folder = tmp_path_factory.mktemp("assets") / "shapes-ko"
    return save_pretrained(model, korean_tokenizer, folder, full=True)


@pytest.fixture
def shapes_ko(korean_model_folder, monkeypatch):
    """The stand-in registered as the shipped model ``shapes-ko``; returns its folder."""
    from minigptv2.config import SHIPPED_MODELS

    entry = dataclasses_replace(SHIPPED_MODELS["shapes-ko"], folder=korean_model_folder)
    monkeypatch.setitem(SHIPPED_MODELS, "shapes-ko", entry)
    return korean_model_folder
