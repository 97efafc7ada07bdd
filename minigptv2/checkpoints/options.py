"""The command-line options that name a model's files, shared by every command that loads one.

``generate``, ``chat``, ``demo``, ``eval`` and ``serve`` (through ``serve/terminal.py``) and
``convert`` take the same options for the released files, each documented here once, so a file
that needs ``--image-size`` or ``--vision-heads`` to convert also needs (and accepts) it to chat.
The commands that answer (all but ``convert``) also take ``--quantize int8|int4``.

Only light imports: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minigptv2.constants import RELEASED_IMAGE_SIZE
from minigptv2.errors import ConfigError


def add_released_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--eva --llama --checkpoint`` and how to load them: strictness, dtype, image size, heads."""
    parser.add_argument("--eva", type=Path, help="released eva_vit_g.pth (with --llama)")
    parser.add_argument("--llama", type=Path, help="a Llama-2-7b-chat-hf folder (with --eva)")
    parser.add_argument(
        "--checkpoint", type=Path, help="released minigptv2_checkpoint.pth: projector and LoRA"
    )
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="load what matches and print the report instead of refusing mismatched files",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        help="dtype of the frozen weights (default: a saved folder's own; float32 for --eva)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="input resolution of the released files; EVA's pos_embed is resampled to it "
        f"(default: {RELEASED_IMAGE_SIZE}, MiniGPT-v2's)",
    )
    parser.add_argument(
        "--vision-heads",
        type=int,
        help="ViT attention heads of the released files, if the ViT width is not a multiple of 88",
    )


# Weight-only quantizations of the language model (``model/quantize.py``; ``Assistant.load`` maps
# each name to its function). Spelled here so that building the parser imports no torch.
QUANTIZATIONS = ("int8", "int4")


def add_quantize_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--quantize int8|int4`` for the commands that load a model to answer with it."""
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="weight-only int8 or int4 for the language model's linear layers: faster CPU "
        "decoding, less memory, a small accuracy cost (default: the model's own dtype)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="the same as --quantize int8 (kept for old scripts)"
    )


def quantization(args: argparse.Namespace) -> str | None:
    """The quantization ``args`` ask for; ``--int8`` beside another ``--quantize`` is refused."""
    chosen = getattr(args, "quantize", None)
    if getattr(args, "int8", False):
        if chosen not in (None, "int8"):
            raise ConfigError(f"--int8 and --quantize {chosen} disagree; pass one of them")
        return "int8"
    return chosen
