"""Tokenizers: LLaMA's SentencePiece as MiniGPT-v2's reference used it (spec §1.7, §10.3), and
any ``transformers`` tokenizer folder behind the same interface (issue 17).

The reference ran transformers 4.30's slow ``LlamaTokenizer``: the literal strings ``<s>``, ``</s>``
and ``<unk>`` become their special ids, and every other stretch of text is encoded by SentencePiece
on its own, so each stretch starts with a word-boundary marker. Newer transformers releases changed
these rules (the ``legacy`` flag, tokenizers-backed classes), so this wrapper calls
``sentencepiece`` directly and pins the behaviour the released weights were trained with.

Another language model brings its own tokenizer (``tokenizer.json``: byte-level BPE for Qwen2, a
converted SentencePiece for Mistral or Phi-3, ...); ``HFTokenizer`` wraps it with the same
contract: ``encode`` maps the interface's literal ``<s>`` and ``</s>`` to that tokenizer's BOS
and end-of-answer ids, and everything else (image slot, task tokens, box grammar) is plain text.
``load_tokenizer`` picks the wrapper a folder needs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.model`` into ``folder``."""
        shutil.copyfile(self.path, Path(folder) / TOKENIZER_FILE)


# Files a ``transformers`` tokenizer folder has and a bare SentencePiece folder does not.
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class HFTokenizer:
    """A ``transformers`` tokenizer folder with ``Tokenizer``'s interface; see the module docstring.

    ``eos_id``, where generation stops and what every supervised answer ends with, is the token
    the folder's chat template writes right after an assistant message (Qwen2 ``<|im_end|>``,
    Phi-3 ``<|end|>``, LLaMA-2 and Mistral ``</s>``), or its EOS token if it has no template.
    """

    def __init__(self, folder: str | Path) -> None:
        from transformers import AutoTokenizer

        self.path = Path(folder)
        try:
            self.hf = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"cannot read the tokenizer in {self.path}: {error}; pass a folder with "
                "tokenizer.json (or tokenizer.model) and tokenizer_config.json"
            ) from None
        template = self.hf.chat_template
        if isinstance(template, dict):  # several named templates: the default one
            template = template.get("default")
        self.chat_template: str | None = template
        self.bos_id: int | None = self.hf.bos_token_id
        self.unk_id: int | None = self.hf.unk_token_id
        end = self._end_of_turn() if template else None
        self.eos_id: int | None = end if end is not None else self.hf.eos_token_id
        if self.eos_id is None:
            raise ConfigError(
                f"the tokenizer in {self.path} has neither an EOS token nor a chat template "
                "that ends an answer; set eos_token in its tokenizer_config.json"
            )
        self.pad_id = self.hf.pad_token_id if self.hf.pad_token_id is not None else self.eos_id
        self.bos_text = self.hf.bos_token if self.bos_id is not None else None
        self.stop_text = self.hf.decode([self.eos_id])
        self._special = {BOS: self.bos_id, EOS: self.eos_id}
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, self._special)) + ")")

    def _end_of_turn(self) -> int | None:
        sentinel = "\x00answer\x00"
        text = self.render_chat(
            [{"role": "user", "content": "question"}, {"role": "assistant", "content": sentinel}]
        )
        after = text.split(sentinel, 1)[-1].strip()
        ids = self.hf.encode(after, add_special_tokens=False) if after else []
        return ids[0] if ids else None

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Ids of ``text``: literal ``<s>``/``</s>`` become BOS (nothing without one) and the
        end-of-answer id; other text is encoded by the folder's tokenizer, no specials added."""
        ids = [self.bos_id] if add_bos and self.bos_id is not None else []
        for chunk in self._special_pattern.split(text):
            if not chunk:
                continue
            if chunk in self._special:
                special = self._special[chunk]
                ids.extend([special] if special is not None else [])
            else:
                ids.extend(self.hf.encode(chunk, add_special_tokens=False))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` without special tokens (ids past the vocabulary: nothing)."""
        size = self.vocab_size
        kept = [i for i in map(int, ids) if 0 <= i < size and i != self.eos_id]
        return self.hf.decode(kept, skip_special_tokens=True)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.hf.convert_ids_to_tokens([int(i) for i in ids])

    def render_chat(self, messages: list[dict[str, Any]], generation: bool = False) -> str:
        """The folder's chat template applied to ``messages`` (text, not ids)."""
        return self.hf.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation
        )

    def save(self, folder: Path) -> None:
        """Write the tokenizer files (and the chat template) into ``folder``."""
        self.hf.save_pretrained(folder)


AnyTokenizer = Tokenizer | HFTokenizer


def load_tokenizer(folder: str | Path) -> AnyTokenizer:
    """A folder's tokenizer: ``HFTokenizer`` when it has ``transformers`` tokenizer files, else
    the SentencePiece ``tokenizer.model`` (the shipped model, and our saves of LLaMA-2 models).
    """
    folder = Path(folder)
    if any((folder / name).is_file() for name in HF_TOKENIZER_FILES):
        return HFTokenizer(folder)
    return Tokenizer(folder)


_REQUIRED_PIECES = re.compile(r"smaller than required_chars\. \d+ vs (\d+)")


class VocabularyTooSmallError(ConfigError):
    """A tokenizer's vocabulary cannot hold its corpus's characters, byte pieces and symbols."""

    def __init__(self, vocab_size: int, required: int) -> None:
        self.vocab_size, self.required = vocab_size, required
        super().__init__(
            f"a vocabulary of {vocab_size} pieces is too small for this corpus: every character"
            f" it holds, the 256 byte pieces and the symbols need at least {required}; train"
            f" with a larger vocab_size"
        )


# SentencePiece's byte-fallback pieces: what a character without a piece of its own becomes.
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def unreadable_characters(tokenizer: AnyTokenizer, text: str) -> list[str]:
    """The characters of ``text`` (in order, once each) that ``tokenizer`` has no piece for: each
    becomes the unknown id or raw-byte pieces (``<0xEB>``), which a model whose tokenizer was
    trained without them has never read (e.g. Hangul for the English Shapes tokenizer).

    A byte-level BPE (``HFTokenizer`` of Qwen2 or GPT-2 style) has no unknown id and no byte
    pieces of this form: every character is readable to it, and none is returned.
    """
    missing = []
    for char in dict.fromkeys(text):
        if char.isascii() or char.isspace():
            continue
        ids = tokenizer.encode(char)
        pieces = tokenizer.pieces(ids)
        if tokenizer.unk_id in ids or any(_BYTE_PIECE.fullmatch(piece) for piece in pieces):
            missing.append(char)
    return missing


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
    except RuntimeError as error:
        # SentencePiece: "Vocabulary size is smaller than required_chars. 480 vs 519. ..."
        needed = _REQUIRED_PIECES.search(str(error))
        if needed is None:
            raise
        raise VocabularyTooSmallError(vocab_size, int(needed.group(1))) from None
    finally:
        corpus.unlink(missing_ok=True)
        (folder / "tokenizer.vocab").unlink(missing_ok=True)
    return Tokenizer(folder / TOKENIZER_FILE)
