"""The ``minigptv2`` command: one entry point, subcommands from one table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from minigptv2.checkpoints import convert
from minigptv2.data import cli as data_cli
from minigptv2.errors import MiniGPTv2Error
from minigptv2.serve import terminal


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    from minigptv2.config import PRESETS

    parser.add_argument(
        "--preset", default="minigptv2-7b", choices=sorted(PRESETS), help="model size to count"
    )
    parser.add_argument(
        "--llm",
        type=Path,
        help="a Hugging Face causal LM folder (only its config.json is read): the preset's"
        " MiniGPT-v2 with this language model",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _info(args: argparse.Namespace) -> int:
    """Parameter counts per component, computed from the model built on the meta device."""
    from minigptv2.config import get_preset
    from minigptv2.model.summary import component_summary

    config = get_preset(args.preset)
    name = args.preset
    if args.llm is not None:
        from minigptv2.checkpoints.language_folder import read_language_config_only

        language = read_language_config_only(args.llm)
        config = config.replace(language=language)
        name = f"{args.preset} on {args.llm} ({language.family})"
    summary = component_summary(config)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{name}: {config.num_image_tokens} image tokens, dtype {config.dtype}")
    print(f"{'component':<16}{'parameters':>16}  trainable")
    for name, row in summary.items():
        print(f"{name:<16}{row['params']:>16,}  {row['trainable']}")
    total = sum(row["params"] for row in summary.values())
    trainable = sum(row["params"] for row in summary.values() if row["trainable"])
    print(f"{'total':<16}{total:>16,}  ({trainable:,} trainable)")
    return 0


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="a stage YAML, e.g. configs/shapes/stage1.yaml"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. steps=100 optim.lr=1e-4"
    )


def _train(args: argparse.Namespace) -> int:
    """Train one stage (under torchrun: data-parallel over all processes)."""
    from minigptv2.train.config import load_train_config
    from minigptv2.train.loop import train

    config = load_train_config(args.config, args.overrides)
    try:
        train(config, resume=args.resume)
    except KeyboardInterrupt:
        print(
            f"stopped; continue with: minigptv2 train --config {args.config} --resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _pretrain_vision_arguments(parser: argparse.ArgumentParser) -> None:
    from minigptv2.train.perception import PerceptionConfig

    default = PerceptionConfig()
    parser.add_argument("--model", default=default.model, help="the preset whose ViT is trained")
    parser.add_argument("--out", default=default.out_dir, help="folder for eva_vit.safetensors")
    parser.add_argument("--steps", type=int, default=default.steps, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=default.batch_size, help="scenes a step")
    parser.add_argument(
        "--recolour", type=float, default=default.recolour, help="share of recoloured images"
    )
    parser.add_argument("--seed", type=int, default=default.seed, help="scenes and weights")


def _pretrain_vision(args: argparse.Namespace) -> int:
    """Stage 0 of a from-scratch model: pretrain its ViT on dense Shapes labels (an EVA file)."""
    from minigptv2.train.perception import PerceptionConfig, pretrain_vision

    config = PerceptionConfig(
        model=args.model,
        out_dir=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        recolour=args.recolour,
        seed=args.seed,
    )
    path = pretrain_vision(config)
    print(f"vision encoder saved to {path}; train stage 1 with eva={path}")
    return 0


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--api", action="store_true", help="OpenAI-compatible /v1/chat/completions")
    mode.add_argument("--ui", action="store_true", help="the Gradio demo in a browser")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (local only)")
    parser.add_argument("--port", type=int, help="default 8000 (--api) or 7860 (--ui); 0: any")
    limits = parser.add_argument_group("HTTP API access and limits (--api)")
    limits.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (or set it in "
                        "MINIGPTV2_API_KEY)")  # fmt: skip
    limits.add_argument("--max-body-mb", type=float, default=28.0, help="request size limit")
    limits.add_argument("--max-image-side", type=int, default=4096, help="pixels per side")
    limits.add_argument("--max-tokens", type=int, default=512, help="largest max_tokens allowed")
    limits.add_argument("--max-queue", type=int, default=32, help="requests waiting; then 503")
    terminal.add_model_arguments(parser)


def _serve(args: argparse.Namespace) -> int:
    """Serve a model: the OpenAI-compatible HTTP API (--api) or the Gradio demo (--ui)."""
    if args.api:
        from minigptv2.serve import api

        return api.run(args)
    from minigptv2.serve import ui

    return ui.run(args)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except where there is none worth showing: no
    value (None), on/off flags, and help texts that state their default themselves."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or isinstance(default, bool) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "info": (_info_arguments, _info),
    "convert": (convert.add_arguments, convert.run),
    "pretrain-vision": (_pretrain_vision_arguments, _pretrain_vision),
    "train": (_train_arguments, _train),
    "data": (data_cli.add_arguments, data_cli.run),
    "generate": (terminal.add_generate_arguments, terminal.run_generate),
    "chat": (terminal.add_chat_arguments, terminal.run_chat),
    "demo": (terminal.add_demo_arguments, terminal.run_demo),
    "eval": (terminal.add_eval_arguments, terminal.run_eval),
    "serve": (_serve_arguments, _serve),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigptv2", description="MiniGPT-v2 in PyTorch", formatter_class=DefaultsHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        subparser = subparsers.add_parser(
            name,
            help=(run.__doc__ or "").split("\n")[0],
            formatter_class=DefaultsHelpFormatter,
        )
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MiniGPTv2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
