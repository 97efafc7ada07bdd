"""Assemble MiniGPT-v2 from the files its authors released (spec §8.1-8.3).

Three sources, each responsible for one part of the model:

* ``eva_vit_g.pth``: a plain EVA ViT-g state dict (40 blocks, 224 px ``pos_embed``) -> ``vision.*``;
  the 40th block is dropped by name and ``pos_embed`` resampled to the 448 px grid;
* a LLaMA-2-7b-chat folder in Hugging Face format (``config.json``, ``tokenizer.model``,
  safetensors or legacy ``.bin`` weights, sharded or not) -> the language model's base weights;
* ``minigptv2_checkpoint.pth``: ``{"model": {...}}`` with ``llama_proj.*`` and the LoRA A/B of
  q/v in every layer -> ``projector.*`` and the LoRA weights.

The model's config is read off the files (nothing about sizes is assumed), the three are checked
to belong together before any weight is read, and every key is accounted for: a strict load
refuses anything missing, unexpected or misshapen and says which file is probably wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from minigptv2.checkpoints.assemble import Part, assemble, model_shapes, plan_load
from minigptv2.checkpoints.key_maps import (
    EVA_DROPPED_REASON,
    EVA_KEYS,
    MINIGPTV2_KEYS,
    TIED_REASON,
    language_key_map,
    map_keys,
)
from minigptv2.checkpoints.safe_load import (
    read_sharded,
    read_state_dict,
    read_torch_file,
    require_file,
    require_tensor_dict,
    shape_of,
)
from minigptv2.config import LanguageConfig, LoRAConfig, MiniGPTv2Config, VisionConfig
from minigptv2.constants import RELEASED_IMAGE_SIZE
from minigptv2.errors import CheckpointError
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.model.vision import resample_pos_embed
from minigptv2.tokenizer import TOKENIZER_FILE, Tokenizer

# EVA-CLIP ViT-g/14 has 16 heads of dimension 88 (1408 = 16 x 88). The file does not store the
# head count, so it is derived as width // 88; reduced-size files keep head dimension 88, or the
# caller passes ``vision_heads``.
EVA_HEAD_DIM = 88
EVA_G_WIDTH = 1408
EVA_G_BLOCKS = 40
DEFAULT_IMAGE_SIZE = RELEASED_IMAGE_SIZE
# The reference fixes LoRA alpha 16, dropout 0.05 and the q/v targets in code; only the rank can
# be read from a checkpoint (spec §1.8, §10.5). Without a checkpoint, rank 64 as released.
REFERENCE_LORA = LoRAConfig()

LLAMA_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class ReleasedFiles:
    """Paths of the three released sources; ``checkpoint`` may be absent (fresh projector/LoRA)."""

    eva: Path
    llama: Path
    checkpoint: Path | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {
            "eva": f"the EVA file {self.eva}",
            "llama": f"the LLaMA folder {self.llama}",
            "checkpoint": f"the MiniGPT-v2 checkpoint {self.checkpoint}",
        }


@dataclass
class ReleasedSources:
    """Everything read from the released files, ready for ``assemble``."""

    files: ReleasedFiles
    config: MiniGPTv2Config
    parts: list[Part]
    fresh: Callable[[str], str | None]


# -- the public entry point ----------------------------------------------------------------------


def load_released(
    eva: str | Path,
    llama: str | Path,
    checkpoint: str | Path | None = None,
    *,
    strict: bool = True,
    dtype: str = "float32",
    image_size: int = DEFAULT_IMAGE_SIZE,
    vision_heads: int | None = None,
) -> tuple[MiniGPTv2, Tokenizer]:
    """MiniGPT-v2 and its tokenizer from the released files.

    Args:
        eva: ``eva_vit_g.pth``.
        llama: the LLaMA-2-7b-chat folder in Hugging Face format.
        checkpoint: ``minigptv2_checkpoint.pth``; without it the projector and LoRA are freshly
            initialised (LoRA B = 0), e.g. to start training, and the report says so.
        strict: refuse any missing, unexpected or wrong-shaped key (default). ``False`` loads what
            fits and prints the report; ``model.load_report`` holds it either way.
        dtype: dtype of the frozen ViT and LLaMA weights ("float32" or "bfloat16"; never fp16
            on CPU). Projector and LoRA stay fp32.
        image_size: input resolution; ``pos_embed`` is resampled to it (MiniGPT-v2: 448).
        vision_heads: ViT attention heads when the width is not a multiple of 88.
    """
    sources = open_released(
        eva, llama, checkpoint, dtype=dtype, image_size=image_size, vision_heads=vision_heads
    )
    tokenizer = read_llama_tokenizer(sources.files.llama, sources.config.language)
    model, _ = assemble(
        sources.config,
        sources.parts,
        fresh=sources.fresh,
        strict=strict,
        what="the released files",
    )
    model.weights_source = released_source_record(sources.files, sources.config)
    return model, tokenizer


def open_released(
    eva: str | Path,
    llama: str | Path,
    checkpoint: str | Path | None = None,
    *,
    dtype: str = "float32",
    image_size: int = DEFAULT_IMAGE_SIZE,
    vision_heads: int | None = None,
) -> ReleasedSources:
    """Key names, shapes and configs of the released files, cross-checked.

    Tensors are memory-mapped (``.pth``) or read on demand (safetensors), so this reads little
    of the 15 GB; ``assemble`` reads each tensor once, when it is put in place.
    """
    files = ReleasedFiles(
        require_file(eva),
        require_llama_dir(llama),
        None if checkpoint is None else require_file(checkpoint),
    )
    eva_tensors = read_state_dict(files.eva)
    language = read_llama_config(files.llama)
    checkpoint_tensors = None if files.checkpoint is None else read_checkpoint(files.checkpoint)
    config = released_config(
        eva_tensors,
        language,
        checkpoint_tensors,
        files=files,
        image_size=image_size,
        vision_heads=vision_heads,
        dtype=dtype,
    )
    parts = released_parts(
        config, files, eva_tensors, read_llama_weights(files.llama), checkpoint_tensors
    )
    return ReleasedSources(files, config, parts, fresh_reasons(files.checkpoint is not None))


# -- reading each source -------------------------------------------------------------------------


def require_llama_dir(path: str | Path) -> Path:
    """``path`` if it looks like a Hugging Face LLaMA folder; else say what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"no LLaMA folder at {path}; pass the Hugging Face folder of Llama-2-7b-chat-hf"
            " (config.json, tokenizer.model and the weights)"
        )
    needed = ["config.json", TOKENIZER_FILE]
    absent = [name for name in needed if not (path / name).is_file()]
    if not any((path / name).is_file() for name in LLAMA_WEIGHT_FILES):
        absent.append(" or ".join(LLAMA_WEIGHT_FILES))
    if absent:
        present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        raise CheckpointError(
            f"the LLaMA folder {path} lacks {'; '.join(absent)} (it holds: {present}); pass the"
            " complete Hugging Face folder of Llama-2-7b-chat-hf"
        )
    return path


def read_llama_config(folder: Path) -> LanguageConfig:
    """The folder's ``config.json`` as our ``LanguageConfig``; refuse what we cannot build."""
    from transformers import LlamaConfig

    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text())
    except ValueError as error:
        raise CheckpointError(f"cannot parse {path}: {error}; restore the file") from None
    if raw.get("model_type") != "llama":
        raise CheckpointError(
            f"{path} describes a {raw.get('model_type')!r} model, not 'llama'; pass the"
            " Llama-2-7b-chat-hf folder"
        )
    try:
        llama = LlamaConfig.from_pretrained(folder)
    except Exception as error:  # transformers validates sizes with assorted exception types
        raise CheckpointError(f"{path} is not a valid LLaMA config: {error}") from None
    return language_config(llama, str(path))


def language_config(llama: Any, label: str) -> LanguageConfig:
    """Our ``LanguageConfig`` from a ``transformers.LlamaConfig``; refuse unsupported variants."""
    rope = getattr(llama, "rope_parameters", None) or {}
    unsupported = {
        "num_key_value_heads": (llama.num_key_value_heads, llama.num_attention_heads),
        "hidden_act": (llama.hidden_act, "silu"),
        "attention_bias": (llama.attention_bias, False),
        "mlp_bias": (llama.mlp_bias, False),
        "tie_word_embeddings": (llama.tie_word_embeddings, False),
        "rope type": (rope.get("rope_type", "default"), "default"),
        "head_dim": (llama.head_dim, llama.hidden_size // llama.num_attention_heads),
    }
    for name, (found, wanted) in unsupported.items():
        if found != wanted:
            raise CheckpointError(
                f"{label}: {name} = {found!r} is not supported (LLaMA-2-7B has {wanted!r});"
                " MiniGPT-v2 is built on Llama-2-7b-chat-hf"
            )
    return LanguageConfig(
        vocab_size=llama.vocab_size,
        hidden_size=llama.hidden_size,
        num_layers=llama.num_hidden_layers,
        num_heads=llama.num_attention_heads,
        intermediate_size=llama.intermediate_size,
        rms_norm_eps=llama.rms_norm_eps,
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        max_position_embeddings=llama.max_position_embeddings,
    )


def read_llama_weights(folder: Path) -> Mapping[str, Tensor]:
    """The folder's weights, lazily: safetensors first, then legacy ``pytorch_model*.bin``."""
    for name in LLAMA_WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            return read_sharded(path) if name.endswith(".index.json") else read_state_dict(path)
    raise CheckpointError(
        f"no weights in {folder}; expected one of {', '.join(LLAMA_WEIGHT_FILES)}"
    )


def read_llama_tokenizer(folder: Path, language: LanguageConfig) -> Tokenizer:
    """The folder's ``tokenizer.model``; it may not have more pieces than the vocabulary."""
    tokenizer = Tokenizer(folder)
    if tokenizer.vocab_size > language.vocab_size:
        raise CheckpointError(
            f"{folder / TOKENIZER_FILE} has {tokenizer.vocab_size} pieces but config.json has"
            f" vocab_size {language.vocab_size}; the tokenizer belongs to another model"
        )
    return tokenizer


def read_checkpoint(path: Path) -> dict[str, Tensor]:
    """The state dict of a MiniGPT-v2 checkpoint: ``torch.load(path)["model"]``.

    Training saves also hold ``optimizer``, ``config``, ``scaler`` and ``epoch``; those are not
    needed. A bare state dict with ``llama_proj.*`` at the top level is accepted too.
    """
    saved = read_torch_file(path)
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        saved = saved["model"]
    elif not (isinstance(saved, dict) and "llama_proj.weight" in saved):
        found = list(saved)[:5] if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(
            f"{path} is not a MiniGPT-v2 checkpoint: expected {{'model': {{...}}}} with"
            f" llama_proj.* and LoRA weights, found {found}; pass minigptv2_checkpoint.pth"
        )
    return require_tensor_dict(saved, path, "the MiniGPT-v2 checkpoint")


# -- the config the files imply ------------------------------------------------------------------


def released_config(
    eva: Mapping[str, Tensor],
    language: LanguageConfig,
    checkpoint: Mapping[str, Tensor] | None,
    *,
    files: ReleasedFiles,
    image_size: int = DEFAULT_IMAGE_SIZE,
    vision_heads: int | None = None,
    dtype: str = "float32",
) -> MiniGPTv2Config:
    """The ``MiniGPTv2Config`` the files describe, after checking that they belong together."""
    vision = eva_vision_config(eva, files.eva, image_size=image_size, num_heads=vision_heads)
    lora = REFERENCE_LORA
    if checkpoint is not None:
        rank = checkpoint_lora_rank(checkpoint)
        lora = LoRAConfig(rank=rank) if rank is not None else REFERENCE_LORA
    config = MiniGPTv2Config(vision=vision, language=language, lora=lora, dtype=dtype)
    if checkpoint is not None:
        base = f"{files.labels['llama']} and {files.labels['eva']}"
        check_same_base(config, checkpoint, files.labels["checkpoint"], base)
    return config


def eva_vision_config(
    eva: Mapping[str, Tensor], path: Path, *, image_size: int, num_heads: int | None = None
) -> VisionConfig:
    """ViT sizes from the EVA state dict: the model uses one block fewer than the file holds."""
    required = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    absent = [key for key in required if key not in eva]
    if absent:
        raise CheckpointError(
            f"{path} is not an EVA ViT state dict: it lacks {', '.join(absent)} (its first keys:"
            f" {', '.join(list(eva)[:4])}); pass BLIP-2's eva_vit_g.pth"
        )
    width, _, patch, _ = shape_of(eva, "patch_embed.proj.weight")
    blocks = {int(key.split(".")[1]) for key in eva if key.startswith("blocks.")}
    if len(blocks) < 2 or blocks != set(range(len(blocks))):
        raise CheckpointError(
            f"{path} has blocks {sorted(blocks)}; expected blocks 0..N-1 with N >= 2 (the last"
            " one is dropped), as in eva_vit_g.pth (40 blocks)"
        )
    if width == EVA_G_WIDTH and len(blocks) != EVA_G_BLOCKS:
        raise CheckpointError(
            f"{path} has {len(blocks)} blocks but EVA ViT-g has {EVA_G_BLOCKS}; MiniGPT-v2 uses"
            f" the first {EVA_G_BLOCKS - 1}. Pass the unmodified eva_vit_g.pth"
        )
    if num_heads is None:
        if width % EVA_HEAD_DIM:
            raise CheckpointError(
                f"{path} has width {width}, not a multiple of EVA's head dimension"
                f" {EVA_HEAD_DIM}; pass the number of attention heads (vision_heads)"
            )
        num_heads = width // EVA_HEAD_DIM
    pos_tokens = shape_of(eva, "pos_embed")[1] - 1
    pretrain_grid = math.isqrt(pos_tokens)
    if pretrain_grid**2 != pos_tokens:
        raise CheckpointError(
            f"{path}: pos_embed has {pos_tokens} patch rows, not a square grid (eva_vit_g.pth:"
            " 1 + 16 x 16 = 257 rows); the file is damaged or not an EVA ViT"
        )
    return VisionConfig(
        image_size=image_size,
        patch_size=patch,
        width=width,
        depth=len(blocks) - 1,
        num_heads=num_heads,
        mlp_hidden=shape_of(eva, "blocks.0.mlp.fc1.weight")[0],
        pretrain_image_size=pretrain_grid * patch,
    )


def checkpoint_lora_rank(checkpoint: Mapping[str, Tensor]) -> int | None:
    """LoRA rank from the first ``lora_A`` weight (its rows); ``None`` if there is none."""
    mapping = map_keys(checkpoint, MINIGPTV2_KEYS)
    for ours, theirs in mapping.renamed.items():
        if ".lora_A." in ours:
            return shape_of(checkpoint, theirs)[0]
    return None


def check_same_base(
    config: MiniGPTv2Config, checkpoint: Mapping[str, Tensor], checkpoint_label: str, base: str
) -> None:
    """Refuse a checkpoint trained on another LLaMA (or ViT) before reading any weight."""
    found = base_mismatches(config, checkpoint)
    if found:
        raise CheckpointError(
            f"{checkpoint_label} was not trained on {base}:\n"
            + "\n".join(f"  - {line}" for line in found)
            + "\nMiniGPT-v2's released checkpoints need Llama-2-7b-chat-hf (hidden 4096, 32"
            " layers, vocabulary 32000) and eva_vit_g.pth (width 1408); pass the base files the"
            " checkpoint was trained with."
        )


def base_mismatches(config: MiniGPTv2Config, checkpoint: Mapping[str, Tensor]) -> list[str]:
    """What the checkpoint implies about the base models that the config contradicts."""
    mapping = map_keys(checkpoint, MINIGPTV2_KEYS)
    shapes = {ours: shape_of(checkpoint, theirs) for ours, theirs in mapping.renamed.items()}
    hidden, layers = config.language.hidden_size, config.language.num_layers
    problems = []
    projector = shapes.get("projector.linear.weight")
    if projector is not None and projector[0] != hidden:
        problems.append(
            f"LLM hidden size: expected {projector[0]} (llama_proj.weight is {list(projector)}),"
            f" found {hidden} in the LLaMA config.json"
        )
    if projector is not None and projector[1] != config.projector_in_features:
        problems.append(
            f"vision width: expected {projector[1]} / {config.tokens_merged} ="
            f" {projector[1] / config.tokens_merged:g} (llama_proj.weight takes {projector[1]}"
            f" features), found width {config.vision.width} in the EVA file"
        )
    lora_layers = {int(key.split(".layers.")[1].split(".")[0]) for key in shapes if "lora_" in key}
    # A gap (one layer's LoRA missing) is a damaged checkpoint, reported key by key later.
    if lora_layers and max(lora_layers) + 1 != layers:
        problems.append(
            f"LLM layers: expected {max(lora_layers) + 1} (the checkpoint has LoRA weights for"
            f" layers {min(lora_layers)}..{max(lora_layers)}), found {layers} in the LLaMA"
            " config.json"
        )
    widths = {shape[1] for key, shape in shapes.items() if ".lora_A." in key}
    widths |= {shape[0] for key, shape in shapes.items() if ".lora_B." in key}
    if widths - {hidden}:
        problems.append(
            f"LLM hidden size: expected {sorted(widths)} (the LoRA weights' outer dimension),"
            f" found {hidden} in the LLaMA config.json"
        )
    return problems


# -- renaming ------------------------------------------------------------------------------------


def released_parts(
    config: MiniGPTv2Config,
    files: ReleasedFiles,
    eva: Mapping[str, Tensor],
    llama: Mapping[str, Tensor],
    checkpoint: Mapping[str, Tensor] | None,
) -> list[Part]:
    """The three sources renamed to our keys, each with its share of the model to answer for."""
    parts = [eva_part(config, files, eva), llama_part(config, files, llama)]
    if checkpoint is not None:
        parts.append(checkpoint_part(files.labels["checkpoint"], checkpoint))
    return parts


def eva_part(config: MiniGPTv2Config, files: ReleasedFiles, eva: Mapping[str, Tensor]) -> Part:
    """EVA keys -> ``vision.*``; the last block dropped, ``pos_embed`` resampled to our grid."""
    vision = config.vision
    mapping = map_keys(
        eva, EVA_KEYS, dropped_layers={vision.depth}, dropped_reason=EVA_DROPPED_REASON
    )
    notes = []
    if vision.pretrain_grid_size != vision.grid_size:
        notes.append(
            f"vision.pos_embed resampled from the file's {vision.pretrain_grid_size}x"
            f"{vision.pretrain_grid_size} grid to {vision.grid_size}x{vision.grid_size}"
            f" ({vision.image_size} px; bicubic, no antialias, as MiniGPT-v2 does it)"
        )
    return Part(
        label=files.labels["eva"],
        tensors=eva,
        mapping=mapping,
        responsible=lambda key: key.startswith("vision."),
        # In fp32 as the reference does, not in the file's fp16 (spec §1.3).
        transforms={"vision.pos_embed": lambda t: resample_pos_embed(t.float(), vision.grid_size)},
        explain=_explain_eva,
        notes=notes,
    )


def load_vision_encoder(model: MiniGPTv2, path: str | Path) -> None:
    """Give a model built from a preset the vision encoder in the EVA file ``path``.

    The file must hold the preset's ViT (same width, patch, heads, MLP, and one block more, which
    is dropped as MiniGPT-v2 drops EVA's last): for a from-scratch model whose encoder was
    pretrained on its own, such as the Shapes stage 0 (``train/perception.py``). Every vision key
    is loaded strictly; the rest of the model is left as it is.
    """
    path = require_file(path)
    eva = read_state_dict(path)
    ours = model.config.vision
    found = eva_vision_config(eva, path, image_size=ours.image_size, num_heads=ours.num_heads)
    sizes = ("patch_size", "width", "depth", "mlp_hidden")
    if any(getattr(found, name) != getattr(ours, name) for name in sizes):
        theirs = ", ".join(f"{name} {getattr(found, name)}" for name in sizes)
        wanted = ", ".join(f"{name} {getattr(ours, name)}" for name in sizes)
        raise CheckpointError(
            f"{path} holds a ViT of {theirs} (depth counts the blocks kept, one fewer than the"
            f" file's), but the model needs {wanted}; pretrain an encoder for this preset"
            " (minigptv2 pretrain-vision --model PRESET)"
        )
    files = ReleasedFiles(eva=path, llama=path.parent)
    part = eva_part(model.config, files, eva)
    expected = {key: v for key, v in model_shapes(model).items() if key.startswith("vision.")}
    plan, report = plan_load(expected, [part])
    report.raise_if_problems(files.labels["eva"])
    state = {key.removeprefix("vision."): part.tensor(key).float() for key in plan}
    model.vision.load_state_dict(state, strict=True)


def llama_part(config: MiniGPTv2Config, files: ReleasedFiles, llama: Mapping[str, Tensor]) -> Part:
    """HF ``LlamaForCausalLM`` keys -> our language model (q/v weights -> ``base_layer``)."""
    return Part(
        label=files.labels["llama"],
        tensors=llama,
        mapping=map_keys(
            llama,
            language_key_map(config.language, config.lora, config.lora_targets),
            dropped_reason=TIED_REASON,
        ),
        responsible=lambda key: key.startswith("language_model.") and "lora_" not in key,
        explain=_explain_llama,
    )


def checkpoint_part(label: str, checkpoint: Mapping[str, Tensor]) -> Part:
    """``llama_proj.*`` -> ``projector.linear.*``; LoRA in peft 0.2.0 or >= 0.3 names -> ours."""
    return Part(
        label=label,
        tensors=checkpoint,
        mapping=map_keys(checkpoint, MINIGPTV2_KEYS),
        responsible=lambda key: key.startswith("projector.") or "lora_" in key,
        explain=_explain_checkpoint,
    )


def fresh_reasons(has_checkpoint: bool) -> Callable[[str], str | None]:
    """Why a key may come from no file: ``ln_vision`` never does; projector/LoRA without a ckpt."""

    def reason(key: str) -> str | None:
        if key.startswith("vision_norm."):
            return "ln_vision: identity LayerNorm, as the reference never loads it (spec §1.4)"
        if not has_checkpoint and (key.startswith("projector.") or "lora_" in key):
            return "no MiniGPT-v2 checkpoint given: random projector, LoRA B = 0 (a no-op)"
        return None

    return reason


def released_source_record(files: ReleasedFiles, config: MiniGPTv2Config) -> dict[str, Any]:
    """What a trainable-only save needs to find and recognise its base files again."""
    return {
        "kind": "released",
        "eva": str(files.eva.resolve()),
        "eva_bytes": files.eva.stat().st_size,
        "llama": str(files.llama.resolve()),
        "language": config.to_dict()["language"],
    }


# -- probable causes, per file -------------------------------------------------------------------


def _explain_eva(kind: str, key: str) -> str:
    return {
        "missing": "it lacks these; is it BLIP-2's eva_vit_g.pth, a plain state dict?",
        "unexpected": "EVA ViT-g has no such keys; is it eva_vit_g.pth (no prefix, 40 blocks)?",
        "shape": "its tensors disagree with the sizes read from its own first block (damaged?)",
    }[kind]


def _explain_llama(kind: str, key: str) -> str:
    return {
        "missing": "its weights lack these; a shard is probably missing or incomplete",
        "unexpected": "a Llama-2 LlamaForCausalLM has no such keys; is this a LLaMA-2 folder?",
        "shape": "its weights disagree with its own config.json; the folder mixes two models",
    }[kind]


def _explain_checkpoint(kind: str, key: str) -> str:
    if kind == "missing" and "lora_" in key:
        return (
            "it has no LoRA weights for these (it should hold lora_A/lora_B of q_proj and v_proj"
            " in every layer); if its LoRA keys use other names they are listed as unexpected"
        )
    if kind == "missing":
        return "it has no llama_proj weights; is it a MiniGPT-v2 checkpoint?"
    if kind == "unexpected" and "lora" in key:
        return (
            "LoRA weights under names no known peft version writes, or on modules other than"
            " q_proj/v_proj, or for layers the LLaMA does not have"
        )
    if kind == "unexpected":
        return "a MiniGPT-v2 checkpoint holds only llama_proj and LoRA weights"
    if key.startswith("projector."):
        return (
            "the checkpoint was built for another LLM size or vision encoder (llama_proj maps"
            " 4 x ViT width to the LLM hidden size)"
        )
    return "the checkpoint was built for another LLM size or LoRA rank"
