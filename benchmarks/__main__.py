"""``python -m benchmarks``: measure, print a table (or ``--json``: one JSON object), save JSON.

    python -m benchmarks --quick --json        # the contract: under 10 minutes, JSON on stdout
    python -m benchmarks                       # the standard run: table, benchmarks/results.json
    python -m benchmarks --full                # adds ViT-g + LLaMA-2-7B at real size (long)

Progress goes to stderr; stdout holds only the table or the JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import headline, table, targets
from benchmarks.suite import MODELS, PLANS, run_suite
from minigptv2.errors import MiniGPTv2Error

DEFAULT_OUT = Path("benchmarks/results.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="fewer repeats; under 10 minutes")
    scale.add_argument("--smoke", action="store_true", help="toy sizes, for tests (seconds)")
    parser.add_argument("--full", action="store_true", help="add the real-size ViT-g + LLaMA-2-7B")
    parser.add_argument(
        "--full-cap", type=float, default=60.0, metavar="S",
        help="seconds one full-size timing may take before it is measured on fewer tokens",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object, no table")
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"write the JSON here (default without --json: {DEFAULT_OUT})",
    )  # fmt: skip
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}"
    )
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="compute threads (default: PyTorch's choice, one per core)",
    )  # fmt: skip
    parser.add_argument(
        "--in-process", action="store_true",
        help="run every section in this process (peak memory then covers the whole run)",
    )  # fmt: skip
    return parser


def set_threads(count: int) -> None:
    """Use ``count`` threads here and in the section processes (they read the environment)."""
    import torch

    if count < 1:
        raise SystemExit(f"error: --threads must be at least 1, got {count}")
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch.set_num_threads(count)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "standard"]
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    out = args.out if args.out is not None or args.json else DEFAULT_OUT
    if args.threads is not None:
        set_threads(args.threads)
    try:
        # Nothing but the result may reach stdout.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_suite(
                plan, models, full=args.full, full_cap_s=args.full_cap, isolate=not args.in_process
            )
    except MiniGPTv2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result["targets"] = targets(result)
    document = {**headline(result), **result}
    text = json.dumps(document, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"[bench] wrote {out}", file=sys.stderr)
    print(text if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
