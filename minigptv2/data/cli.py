"""``minigptv2 data``: check a custom JSONL dataset, or write the Shapes world in that format.

minigptv2 data check FILE.jsonl [--model DIR]   # exit 0 if all rows are valid and fit the
                                                # model's limits, else 1 and "line N: ..."
minigptv2 data shapes --out DIR --n N --seed S [--split train] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

from minigptv2.config import MODEL_NAME_RULE
from minigptv2.data.shapes import SPLITS

# Rendering and PNG encoding are CPU-bound and independent per sample.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_command", required=True)
    # Subcommands format their help as the parent does (argparse does not pass it down).
    add_parser = partial(actions.add_parser, formatter_class=parser.formatter_class)
    check = add_parser("check", help="validate a custom JSONL file, listing bad rows")
    check.add_argument("file", help="a custom-format .jsonl file (see README, 'Your own data')")
    check.add_argument(
        "--model",
        help="the model to train from, whose tokenizer and length limits rows must fit: "
        f"{MODEL_NAME_RULE} (default: the shipped model, which configs/shapes/finetune.yaml "
        "starts from)",
    )
    shapes = add_parser("shapes", help="write Shapes samples in the custom JSONL format")
    shapes.add_argument("--out", required=True, help="folder for data.jsonl and images/")
    shapes.add_argument("--n", type=int, required=True, help="number of samples")
    shapes.add_argument("--seed", type=int, default=0, help="0 = the training stream's start")
    shapes.add_argument("--split", default="train", choices=SPLITS, help="which scenes")
    shapes.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="processes rendering images"
    )
    inspect = add_parser(
        "inspect", help="per dataset of a stage config: records, ratio and example samples"
    )
    inspect.add_argument("--config", required=True, help="a stage YAML")
    inspect.add_argument("--samples", type=int, default=1, help="examples shown per dataset")
    inspect.add_argument("overrides", nargs="*", help="key=value, e.g. data.path=/data/minigptv2")


def run(args: argparse.Namespace) -> int:
    """Check a custom JSONL dataset, or write Shapes samples in that format."""
    if args.data_command == "check":
        return _check(args.file, args.model)
    if args.data_command == "inspect":
        return _inspect(args)
    return _shapes(args)


def _check(file: str, model: str | None) -> int:
    from minigptv2.data.check import check_file, model_processor

    report = check_file(file, model_processor(model))
    for line, problem in report.bad:
        print(f"line {line}: {problem}")
    if report.ok:
        print(f"{report.path}: {report.rows} rows, all valid")
        return 0
    # The summary goes to stderr so stdout holds only the "line N: ..." reports.
    print(f"{report.path}: {len(report.bad)} of {report.rows} rows are bad", file=sys.stderr)
    return 1


def _shapes(args: argparse.Namespace) -> int:
    from minigptv2.data.export import write_shapes

    began = time.perf_counter()
    path = write_shapes(args.out, args.n, args.seed, args.split, args.workers)
    seconds = time.perf_counter() - began
    print(f"wrote {args.n} Shapes samples to {path} in {seconds:.1f} s")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """Build each dataset of a stage's mixture on its own, so one broken dataset does not hide
    the state of the others; exit 1 if any cannot be read."""
    from minigptv2.data.mixing import Mixture
    from minigptv2.errors import MiniGPTv2Error
    from minigptv2.prompts import render, to_text
    from minigptv2.train.config import DataConfig, load_train_config
    from minigptv2.train.data import build_mixture

    data = load_train_config(args.config, args.overrides).data
    names = list(data.mix) if data.mix else [None]
    total = sum(data.mix.values()) if data.mix else 1.0
    failed = 0
    for name in names:
        label = name or data.source
        try:
            only = None if name is None else {name: data.mix[name]}
            config = DataConfig(source=data.source, path=data.path, mix=only)
            mixture: Mixture = build_mixture(config)
            dataset = next(iter(mixture.datasets.values()))
            reader = getattr(dataset, "reader", None)
            records = f"{len(reader):,} records" if reader is not None else "generated"
            share = data.mix[name] / total if name else 1.0
            print(f"{label}: {records}, {share:.1%} of draws")
            for position in range(args.samples):
                sample = mixture[(mixture.names[0], position)]
                text = to_text(render(sample.turns, image=sample.image is not None))
                print(f"  {text[:300]}")
        except MiniGPTv2Error as error:
            failed += 1
            print(f"{label}: cannot be read: {error}")
    return 1 if failed else 0
