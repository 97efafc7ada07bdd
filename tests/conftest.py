"""Shared fixtures: a SentencePiece tokenizer trained on the spot and the tiny model preset."""

from __future__ import annotations

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
