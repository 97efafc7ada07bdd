"""Shared fixtures: a SentencePiece tokenizer trained on the spot and the tiny model preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from minigptv2.config import get_preset
from minigptv2.tasks import INSTRUCTION_POOLS
from minigptv2.tokenizer import Tokenizer

CORPUS = [
    "[INST] <Img><ImageHere></Img> [/INST] <s> </s> <p> </p> <delim> {<0><12><45><100>}",
    "where is the man in the red shirt ? the dog is on the left of the table",
    "a young man sitting at his desk with a cup of coffee and two sofas",
    "red green blue yellow circle square triangle how many shapes are there",
    "what colour is the object the answer is yes no true false unanswerable 0123456789",
]


def train_tokenizer(folder: Path, vocab_size: int = 400) -> Path:
    """A LLaMA-format SentencePiece model (BPE, byte fallback, split digits, "$$" piece)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    lines = CORPUS + [template for pool in INSTRUCTION_POOLS.values() for template in pool]
    corpus.write_text("\n".join(lines * 4))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=["$$"],
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return folder / "tokenizer.model"


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer(train_tokenizer(tmp_path_factory.mktemp("tokenizer")))


@pytest.fixture(scope="session")
def tiny_config():
    return get_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config):
    from minigptv2.model import MiniGPTv2

    torch.manual_seed(0)
    return MiniGPTv2(tiny_config)
