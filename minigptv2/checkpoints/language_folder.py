"""Any Hugging Face causal LM folder as MiniGPT-v2's language model (issue 17).

A folder with ``config.json``, its weights (safetensors or ``.bin``, sharded or not) and its
tokenizer (``tokenizer.json`` / ``tokenizer_config.json``, or a bare ``tokenizer.model``) of a
family in ``minigptv2.families.FAMILIES`` (LLaMA, Mistral, Qwen2, Phi-3) becomes the language
model of a MiniGPT-v2 whose other sizes come from a base config (a preset): the projector maps
``4 x`` the ViT width to the LM's hidden size, LoRA wraps the family's query/value projections,
the tokenizer and the chat template (if the folder has one) are the folder's.

The vision encoder comes from an EVA file (``eva_vit_g.pth``, read as in ``released.py``) or,
without one, starts from random weights (a model trained from scratch, or a test). The projector
and LoRA start fresh: this is where a new alignment begins (``configs/llm/stage1.yaml``).

Loading is as strict as for the released files: every key of the folder must land in the model
and every weight of the model must come from a file or be fresh on purpose, and the report names
the folder and the keys otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from minigptv2.checkpoints.assemble import Part, assemble
from minigptv2.checkpoints.key_maps import TIED_REASON, language_key_map, map_keys
from minigptv2.checkpoints.released import (
    LLAMA_WEIGHT_FILES,
    ReleasedFiles,
    eva_part,
    eva_vision_config,
    read_llama_weights,
)
from minigptv2.checkpoints.safe_load import read_state_dict, require_file
from minigptv2.config import LanguageConfig, MiniGPTv2Config
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.tokenizer import HF_TOKENIZER_FILES, TOKENIZER_FILE, AnyTokenizer, load_tokenizer


@dataclass
class LanguageSources:
    """A language-model folder (and an EVA file) read and checked, ready for ``assemble``."""

    config: MiniGPTv2Config
    parts: list[Part]
    fresh: Callable[[str], str | None]
    tokenizer: AnyTokenizer
    # What a trainable-only save records to find these files again (None without an EVA file:
    # random vision weights cannot be found again).
    source: dict[str, Any] | None


def load_with_language_model(
    llm: str | Path,
    base: MiniGPTv2Config,
    *,
    eva: str | Path | None = None,
    strict: bool = True,
    vision_heads: int | None = None,
) -> tuple[MiniGPTv2, AnyTokenizer]:
    """MiniGPT-v2 on the causal LM in ``llm``, with ``base``'s vision, LoRA and training setup.

    Args:
        llm: a Hugging Face causal LM folder (any family in ``FAMILIES``).
        base: the config whose vision encoder, LoRA rank, trainable flags, dtype and length limits
            are kept; its language model is replaced by the folder's.
        eva: an EVA ViT file for the vision encoder (its sizes replace ``base.vision``'s, at
            ``base.vision.image_size``); without it the encoder starts from random weights.
        strict: refuse any missing, unexpected or wrong-shaped key (see ``load_released``).
        vision_heads: ViT attention heads when the EVA width is not a multiple of 88.
    """
    sources = open_language_model(llm, base, eva=eva, vision_heads=vision_heads)
    model, _ = assemble(
        sources.config,
        sources.parts,
        fresh=sources.fresh,
        strict=strict,
        what=f"the language-model folder {llm}" + (f" with {eva}" if eva is not None else ""),
    )
    model.weights_source = sources.source
    return model, sources.tokenizer


def open_language_model(
    llm: str | Path,
    base: MiniGPTv2Config,
    *,
    eva: str | Path | None = None,
    vision_heads: int | None = None,
) -> LanguageSources:
    """Configs, tokenizer and (lazy) tensors of ``llm`` and ``eva``; nothing is built yet."""
    folder = require_language_dir(llm)
    language = read_language_config(folder)
    tokenizer = read_language_tokenizer(folder, language)
    config = model_config(base, language, tokenizer)
    parts = []
    source = None
    if eva is not None:
        eva_path = require_file(eva)
        eva_tensors = read_state_dict(eva_path)
        vision = eva_vision_config(
            eva_tensors,
            eva_path,
            image_size=base.vision.image_size,
            num_heads=vision_heads,
        )
        config = config.replace(vision=vision)
        parts.append(eva_part(config, ReleasedFiles(eva_path, folder), eva_tensors))
        source = {
            "kind": "llm",
            "llm": str(folder.resolve()),
            "eva": str(eva_path.resolve()),
            "eva_bytes": eva_path.stat().st_size,
            "language": config.to_dict()["language"],
        }
    parts.append(language_part(config, folder, read_llama_weights(folder)))
    return LanguageSources(config, parts, fresh_reasons(eva is not None), tokenizer, source)


def model_config(
    base: MiniGPTv2Config, language: LanguageConfig, tokenizer: AnyTokenizer
) -> MiniGPTv2Config:
    """``base`` on ``language``: the folder's chat template if it has one, else the paper's
    (in the training style: a newly aligned LM never saw the reference evaluation's quirks)."""
    native = getattr(tokenizer, "chat_template", None) is not None
    return base.replace(
        language=language,
        chat_format="native" if native else "minigptv2",
        prompt_style="train",
    )


# -- reading the folder --------------------------------------------------------------------------


def require_language_dir(path: str | Path) -> Path:
    """``path`` if it is a Hugging Face causal LM folder; else say what it lacks."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"no language-model folder at {path}; pass a Hugging Face causal LM folder"
            " (config.json, the weights and the tokenizer files)"
        )
    absent = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / name).is_file() for name in LLAMA_WEIGHT_FILES):
        absent.append(" or ".join(LLAMA_WEIGHT_FILES))
    tokenizer_files = (*HF_TOKENIZER_FILES, TOKENIZER_FILE)
    if not any((path / name).is_file() for name in tokenizer_files):
        absent.append(" or ".join(tokenizer_files))
    if absent:
        present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        raise CheckpointError(
            f"the language-model folder {path} lacks {'; '.join(absent)} (it holds: {present});"
            " pass a complete Hugging Face folder (save_pretrained of the model and tokenizer)"
        )
    return path


def read_language_config(folder: Path) -> LanguageConfig:
    """The folder's ``config.json`` as our ``LanguageConfig`` (any family in ``FAMILIES``)."""
    from transformers import AutoConfig

    from minigptv2.model.language import language_config

    path = folder / "config.json"
    try:
        hf = AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # transformers reports bad configs with assorted exception types
        raise CheckpointError(f"{path} is not a valid transformers config: {error}") from None
    try:
        return language_config(hf)
    except ConfigError as error:
        raise CheckpointError(f"{path}: {error}") from None


def read_language_config_only(folder: str | Path) -> LanguageConfig:
    """``read_language_config`` of a folder that may hold nothing but ``config.json``."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"no config.json in {folder}; pass a Hugging Face causal LM folder")
    return read_language_config(folder)


def read_language_tokenizer(folder: Path, language: LanguageConfig) -> AnyTokenizer:
    """The folder's tokenizer; it may not have more tokens than the model's vocabulary."""
    try:
        tokenizer = load_tokenizer(folder)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    if tokenizer.vocab_size > language.vocab_size:
        raise CheckpointError(
            f"the tokenizer in {folder} has {tokenizer.vocab_size} tokens but config.json has"
            f" vocab_size {language.vocab_size}; the tokenizer belongs to another model"
        )
    return tokenizer


def language_part(config: MiniGPTv2Config, folder: Path, tensors: Mapping[str, Tensor]) -> Part:
    """The folder's keys -> our language model (LoRA-wrapped weights -> ``base_layer``)."""
    key_map = language_key_map(config.language, config.lora, config.lora_targets)
    return Part(
        label=f"the language-model folder {folder}",
        tensors=tensors,
        mapping=map_keys(tensors, key_map, dropped_reason=TIED_REASON),
        responsible=lambda key: key.startswith("language_model.") and "lora_" not in key,
        explain=_explain_language,
    )


def fresh_reasons(has_eva: bool) -> Callable[[str], str | None]:
    """Keys no file provides on purpose: projector, LoRA and ``ln_vision`` (a new alignment
    starts there), and the vision encoder when no EVA file is given."""

    def reason(key: str) -> str | None:
        if key.startswith("vision_norm."):
            return "ln_vision: identity LayerNorm, as the reference never loads it (spec §1.4)"
        if key.startswith("projector.") or "lora_" in key:
            return "a new language model: random projector, LoRA B = 0 (a no-op)"
        if not has_eva and key.startswith("vision."):
            return "no EVA file given: the vision encoder starts from random weights"
        return None

    return reason


def _explain_language(kind: str, key: str) -> str:
    return {
        "missing": "its weights lack these; a shard is probably missing or incomplete",
        "unexpected": "the model its config.json describes has no such keys; is the config the"
        " weights' own?",
        "shape": "its weights disagree with its own config.json; the folder mixes two models",
    }[kind]
