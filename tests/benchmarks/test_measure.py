from __future__ import annotations

import itertools
import time

from benchmarks.measure import best_time, run_isolated


def test_best_time_is_the_fastest_timed_call_after_warmup():
    durations = iter([0.05, 0.03, 0.01, 0.02])  # the first is the untimed warm-up
    best = best_time(lambda: time.sleep(next(durations)), repeats=3, warmup=1)
    assert 0.01 <= best < 0.02


def test_budget_stops_repeating_but_always_times_once():
    calls = itertools.count()
    best_time(lambda: (next(calls), time.sleep(0.02)), repeats=50, warmup=0, budget_s=0.05)
    assert 1 <= next(calls) <= 4


def test_isolated_section_reports_its_own_peak_memory():
    result = run_isolated(dict, {"answer": 42})
    assert result["answer"] == 42
    assert result["peak_rss_mb"] > 1
