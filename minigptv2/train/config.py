"""A training stage as one typed config, read from YAML with ``key.sub=value`` overrides.

A stage says which model it starts from, which parts train, which data mixture it reads and how it
optimises; the loop in ``loop.py`` has no stage-specific branches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from minigptv2.config import SHIPPED_ALIAS, Trainable, resolve_model
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.hardware import native_bf16
from minigptv2.model.loss import LOSS_AVERAGES
from minigptv2.train.optim import OptimConfig

PRECISIONS = ("auto", "fp32", "bf16")
PARALLEL = ("auto", "ddp", "fsdp")
# ``init_from: shipped`` (or another name of ``config.SHIPPED_MODELS``, e.g. shapes-ko) names a
# model inside the installed package, so a fine-tuning config (configs/shapes/finetune.yaml)
# works from any folder without an earlier stage's run.
SHIPPED = SHIPPED_ALIAS


@dataclass(frozen=True)
class DataConfig:
    """Which samples a stage reads: a source name and, for mixtures, weights per task/dataset.

    ``path`` is the JSONL file of the ``custom`` source, or the data root of the ``paper`` source
    (the folder layout is in ``minigptv2/data/paper.py``).
    """

    source: str = "shapes"
    mix: dict[str, float] | None = None
    num_workers: int = 0
    path: str | None = None
    # Shapes only: questions about one scene packed into one row (processor.encode_packed); the
    # image and the template's start are then computed once for all of them.
    pack: int = 1
    # Shapes only: the world its scenes are drawn in (data.shapes.WORLDS), e.g. "varied" for
    # scenes of many sizes and aspect ratios beside the square ones.
    world: str = "square"
    # Shapes only: the language of its text (data.shapes_languages): "en", "ko", or "en+ko" for
    # each sample in one of the two, drawn by its index. The from-scratch tokenizer learns its
    # pieces from this stage's data, so a Korean run gets Hangul pieces.
    language: str = "en"

    def __post_init__(self) -> None:
        if self.pack < 1:
            raise ConfigError(f"data.pack must be at least 1, got {self.pack}")
        if self.pack > 1 and self.source != "shapes":
            raise ConfigError(
                f"data.pack={self.pack} packs Shapes scenes only; the {self.source!r} source "
                "needs data.pack=1"
            )
        from minigptv2.data.shapes import WORLDS

        if self.world not in WORLDS:
            raise ConfigError(
                f"unknown Shapes world data.world={self.world!r}; use one of {', '.join(WORLDS)}"
            )
        if self.world != "square" and self.source != "shapes":
            raise ConfigError(
                f"data.world applies to the Shapes source only; remove it for {self.source!r}"
            )
        from minigptv2.data.shapes_languages import languages

        languages(self.language)
        if self.language != "en" and self.source != "shapes":
            raise ConfigError(
                f"data.language applies to the Shapes source only; remove it for {self.source!r}"
            )


@dataclass(frozen=True)
class TrainConfig:
    # A model preset to build from scratch, or a folder in our format to continue from (a run's
    # ``out_dir/model``, a ``minigptv2 convert`` output, or a shipped model's name: "shipped",
    # "shapes-ko"...; see ``init_folder``).
    model: str = "shapes"
    init_from: str | None = None
    # A new language model (issue 17): a Hugging Face causal LM folder that replaces the preset's
    # language model (any family in minigptv2/families.py; its tokenizer and chat template come
    # along), with the vision encoder from the EVA file ``eva`` (else random) and a fresh
    # projector and LoRA. The first stage of a new alignment (configs/llm/); later stages
    # continue from its export with ``init_from``. Without ``llm``, ``eva`` gives a from-scratch
    # model (a preset) its vision encoder: an EVA file of the preset's ViT sizes, such as the
    # Shapes stage 0 writes (``minigptv2 pretrain-vision``, train/perception.py).
    llm: str | None = None
    eva: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    trainable: Trainable | None = None  # None keeps the model's own setting
    # The ViT's input side in pixels; None keeps the model's. Another size resamples the ViT's
    # position table (MiniGPT-v2 runs EVA's 224-px ViT at 448 px the same way) and changes the
    # number of image tokens, whose new layout the language model then learns.
    image_size: int | None = None
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    # Forward passes per micro-batch, over samples grouped by length: same gradient, less padding
    # (see data.Collator). 4 trains Shapes ~1.6x faster than 1.
    pieces: int = 1
    # How answer tokens are averaged into the loss (model/loss.py): "tokens" as the reference does,
    # or "samples" so that short answers weigh as much as long ones.
    loss_average: str = "tokens"
    optim: OptimConfig = field(default_factory=OptimConfig)
    # "auto": bf16 autocast where the hardware computes it natively, else fp32. On a CPU without
    # AVX512-BF16/AMX a bf16 matmul is emulated and ~200x slower than fp32 (measured: 0.3 vs 75
    # GFLOP/s on an AVX2-only EPYC).
    precision: str = "auto"
    gradient_checkpointing: bool = False
    # Under torchrun: "ddp" replicates the model on every rank, "fsdp" shards it (train/fsdp.py);
    # "auto" picks FSDP for a 1B+ parameter language model (the 7B size), else DDP.
    parallel: str = "auto"
    out_dir: str = "runs/train"
    save_every: int = 500
    log_every: int = 10
    # Periodic evaluation on a held-out split (rank 0, every ``eval_every`` steps and at the end;
    # None: never): ``eval_items`` questions per task of ``eval_benchmark``'s ``eval_split``.
    # "val" keeps the test split unseen while a run is being tuned.
    eval_every: int | None = None
    eval_items: int = 50
    eval_benchmark: str = "shapes"
    eval_split: str = "val"
    # The language its questions are asked in (the Shapes benchmark: en or ko).
    eval_language: str = "en"
    seed: int = 42
    # The tokenizer trained for a from-scratch model (ignored with init_from): its vocabulary
    # size and how many rendered samples it is trained on.
    tokenizer_vocab: int = 600
    tokenizer_samples: int = 20_000

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.parallel not in PARALLEL:
            raise ConfigError(f"parallel {self.parallel!r} is not one of {PARALLEL}")
        if self.loss_average not in LOSS_AVERAGES:
            raise ConfigError(f"loss_average {self.loss_average!r} is not one of {LOSS_AVERAGES}")
        counts = ("steps", "batch_size", "grad_accum", "pieces", "save_every", "log_every")
        for name in (*counts, "eval_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.llm is not None and self.init_from is not None:
            raise ConfigError(
                f"llm={self.llm!r} starts a model from a language-model folder and init_from="
                f"{self.init_from!r} continues a saved one; set only one (later stages of a new "
                "alignment continue from the first stage's export with init_from)"
            )
        if self.eva is not None and self.init_from is not None:
            raise ConfigError(
                f"eva={self.eva!r} gives a new model its vision encoder and init_from="
                f"{self.init_from!r} continues a saved one, whose encoder it already holds; set"
                " only one"
            )
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError(
                f"image_size must be a positive number of pixels, got {self.image_size}"
            )
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(
                f"eval_every must be at least 1, got {self.eval_every}; use null to never evaluate"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        try:
            nested = {
                "data": DataConfig(**data.pop("data", {})),
                "optim": OptimConfig(**data.pop("optim", {})),
            }
            trainable = data.pop("trainable", None)
            nested["trainable"] = None if trainable is None else Trainable(**trainable)
            return cls(**nested, **data)
        except TypeError as error:
            raise ConfigError(f"invalid training config: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a stage YAML and apply ``a.b=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        _set_dotted(data, key.strip(), yaml.safe_load(value))
    return TrainConfig.from_dict(data)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
        if not isinstance(data, dict):
            raise ConfigError(f"cannot set {key!r}: {parent!r} is not a section")
    data[leaf] = value


def init_folder(init_from: str | None) -> Path | None:
    """The model folder a stage continues from (None: build from the preset), checked to exist.

    A path, or the name of a model this package ships (``"shipped"``, ``"shapes"``,
    ``"shapes-ko"``: ``config.SHIPPED_MODELS``); an existing path wins over a name
    (``config.resolve_model``).
    """
    if init_from is None:
        return None
    try:
        folder = resolve_model(init_from)
    except CheckpointError as error:  # a shipped model that is not installed, or a bad name
        raise ConfigError(f"init_from {init_from}: {error}") from None
    if (folder / "config.json").is_file():
        return folder
    # A run exports to out_dir/model, so a missing "…/model" is usually an earlier stage's.
    earlier = f" (the stage whose out_dir is {folder.parent})" if folder.name == "model" else ""
    raise ConfigError(
        f"init_from {init_from} is not a model folder (no config.json). Train the earlier "
        f"stage first{earlier}, or start from a model you have: init_from={SHIPPED} is the model "
        "this package ships (configs/shapes/finetune.yaml starts from it), or any folder written "
        "by `minigptv2 train` (OUT_DIR/model) or `minigptv2 convert`"
    )


# A from-scratch tokenizer's vocabulary that works, by the stage's data.language: the shipped
# English model's 600; for Hangul, 1000 (scripts/train_shapes.sh shapes-ko): ~500 pieces go to
# the characters and byte pieces alone, and at 600 bilingual samples take 40% more tokens.
WORKING_VOCAB = {"en": 600}
WORKING_VOCAB_OTHERWISE = 1000


def vocabulary_advice(config: TrainConfig, required: int) -> str:
    """The error for a ``tokenizer_vocab`` below what its corpus needs (``required`` pieces, as
    SentencePiece counted them), with the setting that fixes it."""
    fix = max(required, WORKING_VOCAB.get(config.data.language, WORKING_VOCAB_OTHERWISE))
    where = "the English" if config.data.language == "en" else "the Korean and bilingual"
    return (
        f"tokenizer_vocab={config.tokenizer_vocab} is too small for the from-scratch tokenizer"
        f" of data.language={config.data.language}: the characters of its corpus, the 256 byte"
        f" pieces and the template's symbols need at least {required} pieces. Set"
        f" tokenizer_vocab={fix} (what works for {where} Shapes models; see README, 'The Shapes"
        " world in Korean')"
    )


def resolve_precision(precision: str) -> str:
    """``"auto"`` -> ``"bf16"`` on hardware with native bf16 matmuls, else ``"fp32"``."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"
