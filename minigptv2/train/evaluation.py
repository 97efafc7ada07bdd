"""Periodic evaluation during training: the benchmark runner on a held-out split, on rank 0.

``eval_every: N`` in a stage config scores the model every N steps and after the last one with
the same code as ``minigptv2 eval`` (``minigptv2.eval.runner.evaluate``), so a training curve and
a final evaluation report the same numbers. Generation is greedy, the model runs in eval mode and
the torch RNG is forked, so a run with evaluation trains exactly like one without.
"""

from __future__ import annotations

from typing import Any

import torch

from minigptv2.errors import ConfigError
from minigptv2.model import MiniGPTv2
from minigptv2.processor import Processor
from minigptv2.prompts import chat_format
from minigptv2.train.config import TrainConfig

# Generation batch: the tiny and Shapes models answer 16 questions at once comfortably.
EVAL_BATCH = 16


def check_eval_config(config: TrainConfig) -> None:
    """Fail at start-up, not hours into a run, on a benchmark or split that does not exist."""
    if config.eval_every is None:
        return
    from minigptv2.eval.runner import BENCHMARKS

    if config.eval_benchmark not in BENCHMARKS:
        raise ConfigError(
            f"eval_benchmark {config.eval_benchmark!r} is unknown; use one of "
            f"{', '.join(BENCHMARKS)} (or eval_every=null to train without evaluation)"
        )
    splits = getattr(BENCHMARKS[config.eval_benchmark], "splits", None)
    if splits is not None and config.eval_split not in splits:
        raise ConfigError(
            f"{config.eval_benchmark} has no split {config.eval_split!r}; set eval_split to one "
            f"of {', '.join(splits)}"
        )
    languages = getattr(BENCHMARKS[config.eval_benchmark], "languages", ("en",))
    if config.eval_language not in languages:
        raise ConfigError(
            f"{config.eval_benchmark} is asked in {', '.join(languages)} only; set eval_language "
            f"to one of them, not {config.eval_language!r}"
        )


def due(step: int, config: TrainConfig) -> bool:
    """Evaluate after ``step`` steps? Every ``eval_every`` steps and after the last one."""
    every = config.eval_every
    return every is not None and (step % every == 0 or step == config.steps)


def evaluate_model(model: MiniGPTv2, processor: Processor, config: TrainConfig) -> dict[str, Any]:
    """Score ``model`` on the held-out split; leaves it in train mode (frozen parts in eval)."""
    from minigptv2.assistant import Assistant
    from minigptv2.eval.runner import evaluate

    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]):
            style = chat_format(model.config, processor.tokenizer, training=False)
            assistant = Assistant(model, processor, style=style)
            summary = evaluate(
                assistant,
                config.eval_benchmark,
                config.eval_split,
                per_task=config.eval_items,
                batch_size=EVAL_BATCH,
                language=config.eval_language,
            )
    finally:
        # MiniGPTv2.train keeps a frozen vision encoder in eval mode.
        model.train(was_training)
    return summary


def headline(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's top-level scores (``refer_acc50``, ``vqa_acc``, ...), without counts."""
    return {
        name: float(value)
        for name, value in summary.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def short_names(scores: dict[str, float], benchmark: str) -> dict[str, str]:
    """The benchmark's headline scores, ``refer_acc50=0.91`` -> ``refer=0.91``: short enough for a
    progress-bar postfix (breakdowns such as ``refer_acc50_unseen`` stay in the log only)."""
    from minigptv2.eval.runner import BENCHMARKS

    names = getattr(BENCHMARKS[benchmark], "headline", None) or tuple(scores)
    return {name.split("_")[0]: f"{scores[name]:.2f}" for name in names if name in scores}
