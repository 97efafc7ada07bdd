"""What one benchmark run does: the machine, then each model in its own process, then (``--full``)
the real sizes. Returns one JSON-ready dict; ``report`` turns it into the table and headline keys.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.measure import best_time, load_average, log, run_here, run_isolated
from benchmarks.setups import MODELS, RANDOM_CONFIGS, SHIPPED, Workload
from minigptv2.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """A run's scale. ``smoke`` is for tests: toy sizes, one repeat, seconds in total."""

    name: str
    workload: Workload
    matmul_max_size: int
    memory_mebibytes: int


PLANS = {
    "quick": Plan(
        "quick",
        Workload(train_steps=3, new_tokens=32, repeats=2, eval_per_task=8),
        matmul_max_size=2048,
        memory_mebibytes=1024,
    ),
    "standard": Plan(
        "standard",
        Workload(train_steps=5, new_tokens=64, repeats=3, eval_per_task=20),
        matmul_max_size=4096,
        memory_mebibytes=2048,
    ),
    "smoke": Plan(
        "smoke",
        Workload(
            train_batch=2, train_steps=1, new_tokens=3, repeats=1, eval_per_task=1, eval_batch=2
        ),
        matmul_max_size=256,
        memory_mebibytes=64,
    ),
}


def smoke_config() -> Any:
    """The package's ``tiny`` preset with room for the Shapes tokenizer's 600 pieces."""
    from minigptv2.config import get_preset

    tiny = get_preset("tiny")
    return tiny.replace(language=replace(tiny.language, vocab_size=640), prompt_style="train")


def machine_section(plan: Plan) -> dict[str, Any]:
    from benchmarks.machine import measure_machine

    return measure_machine(max_size=plan.matmul_max_size, mebibytes=plan.memory_mebibytes)


def model_section(name: str, plan: Plan, matmul_gflops: float) -> dict[str, Any]:
    """Generation, chat, evaluation, then training (it changes the weights) for one model."""
    import torch

    from benchmarks.evaluation import measure_evaluation
    from benchmarks.generation import measure_chat, measure_generation
    from benchmarks.setups import build_assistant, scenes, training_samples
    from benchmarks.training import measure_training
    from minigptv2.train.data import Collator

    torch.manual_seed(0)
    work = plan.workload
    log(f"{name}: building")
    assistant = build_assistant(name, smoke_config() if plan.name == "smoke" else None)
    images = scenes(8)
    result: dict[str, Any] = {"params": sum(p.numel() for p in assistant.model.parameters())}
    log(f"{name}: generation")
    result |= measure_generation(
        assistant, images, new_tokens=work.new_tokens, repeats=work.repeats
    )
    log(f"{name}: chat turns")
    result |= measure_chat(assistant, images, work.repeats)
    log(f"{name}: evaluation")
    result |= measure_evaluation(assistant, per_task=work.eval_per_task, batch_size=work.eval_batch)
    log(f"{name}: training")
    samples = training_samples(work.train_batch)
    collate = Collator(assistant.processor)
    # Tokenising and preprocessing a batch: work the data workers do beside the step.
    result["collate_s"] = round(best_time(lambda: collate(samples), repeats=work.repeats), 4)
    (batch,) = collate(samples)  # one piece: the whole micro-batch in one forward pass
    batch.pop("tasks")  # for the training log only, not a model input
    result |= measure_training(assistant.model, batch, matmul_gflops, steps=work.train_steps)
    return result


def fast_paths_section(name: str, plan: Plan) -> dict[str, Any]:
    from benchmarks.fast_paths import measure_fast_paths
    from benchmarks.setups import build_assistant, scenes

    config = smoke_config() if plan.name == "smoke" else None
    result = measure_fast_paths(
        lambda dtype: build_assistant(name, config, dtype),
        scenes(8),
        new_tokens=plan.workload.new_tokens,
        repeats=plan.workload.repeats,
    )
    return {"model": name, **result}


def recipe_section(plan: Plan) -> dict[str, Any]:
    """Answer tokens/s of each Shapes stage config's own training steps (``recipe.py``)."""
    from pathlib import Path

    from benchmarks.recipe import measure

    return measure(Path(__file__).resolve().parents[1], steps=plan.workload.train_steps)


def full_size_section(machine: dict[str, Any], cap_s: float) -> dict[str, Any]:
    from benchmarks.full_size import measure_full_size

    return measure_full_size(machine, cap_s)


def run_suite(
    plan: Plan,
    models: Sequence[str] = MODELS,
    *,
    full: bool = False,
    full_cap_s: float = 60.0,
    isolate: bool = True,
) -> dict[str, Any]:
    """Measure everything ``plan`` asks for; each section in its own process when ``isolate``."""
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        raise ConfigError(f"unknown benchmark model(s) {unknown}; choose from {list(MODELS)}")
    run: Callable[..., dict[str, Any]] = run_isolated if isolate else run_here
    began = time.perf_counter()
    result: dict[str, Any] = {
        "plan": plan.name,
        "workload": dataclasses.asdict(plan.workload),
        "load_average_start": load_average(),
        "models": {},
    }
    log("machine")
    result["machine"] = run(machine_section, plan)
    for name in models:
        log(f"model {name}")
        started = time.perf_counter()
        section = run(model_section, name, plan, result["machine"]["matmul_gflops"])
        section["section_s"] = round(time.perf_counter() - started, 1)
        result["models"][name] = section
    fast_model = SHIPPED if SHIPPED in models else models[0] if models else None
    if fast_model is not None:
        log(f"fast paths on {fast_model}")
        result["fast_paths"] = run(fast_paths_section, fast_model, plan)
    if SHIPPED in models:
        log("Shapes recipe")
        result["recipe"] = run(recipe_section, plan)
    if full:
        log("full size")
        result["full_size"] = run(full_size_section, result["machine"], full_cap_s)
    result["load_average_end"] = load_average()
    result["total_s"] = round(time.perf_counter() - began, 1)
    return result


__all__ = ["MODELS", "PLANS", "RANDOM_CONFIGS", "SHIPPED", "Plan", "run_suite"]
