"""The benchmarked configurations and the inputs they are measured on.

* ``issue-tiny`` -- the tiny configuration of issue 8, on which the reference code's timings were
  taken: ViT 176 wide x 2 blocks at 224 px (2 heads of 88 as in EVA, MLP ``int(176 * 4.3637)``),
  LLaMA 128 wide x 2 layers (4 heads, MLP 344 = LLaMA-2's 11008/4096 ratio, LLaMA-2's 32000-word
  vocabulary), LoRA r=64 on q/v, fp32; MiniGPT-v2's stages train the projector and LoRA.
* ``shapes`` -- the shipped Shapes model (``Assistant.load()``); everything trains.
* ``mid-100m`` -- between the two: ViT 512 x 8 at 224 px, LLaMA 768 x 6 with the 32000-word
  vocabulary (about 120M parameters), LoRA r=64, trained as MiniGPT-v2 is.

Random models use the Shapes tokenizer (its ids are a subset of the 32000-word vocabulary), and
every model reads the same Shapes scenes and prompts, so only the model differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from minigptv2.assistant import SHIPPED_MODEL, Assistant
from minigptv2.config import LanguageConfig, LoRAConfig, MiniGPTv2Config, VisionConfig
from minigptv2.data.sample import Sample
from minigptv2.data.shapes import evaluation_set
from minigptv2.errors import ConfigError
from minigptv2.model import MiniGPTv2
from minigptv2.processor import Processor
from minigptv2.prompts import TRAIN_STYLE
from minigptv2.tokenizer import Tokenizer
from minigptv2.train.config import DataConfig
from minigptv2.train.data import build_mixture

ISSUE_TINY = MiniGPTv2Config(
    vision=VisionConfig(
        image_size=224,
        patch_size=14,
        width=176,
        depth=2,
        num_heads=2,
        mlp_hidden=int(176 * 4.3637),
        pretrain_image_size=224,
    ),
    language=LanguageConfig(
        vocab_size=32000, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=344
    ),
    lora=LoRAConfig(rank=64, alpha=16),
    max_context_len=512,
    max_txt_len=512,
    prompt_style="train",
)

MID_100M = MiniGPTv2Config(
    vision=VisionConfig(
        image_size=224,
        patch_size=14,
        width=512,
        depth=8,
        num_heads=8,
        mlp_hidden=2048,
        pretrain_image_size=224,
    ),
    language=LanguageConfig(
        vocab_size=32000, hidden_size=768, num_layers=6, num_heads=12, intermediate_size=2048
    ),
    lora=LoRAConfig(rank=64, alpha=16),
    max_context_len=512,
    max_txt_len=512,
    prompt_style="train",
)

RANDOM_CONFIGS: dict[str, MiniGPTv2Config] = {"issue-tiny": ISSUE_TINY, "mid-100m": MID_100M}
SHIPPED = "shapes"
MODELS = ("issue-tiny", SHIPPED, "mid-100m")


@dataclass(frozen=True)
class Workload:
    """How hard a section works: batch sizes, token counts and repeats."""

    train_batch: int = 8
    train_steps: int = 5
    new_tokens: int = 32
    repeats: int = 3
    eval_per_task: int = 8
    eval_batch: int = 8


def build_assistant(
    name: str, config: MiniGPTv2Config | None = None, dtype: str | None = None
) -> Assistant:
    """The shipped model, or a randomly initialised one of the named (or given) configuration.

    ``dtype`` ("float32", "bfloat16") overrides the dtype of the frozen weights.
    """
    if name == SHIPPED and config is None:
        return Assistant.load(dtype=dtype)
    if config is None:
        if name not in RANDOM_CONFIGS:
            raise ConfigError(f"unknown benchmark model {name!r}; choose one of {MODELS}")
        config = RANDOM_CONFIGS[name]
    if dtype is not None:
        config = config.replace(dtype=dtype)
    torch.manual_seed(0)
    model = MiniGPTv2(config)
    tokenizer = Tokenizer(SHIPPED_MODEL)
    return Assistant(model, Processor(tokenizer, config), style=TRAIN_STYLE)


def scenes(count: int, task: str = "grounding") -> list[tuple[Image.Image, str]]:
    """``count`` held-out Shapes images with their benchmark instruction."""
    return [(sample.image, sample.turns[0].user) for sample in evaluation_set(task, count)]


def training_samples(count: int, seed: int = 0) -> list[Sample]:
    """``count`` Shapes training samples drawn from the default task mixture."""
    mixture = build_mixture(DataConfig(source="shapes"), "train", seed)
    return [mixture[(mixture.choose(n), n)] for n in range(count)]
