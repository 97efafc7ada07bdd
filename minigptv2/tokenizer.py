"""LLaMA's SentencePiece tokenizer, used as MiniGPT-v2's reference code used it (spec §1.7, §10.3).

The reference ran transformers 4.30's slow ``LlamaTokenizer``: the literal strings ``<s>``, ``</s>``
and ``<unk>`` become their special ids, and every other stretch of text is encoded by SentencePiece
on its own, so each stretch starts with a word-boundary marker. Newer transformers releases changed
these rules (the ``legacy`` flag, tokenizers-backed classes), so this wrapper calls
``sentencepiece`` directly and pins the behaviour the released weights were trained with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from minigptv2.constants import BOS, EOS, PAD, UNK
from minigptv2.errors import ConfigError, PromptError

TOKENIZER_FILE = "tokenizer.model"
_SURROGATE = re.compile("[\ud800-\udfff]")


class Tokenizer:
    """Text <-> ids with LLaMA's special-token handling; see the module docstring."""

    def __init__(self, model_file: str | Path) -> None:
        path = Path(model_file)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise ConfigError(
                f"no SentencePiece model at {path}; pass a LLaMA folder holding {TOKENIZER_FILE} "
                "or the file itself"
            )
        self.path = path
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError):  # sentencepiece says only "could not parse ModelProto"
            raise ConfigError(
                f"{path} is not a SentencePiece model (a Git LFS pointer, an HTML error page or "
                "a cut-off download?); copy the tokenizer.model that belongs to the weights"
            ) from None
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        if min(self.bos_id, self.eos_id, self.unk_id) < 0:
            raise ConfigError(f"{path} lacks a BOS, EOS or UNK piece; it is not a LLaMA tokenizer")
        # The reference pads with "$$"; piece_to_id gives UNK when "$$" is not a piece, as it did.
        self.pad_id = self.sp.piece_to_id(PAD)
        self._special = {BOS: self.bos_id, EOS: self.eos_id, UNK: self.unk_id}
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, self._special)) + ")")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Ids of ``text``: literal specials map to their ids, other text gets a leading ▁."""
        # isascii() is O(1); only non-ASCII text is searched for what SentencePiece cannot take.
        if not text.isascii() and _SURROGATE.search(text):
            raise PromptError(
                f"the text {text[:60]!r} is not valid Unicode: it holds lone surrogates, which is "
                "what bytes that are not UTF-8 become in a command-line argument; pass the text "
                "as UTF-8 (check the terminal's or file's encoding)"
            )
        ids = [self.bos_id] if add_bos else []
        for chunk in self._special_pattern.split(text):
            if not chunk:
                continue
            special = self._special.get(chunk)
            ids.extend([special] if special is not None else self.sp.encode(chunk))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` with special tokens dropped (``skip_special_tokens=True`` behaviour)."""
        # Ids past the vocabulary (a model whose embedding table is padded) decode to nothing.
        skip = {self.bos_id, self.eos_id, self.unk_id}
        size = self.vocab_size
        return self.sp.decode([i for i in map(int, ids) if 0 <= i < size and i not in skip])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The SentencePiece pieces of ``ids``, for debugging and tests."""
        return [self.sp.id_to_piece(int(i)) for i in ids]


def train_tokenizer(
    lines: Iterable[str],
    folder: str | Path,
    *,
    vocab_size: int,
    symbols: Sequence[str] = (),
) -> Tokenizer:
    """Train a LLaMA-format SentencePiece model (BPE, byte fallback, split digits) on ``lines``.

    Used for models trained from scratch (Shapes) and for tests; released models bring their own
    ``tokenizer.model``. ``symbols`` become single pieces, matched before any other split.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines))
    try:
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(folder / Path(TOKENIZER_FILE).stem),
            vocab_size=vocab_size,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=1.0,
            split_digits=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            user_defined_symbols=[PAD, *symbols],
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    finally:
        corpus.unlink(missing_ok=True)
        (folder / "tokenizer.vocab").unlink(missing_ok=True)
    return Tokenizer(folder / TOKENIZER_FILE)
