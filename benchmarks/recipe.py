"""Training throughput of the Shapes recipe: supervised answer tokens per second of each stage.

Each stage config a checkout has (``configs/shapes/stage{1,2,3,4}.yaml``) runs its own data
mixture, collator (pieces, packing), image size and the training loop's own optimisation step on
the ``shapes`` model size from random weights, for a few steps. The time of a step includes
collating its batch, because the recipe collates in the training process (``data.num_workers:
0``). An answer token is a position the loss supervises; that is what a step learns from, whatever
the padding or packing. The recipe's rate weighs each stage by its configured steps: it is the
answer tokens of the whole recipe over its time.

    python benchmarks/recipe.py                        # this checkout, a table
    python benchmarks/recipe.py --against ../old --json  # an older checkout too, in one run

``--against DIR`` runs this file again in a subprocess that imports ``minigptv2`` from ``DIR``
(an older commit checked out beside this one, e.g. ``git worktree add ../old 672e139``), with
``DIR``'s stage configs and shipped tokenizer, alternating old and new rounds so that both see
the same machine; each side keeps its best round. This file therefore uses only the package API
that both sides have, and imports nothing from ``benchmarks``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STAGES = (1, 2, 3, 4)  # a checkout without a stage's config skips it


def stage_config(root: Path, stage: int) -> Path:
    return root / f"configs/shapes/stage{stage}.yaml"


def measure_stage(root: Path, stage: int, steps: int) -> dict[str, float]:
    """Answer tokens/s of ``steps`` optimisation steps (after one warm-up) of one stage."""
    import torch

    from minigptv2.config import get_preset
    from minigptv2.constants import IGNORE_INDEX
    from minigptv2.model import MiniGPTv2
    from minigptv2.processor import Processor
    from minigptv2.tokenizer import Tokenizer
    from minigptv2.train import loop
    from minigptv2.train.config import load_train_config
    from minigptv2.train.data import Collator, build_mixture
    from minigptv2.train.distributed import World
    from minigptv2.train.optim import build_optimizer

    config = load_train_config(stage_config(root, stage), ["grad_accum=1"])
    tokenizer = Tokenizer(str(root / "minigptv2/assets/shapes/tokenizer.model"))
    preset = get_preset("shapes")
    model_config = preset.replace(
        language=dataclasses.replace(preset.language, vocab_size=tokenizer.vocab_size)
    )
    torch.manual_seed(0)
    model = MiniGPTv2(model_config).train()
    trainable = getattr(config, "trainable", None)  # what the stage trains (a frozen ViT: none)
    if trainable is not None:
        model.set_trainable(trainable)
    image_size = getattr(config, "image_size", None)  # stage 4 reads 36 image tokens, not 16
    if image_size is not None:
        model.set_image_size(image_size)
    optimizer = build_optimizer(model, config.optim)
    mixture = build_mixture(config.data, "train", config.seed)
    collate = Collator(Processor(tokenizer, model.config), pieces=config.pieces)

    def keys(step: int) -> list[Any]:
        first = step * config.batch_size
        return [(mixture.choose(n), n) for n in range(first, first + config.batch_size)]

    samples = [[mixture[key] for key in keys(step)] for step in range(steps + 1)]
    tokens, seconds = 0, 0.0
    for step, batch_samples in enumerate(samples):
        began = time.perf_counter()
        pieces = collate(batch_samples)
        answers = sum(int((p["labels"][:, 1:] != IGNORE_INDEX).sum()) for p in pieces)
        loop._optimisation_step(model, model, optimizer, iter([pieces]), config, World())
        if step:  # the first step allocates AdamW's state
            seconds += time.perf_counter() - began
            tokens += answers
    return {
        "steps": config.steps,
        "answer_tokens_per_step": round(tokens / steps, 1),
        "step_s": round(seconds / steps, 4),
        "train_answer_tokens_per_s": round(tokens / seconds, 1),
    }


def measure(root: Path, steps: int) -> dict[str, Any]:
    """Every stage of the recipe at ``root``, and the recipe's tokens/s over all of them."""
    stages = {
        f"stage{stage}": measure_stage(root, stage, steps)
        for stage in STAGES
        if stage_config(root, stage).is_file()
    }
    # Weighed by each stage's configured steps (not a per-stage average): the recipe's own rate.
    tokens = sum(s["steps"] * s["answer_tokens_per_step"] for s in stages.values())
    seconds = sum(s["steps"] * s["step_s"] for s in stages.values())
    return {"stages": stages, "train_answer_tokens_per_s": round(tokens / seconds, 1)}


def _run_checkout(root: Path, steps: int) -> dict[str, Any]:
    """``measure`` in a fresh process that imports ``minigptv2`` from ``root``."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, str(Path(__file__).resolve()), "--root", str(root)]
    command += ["--steps", str(steps), "--json", "--here"]
    done = subprocess.run(
        command, cwd=root, env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"measuring {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def compare(new: Path, old: Path, steps: int, rounds: int) -> dict[str, Any]:
    """Old and new checkouts in alternating rounds; each side's best round per stage."""
    best: dict[str, dict[str, Any]] = {}
    for round_number in range(rounds):
        for side, root in (("old", old), ("new", new)):
            print(f"round {round_number + 1}/{rounds}: {side} ({root})", file=sys.stderr)
            result = _run_checkout(root, steps)
            kept = best.get(side)
            if (
                kept is None
                or result["train_answer_tokens_per_s"] > kept["train_answer_tokens_per_s"]
            ):
                best[side] = result
    ratio = best["new"]["train_answer_tokens_per_s"] / best["old"]["train_answer_tokens_per_s"]
    return {"old": best["old"], "new": best["new"], "new_over_old": round(ratio, 2)}


def _table(result: dict[str, Any]) -> str:
    if "new_over_old" not in result:
        rows = ["| stage | answer tokens/step | step s | answer tokens/s |", "|---|---|---|---|"]
        for name, stage in result["stages"].items():
            rows.append(
                f"| {name} | {stage['answer_tokens_per_step']} | {stage['step_s']} | "
                f"{stage['train_answer_tokens_per_s']} |"
            )
        rows.append(f"| recipe | | | {result['train_answer_tokens_per_s']} |")
        return "\n".join(rows)
    old, new = result["old"], result["new"]
    rows = ["| stage | old tokens/s | new tokens/s | new / old |", "|---|---|---|---|"]
    for name in new["stages"]:
        b = new["stages"][name]["train_answer_tokens_per_s"]
        if name not in old["stages"]:  # a stage the old recipe did not have
            rows.append(f"| {name} | - | {b} | - |")
            continue
        a = old["stages"][name]["train_answer_tokens_per_s"]
        rows.append(f"| {name} | {a} | {b} | {b / a:.2f} |")
    rows.append(
        f"| recipe | {old['train_answer_tokens_per_s']} | {new['train_answer_tokens_per_s']} | "
        f"{result['new_over_old']} |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--against", type=Path, help="an older checkout to compare with")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per stage")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (--against)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.against is not None:
        result = compare(root, args.against.resolve(), args.steps, args.rounds)
    elif args.here:
        result = measure(root, args.steps)
    else:
        result = _run_checkout(root, args.steps)
    print(json.dumps(result) if args.json else _table(result))


if __name__ == "__main__":
    main()
