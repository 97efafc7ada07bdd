"""``minigptv2 convert``: the released files, or a released checkpoint on one of our folders,
in our own checkpoint format.

    minigptv2 convert --eva eva_vit_g.pth --llama Llama-2-7b-chat-hf \\
        --checkpoint minigptv2_checkpoint.pth --out minigptv2-7b
    minigptv2 convert --checkpoint minigptv2_checkpoint.pth --base minigptv2-7b --out other
    ... --merge-lora     fold LoRA into the LLaMA weights for export (config "lora": null)
    ... --no-strict      load what matches and print the report instead of refusing

Only light imports at module level: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minigptv2.checkpoints.options import add_released_arguments
from minigptv2.constants import RELEASED_IMAGE_SIZE
from minigptv2.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``convert``; the released files' options are shared with every command that
    loads a model (``options.py``)."""
    add_released_arguments(parser)
    parser.add_argument(
        "--base", type=Path, help="one of our folders to apply --checkpoint to (instead of --eva)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (our format)")
    parser.add_argument(
        "--merge-lora", action="store_true", help="merge LoRA into the base weights for export"
    )
    parser.add_argument(
        "--trainable-only",
        action="store_true",
        help="save only projector + LoRA, recording the base files (default: the whole model)",
    )


def run(args: argparse.Namespace) -> int:
    """Convert released MiniGPT-v2 files into our checkpoint format."""
    from minigptv2.checkpoints.merge import merge_lora
    from minigptv2.checkpoints.pretrained import apply_released_checkpoint, save_pretrained
    from minigptv2.checkpoints.released import load_released

    _check_combination(args)
    if args.base is not None:
        model, tokenizer = apply_released_checkpoint(args.base, args.checkpoint, strict=args.strict)
    else:
        model, tokenizer = load_released(
            args.eva,
            args.llama,
            args.checkpoint,
            strict=args.strict,
            dtype=args.dtype or "float32",
            image_size=args.image_size or RELEASED_IMAGE_SIZE,
            vision_heads=args.vision_heads,
        )
    report = model.load_report
    if report.ok:  # a non-strict load with problems has already printed its report
        print(report.format())
    if args.merge_lora:
        merge_lora(model)
    save_pretrained(model, tokenizer, args.out, full=not args.trainable_only)
    contents = "projector + LoRA" if args.trainable_only else "full model"
    print(f"wrote {args.out} ({contents}{', LoRA merged' if args.merge_lora else ''})")
    return 0


def _check_combination(args: argparse.Namespace) -> None:
    released = args.eva is not None or args.llama is not None
    if args.base is not None and released:
        raise ConfigError("pass either --base DIR or --eva FILE --llama DIR, not both")
    if args.base is not None and args.checkpoint is None:
        raise ConfigError("--base needs --checkpoint FILE (the released projector + LoRA)")
    if args.base is None and (args.eva is None or args.llama is None):
        raise ConfigError(
            "pass --eva FILE --llama DIR [--checkpoint FILE], or --checkpoint FILE --base DIR"
        )
    if args.merge_lora and args.trainable_only:
        raise ConfigError(
            "--merge-lora changes the LLaMA weights, so the whole model must be saved;"
            " drop --trainable-only"
        )
