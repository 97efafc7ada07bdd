"""Timing, peak memory and process isolation shared by every benchmark section.

Times are the best of N repeats after warm-up: on a machine shared with other jobs the minimum is
the least disturbed estimate of what the code itself costs.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any


def log(message: str) -> None:
    """Progress goes to stderr: stdout is reserved for the result (one JSON object)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def best_time(
    run: Callable[[], Any], *, repeats: int = 3, warmup: int = 1, budget_s: float | None = None
) -> float:
    """Smallest wall time of ``repeats`` calls of ``run`` after ``warmup`` untimed calls.

    With ``budget_s``, stop repeating once the timed calls have used that much time (at least one
    timed call always runs), so slow paths such as emulated bf16 cannot blow the time limit.
    """
    for _ in range(warmup):
        run()
    best = float("inf")
    spent = 0.0
    for _ in range(max(1, repeats)):
        began = time.perf_counter()
        run()
        elapsed = time.perf_counter() - began
        best = min(best, elapsed)
        spent += elapsed
        if budget_s is not None and spent >= budget_s:
            break
    return best


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory in MiB (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages, recorded so a reader can judge contention."""
    return [round(value, 2) for value in os.getloadavg()]


def _in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # Anything a library prints to stdout would corrupt the JSON the parent prints: send the
    # child's stdout (file descriptor 1, so C code too) to stderr.
    sys.stdout.flush()
    os.dup2(2, 1)
    result = function(*args)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def run_isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh process and return its result with ``peak_rss_mb``.

    A process of its own gives every section its own memory high-water mark and returns the
    memory when it ends. ``spawn`` rather than ``fork``: forking after OpenMP threads exist is
    unsafe.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_in_child, function, *args).result()


def run_here(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run in this process (tests; ``--in-process``); the peak covers everything before too."""
    result = function(*args)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result
