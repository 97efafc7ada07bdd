"""Benchmark: writing the Shapes world as a custom JSONL dataset, and checking it.

    python benchmarks/shapes_generation.py [--n 20000] [--workers 1 2]

Prints one row per worker count: wall seconds to write N samples (images as PNG + data.jsonl, the
``minigptv2 data shapes`` path), samples per second, CPU milliseconds per sample (all processes;
unlike wall time it hardly moves when other jobs share the cores), megabytes written, and seconds
for ``minigptv2 data check`` to validate the result (every image decoded). The issue's target is
20k samples in under a minute on a 2-core CPU. Output goes to a temporary folder, deleted after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from a checkout, the package is found even without `pip install -e .`.
if importlib.util.find_spec("minigptv2") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigptv2.data.check import check_file
from minigptv2.data.export import write_shapes


def _megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="samples to write")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"Shapes generation, {args.n} samples, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'workers':>7} {'write s':>8} {'samples/s':>10} {'cpu ms/sample':>14} {'MB':>6} "
        f"{'check s':>8} {'bad':>4}"
    )
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as folder:
            began, cpu = time.perf_counter(), _cpu_seconds()
            path = write_shapes(folder, args.n, args.seed, workers=workers)
            written = time.perf_counter() - began
            cpu_ms = (_cpu_seconds() - cpu) / args.n * 1000
            began = time.perf_counter()
            report = check_file(path)
            checked = time.perf_counter() - began
            print(
                f"{workers:>7} {written:>8.1f} {args.n / written:>10.0f} {cpu_ms:>14.2f} "
                f"{_megabytes(Path(folder)):>6.0f} {checked:>8.1f} {len(report.bad):>4}"
            )


if __name__ == "__main__":
    main()
