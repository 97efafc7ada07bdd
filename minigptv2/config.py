"""Typed configuration for MiniGPT-v2 and its named presets.

Every number in ``minigptv2-7b`` comes from the released model (spec §1, §11): EVA-CLIP ViT-g/14
with its last block dropped at 448 px, a 4-token merge, LLaMA-2-7B-chat and LoRA r=64/alpha=16 on
q/v. ``tiny`` has the same structure at toy sizes, for tests. The language model may be any family
of ``families.py`` (``LanguageConfig.family``); ``shapes-qwen2`` is the Shapes model on Qwen2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minigptv2.constants import TOKENS_MERGED
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.families import get_family

DTYPES = ("float32", "bfloat16")
PROMPT_STYLES = ("train", "eval")  # names of minigptv2.prompts.STYLES
# "minigptv2": the paper's [INST] ... [/INST] template (in ``prompt_style``); "native": the
# language model's own chat template, from its tokenizer folder (see ``prompts.chat_format``).
CHAT_FORMATS = ("minigptv2", "native")


@dataclass(frozen=True)
class VisionConfig:
    """Shape of the EVA ViT. The defaults are MiniGPT-v2's encoder (spec §1.2).

    Attributes:
        image_size: side of the square input image in pixels (MiniGPT-v2: 448).
        patch_size: side of a square patch in pixels (14), so a 448 image is a 32x32 grid.
        width: token embedding dimension (1408).
        depth: number of transformer blocks. 39 = EVA-CLIP-g's 40 blocks with the last dropped
            (BLIP-2 convention); the checkpoint's ``blocks.39.*`` are deliberately not loaded.
        num_heads: attention heads (16), giving head dim 1408 / 16 = 88 and scale 88**-0.5.
        mlp_hidden: MLP hidden size, ``int(1408 * 4.3637) = 6144`` in the reference code.
        norm_eps: epsilon of the LayerNorms inside the blocks (1e-6).
        pretrain_image_size: image size the checkpoint was trained at (224), i.e. the
            16x16 grid of ``eva_vit_g.pth``'s ``pos_embed`` that must be resampled on loading.
    """

    image_size: int = 448
    patch_size: int = 14
    width: int = 1408
    depth: int = 39
    num_heads: int = 16
    mlp_hidden: int = 6144
    norm_eps: float = 1e-6
    pretrain_image_size: int = 224

    def __post_init__(self) -> None:
        for name in (
            "image_size",
            "patch_size",
            "width",
            "depth",
            "num_heads",
            "mlp_hidden",
            "pretrain_image_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"VisionConfig.{name} must be a positive integer, got {value!r}")
        if not self.norm_eps > 0:
            raise ConfigError(f"VisionConfig.norm_eps must be positive, got {self.norm_eps!r}")
        for name in ("image_size", "pretrain_image_size"):
            size = getattr(self, name)
            if size % self.patch_size:
                raise ConfigError(
                    f"VisionConfig.{name}={size} is not divisible by patch_size={self.patch_size}:"
                    f" choose a multiple of {self.patch_size} (MiniGPT-v2 uses 448 and 224)"
                )
        if self.width % self.num_heads:
            raise ConfigError(
                f"VisionConfig.width={self.width} is not divisible by num_heads={self.num_heads}:"
                " the head dimension must be an integer (MiniGPT-v2: 1408 / 16 = 88)"
            )

    @property
    def grid_size(self) -> int:
        """Patches per image side (448 // 14 = 32)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens per image (32 * 32 = 1024); the sequence adds one CLS token."""
        return self.grid_size**2

    @property
    def head_dim(self) -> int:
        """Per-head dimension (1408 // 16 = 88)."""
        return self.width // self.num_heads

    @property
    def pretrain_grid_size(self) -> int:
        """Grid side of the checkpoint's position embedding (224 // 14 = 16)."""
        return self.pretrain_image_size // self.patch_size


@dataclass(frozen=True)
class LanguageConfig:
    """A decoder-only causal LM built with ``transformers``; the defaults are LLaMA-2-7B.

    The sizes below are the ones MiniGPT-v2 derives things from (the projector's output width is
    ``hidden_size``; the processor checks the vocabulary and the positions). ``family`` names the
    ``transformers`` architecture (``minigptv2.families.FAMILIES``) and ``hf`` holds every other
    field of its ``config.json`` that differs from what these sizes give, verbatim (e.g.
    ``num_key_value_heads``, ``tie_word_embeddings``, ``rope_parameters``), so that
    ``model.language.hf_config`` rebuilds exactly the folder's model. LLaMA-2 needs none.
    """

    vocab_size: int = 32000
    hidden_size: int = 4096
    num_layers: int = 32
    num_heads: int = 32
    intermediate_size: int = 11008
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    family: str = "llama"
    hf: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_family(self.family)
        if self.hidden_size % self.num_heads and "head_dim" not in self.hf:
            raise ConfigError(
                f"language hidden_size {self.hidden_size} is not divisible by num_heads "
                f"{self.num_heads}; pick a head count that divides it"
            )
        _require_positive(self, "vocab_size", "hidden_size", "num_layers", "intermediate_size")
        if not isinstance(self.hf, dict):
            raise ConfigError(f"LanguageConfig.hf must be a mapping, got {self.hf!r}")


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA on the language model's attention (peft). MiniGPT-v2 fixes these four values.

    ``target_modules`` None means the language family's query and value projections
    (``FAMILIES[family].lora_targets``; ``q_proj``, ``v_proj`` for LLaMA), resolved by
    ``MiniGPTv2Config.lora_targets``.
    """

    rank: int = 64
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _require_positive(self, "rank", "alpha")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class Trainable:
    """Which components receive gradients: the one place that decides it (spec §1.9).

    MiniGPT-v2 trains the projector and LoRA in all three stages. A model trained from scratch
    (Shapes) also trains the vision encoder and the whole language model.
    """

    vision: bool = False
    projector: bool = True
    lora: bool = True
    language_model: bool = False


@dataclass(frozen=True)
class MiniGPTv2Config:
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    lora: LoRAConfig | None = field(default_factory=LoRAConfig)
    trainable: Trainable = field(default_factory=Trainable)
    # ``ln_vision``: a LayerNorm after the ViT with default eps; the reference never loads weights
    # into it, so with released checkpoints it stays at weight 1, bias 0 (spec §1.4, §10.4).
    vision_norm_eps: float = 1e-5
    tokens_merged: int = TOKENS_MERGED
    # Longest prompt side (image tokens included) and longest answer side, in tokens (spec §1.10).
    max_context_len: int = 3800
    max_txt_len: int = 1024
    # dtype of the frozen weights. fp16 is not offered: on CPU it runs at about 1 GFLOP/s.
    dtype: str = "float32"
    # How generation renders prompts (``prompts.STYLES``): "eval" reproduces the reference
    # evaluation scripts behind the published numbers (double BOS); a model trained here
    # generates best in the "train" style it saw.
    prompt_style: str = "eval"
    # How conversations are rendered (``CHAT_FORMATS``): the paper's template, or, for a language
    # model whose tokenizer folder has a chat template, that template with the task token and
    # the image slot inside the user turn.
    chat_format: str = "minigptv2"

    def __post_init__(self) -> None:
        if self.vision.num_patches % self.tokens_merged:
            raise ConfigError(
                f"{self.vision.num_patches} patches cannot be merged {self.tokens_merged} at a "
                "time; choose an image size whose patch count is a multiple of tokens_merged"
            )
        if self.dtype not in DTYPES:
            hint = " (fp16 matmuls run at ~1 GFLOP/s on CPU)" if "16" in self.dtype else ""
            raise ConfigError(f"dtype {self.dtype!r} is not supported{hint}; use one of {DTYPES}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"prompt_style {self.prompt_style!r} is not one of {PROMPT_STYLES}")
        if self.chat_format not in CHAT_FORMATS:
            raise ConfigError(f"chat_format {self.chat_format!r} is not one of {CHAT_FORMATS}")
        if self.lora is None and self.trainable.lora:
            raise ConfigError("trainable.lora is set but lora is None; set trainable.lora=False")
        if self.num_image_tokens >= self.max_context_len:
            raise ConfigError(
                f"max_context_len {self.max_context_len} leaves no room beside "
                f"{self.num_image_tokens} image tokens; raise it"
            )

    @property
    def num_image_tokens(self) -> int:
        """Language-model positions per image: 1024 patches / 4 = 256 for the real model."""
        return self.vision.num_patches // self.tokens_merged

    @property
    def projector_in_features(self) -> int:
        return self.vision.width * self.tokens_merged

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The modules LoRA wraps: as configured, else the language family's (``families.py``)."""
        if self.lora is not None and self.lora.target_modules is not None:
            return self.lora.target_modules
        return get_family(self.language.family).lora_targets

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiniGPTv2Config:
        """Inverse of ``to_dict``; unknown keys are an error, so a typo in config.json shows."""
        data = dict(data)
        try:
            lora = data.pop("lora", {})
            lora = None if lora is None else LoRAConfig(**_tuples(lora))
            return cls(
                vision=VisionConfig(**data.pop("vision", {})),
                language=LanguageConfig(**data.pop("language", {})),
                lora=lora,
                trainable=Trainable(**data.pop("trainable", {})),
                **data,
            )
        except TypeError as error:
            raise ConfigError(f"invalid model config: {error}") from None

    def replace(self, **changes: Any) -> MiniGPTv2Config:
        return dataclasses.replace(self, **changes)


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    # JSON turns tuples into lists; frozen dataclasses should hold tuples again.
    return {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}


def _require_positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(f"{type(config).__name__}.{name} must be positive, got {value}")


PRESETS: dict[str, MiniGPTv2Config] = {
    # The released MiniGPT-v2: EVA ViT-g/14 (39 of 40 blocks) at 448 px, LLaMA-2-7B-chat, LoRA q/v.
    "minigptv2-7b": MiniGPTv2Config(),
    # Same structure at toy sizes: 2 ViT blocks, 2 LLaMA layers, 112 px -> 64 patches -> 16 tokens.
    "tiny": MiniGPTv2Config(
        vision=VisionConfig(
            image_size=112,
            patch_size=14,
            width=32,
            depth=2,
            num_heads=4,
            mlp_hidden=64,
            pretrain_image_size=56,
        ),
        language=LanguageConfig(
            vocab_size=512,
            hidden_size=64,
            num_layers=2,
            num_heads=4,
            intermediate_size=128,
            max_position_embeddings=512,
        ),
        lora=LoRAConfig(rank=8, alpha=16),
        max_context_len=192,
        max_txt_len=256,
    ),
    # The shipped Shapes model, trained from scratch on 2 CPU cores (configs/shapes/*.yaml):
    # 112 px -> 8x8 patches -> 16 image tokens (stage 4 runs it at 168 px -> 36, as shipped);
    # everything trains, so no LoRA. The vocabulary size is replaced by that of the tokenizer
    # trained for it.
    "shapes": MiniGPTv2Config(
        vision=VisionConfig(
            image_size=112,
            patch_size=14,
            width=192,
            depth=4,
            num_heads=4,
            mlp_hidden=768,
            pretrain_image_size=112,
        ),
        language=LanguageConfig(
            vocab_size=600,
            hidden_size=256,
            num_layers=4,
            num_heads=4,
            intermediate_size=688,
            max_position_embeddings=512,
        ),
        lora=None,
        trainable=Trainable(vision=True, projector=True, lora=False, language_model=True),
        prompt_style="train",
        max_context_len=256,
        max_txt_len=256,
    ),
}
# The Shapes model on another family (issue 17): the same sizes, trained the same way, on Qwen2's
# decoder (q/k/v biases, 2 key/value heads shared by 4 query heads) instead of LLaMA's.
PRESETS["shapes-qwen2"] = PRESETS["shapes"].replace(
    language=dataclasses.replace(
        PRESETS["shapes"].language, family="qwen2", hf={"num_key_value_heads": 2}
    )
)


# -- Models by name -------------------------------------------------------------------------------
# Weights this package ships (or will ship) inside the installed package, loadable by name
# wherever a model folder is asked for (``--model NAME``, ``Assistant.load(NAME)``,
# ``init_from: NAME``); ``resolve_model`` is the one place that turns a name into a folder.
ASSETS = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class ShippedModel:
    """A model folder inside the package: what it is and, if it is absent, how to get it."""

    folder: Path
    about: str
    if_missing: str


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "shapes": ShippedModel(
        ASSETS / "shapes",
        "English Shapes model, the default",
        "reinstall the package (pip install -e .), or retrain it with scripts/train_shapes.sh",
    ),
    # Issue 17: the same recipe on English + Korean samples, with a tokenizer that has Hangul.
    "shapes-ko": ShippedModel(
        ASSETS / "shapes-ko",
        "English + Korean Shapes model",
        "it is not installed yet: train it with `scripts/train_shapes.sh shapes-ko` (about 2"
        " hours on 2 CPU cores) and copy runs/shapes-ko/stage4/model to"
        f" {ASSETS / 'shapes-ko'}, or pass that folder itself",
    ),
}
DEFAULT_MODEL = "shapes"
# "shipped": the default model, under the name stage configs have used since the first release.
SHIPPED_ALIAS = "shipped"
# The weights of the "shapes" preset this package ships, inside the installed package.
SHIPPED_MODEL = SHIPPED_MODELS[DEFAULT_MODEL].folder
# What --help says about a model argument (the rule ``resolve_model`` implements).
MODEL_NAME_RULE = (
    "a model folder, or the name of a model shipped with the package: "
    + ", ".join(SHIPPED_MODELS)
    + f" ({SHIPPED_ALIAS} = {DEFAULT_MODEL}); an existing folder of that name wins over the name"
    " (write a path, e.g. ./shapes-ko, to make the intent plain)"
)


def resolve_model(model: str | Path | None) -> Path:
    """The folder ``model`` names: None is the default shipped model; an existing path is itself
    (a path wins over a name); else a name of ``SHIPPED_MODELS`` (or ``"shipped"``) is its folder
    inside the package, checked to be installed. Anything else is returned as a path, for the
    loader to report, unless it is a bare word, which is reported here with the known names."""
    if model is None:
        return _shipped_folder(DEFAULT_MODEL)
    path = Path(model)
    if path.exists():
        return path
    name = DEFAULT_MODEL if str(model) == SHIPPED_ALIAS else str(model)
    if name in SHIPPED_MODELS:
        return _shipped_folder(name)
    if len(path.parts) == 1:  # a bare word: most likely a mistyped name
        raise CheckpointError(
            f"no folder {str(model)!r} here, and {str(model)!r} is not the name of a shipped model;"
            f" known names: {known_models()}"
        )
    return path


def known_models() -> str:
    """The shipped names, each with what it is and whether it is installed, for error messages."""
    rows = [
        f"{name} ({entry.about}; "
        + ("installed" if (entry.folder / "config.json").is_file() else "not installed")
        + ")"
        for name, entry in SHIPPED_MODELS.items()
    ]
    return ", ".join(rows)


def _shipped_folder(name: str) -> Path:
    entry = SHIPPED_MODELS[name]
    if not (entry.folder / "config.json").is_file():
        raise CheckpointError(
            f"the shipped model {name!r} is missing from {entry.folder}: {entry.if_missing}."
            f" Known names: {known_models()}"
        )
    return entry.folder


def get_preset(name: str) -> MiniGPTv2Config:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
