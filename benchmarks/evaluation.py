"""Evaluation throughput: the Shapes benchmark through ``minigptv2.eval.runner.evaluate``.

Items/s covers what a user waits for: building the held-out scenes, batched generation with each
task's answer budget, and scoring. A random model rarely stops early, so its answers run to the
budget; the trained model stops at ``</s>``.
"""

from __future__ import annotations

import time
from typing import Any

from minigptv2.assistant import Assistant
from minigptv2.eval.runner import evaluate
from minigptv2.eval.shapes import MAX_NEW_TOKENS


def measure_evaluation(assistant: Assistant, *, per_task: int, batch_size: int) -> dict[str, Any]:
    began = time.perf_counter()
    evaluate(assistant, "shapes", "test", per_task=per_task, batch_size=batch_size)
    seconds = time.perf_counter() - began
    items = per_task * len(MAX_NEW_TOKENS)
    return {
        "eval_items": items,
        "eval_batch": batch_size,
        "eval_s": round(seconds, 3),
        "eval_items_per_s": round(items / seconds, 2),
    }
