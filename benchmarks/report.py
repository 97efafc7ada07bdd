"""The headline keys, the issue-8 targets and the printed table of a benchmark run.

Headline keys (the contract outside checks read) come from the shipped Shapes model, the model
users run: ``batch8_over_batch1_tokens_per_s``, ``second_turn_ttft_over_first``, ``train_mfu``;
plus the machine's ``matmul_gflops`` (fp32) and ``memory_gbps``.
"""

from __future__ import annotations

from typing import Any

# The reference code on the tiny configuration (issue 8): seconds per training step, and to
# generate 10 tokens for 1 and for 8 images.
REFERENCE = {
    "train_step_s": 0.15,
    "generate_10_tokens_s_batch1": 0.05,
    "generate_10_tokens_s_batch8": 0.11,
}
HEADLINE_MODEL = "shapes"
TINY_MODEL = "issue-tiny"


def headline(result: dict[str, Any]) -> dict[str, Any]:
    machine = result["machine"]
    keys: dict[str, Any] = {
        "matmul_gflops": machine["matmul_gflops"],
        "matmul_gflops_bf16": machine["matmul_gflops_bf16"],
        "memory_gbps": machine["memory_gbps"],
    }
    model = result["models"].get(HEADLINE_MODEL) or next(iter(result["models"].values()), {})
    for key in ("batch8_over_batch1_tokens_per_s", "second_turn_ttft_over_first", "train_mfu"):
        keys[key] = model.get(key)
    # The Shapes recipe's supervised answer tokens per second (benchmarks/recipe.py), when run.
    keys["train_answer_tokens_per_s"] = result.get("recipe", {}).get("train_answer_tokens_per_s")
    keys["peak_rss_mb"] = max(
        [machine["peak_rss_mb"]] + [m["peak_rss_mb"] for m in result["models"].values()]
    )
    return keys


def _target(name: str, measured: float | None, goal: float, at_least: bool) -> dict[str, Any]:
    met = None if measured is None else (measured >= goal if at_least else measured <= goal)
    return {
        "target": f"{name} {'>=' if at_least else '<='} {goal:g}",
        "measured": measured,
        "met": met,
        # How far from the goal: measured / goal for ">=" goals, goal / measured for "<=" goals,
        # so below 1 always means missed by that factor.
        "fraction_of_goal": None
        if not measured
        else round(measured / goal if at_least else goal / measured, 3),
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's "done when" items that this run measured."""
    rows = []
    tiny = result["models"].get(TINY_MODEL)
    if tiny:
        step = REFERENCE["train_step_s"]
        rows.append(
            _target(
                f"tiny train step s (1.5x faster than {step})",
                tiny["train_step_s"],
                step / 1.5,
                False,
            )
        )
        for size in (1, 8):
            key = f"generate_10_tokens_s_batch{size}"
            name = f"tiny 10-token generation s, batch {size} (2x faster than {REFERENCE[key]})"
            rows.append(_target(name, tiny[key], REFERENCE[key] / 2, False))
    shapes = result["models"].get(HEADLINE_MODEL)
    if shapes:
        ratio = shapes["batch8_over_batch1_tokens_per_s"]
        rows.append(_target("shapes batch-8 / batch-1 tokens/s", ratio, 4.0, True))
        ratio = shapes["second_turn_ttft_over_first"]
        rows.append(_target("shapes second-turn TTFT / first", ratio, 0.25, False))
    full = result.get("full_size")
    if full:
        vision = full["vision_bf16"]
        fraction = vision["fraction_of_matmul_peak"]
        rows.append(_target("full-size ViT-g bf16 fraction of bf16 peak", fraction, 0.85, True))
        rows.append(_target("full-size ViT-g encode s (bf16)", vision["encode_s"], 6.5, False))
        fraction = max(
            full[key]["decode_fraction_of_bandwidth_bound"]
            for key in full
            if key.startswith("language_")
        )
        rows.append(_target("full-size decode fraction of bandwidth bound", fraction, 0.6, True))
    return rows


ROWS = (
    ("params", "parameters", "{:,}"),
    ("train_samples_per_s", "train samples/s", "{:.1f}"),
    ("train_step_s", "train step s", "{:.3f}"),
    ("train_mfu", "train MFU (fp32 peak)", "{:.1%}"),
    ("ttft_s_batch1", "TTFT s, batch 1", "{:.4f}"),
    ("ttft_s_batch8", "TTFT s, batch 8", "{:.4f}"),
    ("tokens_per_s_batch1", "tokens/s, batch 1", "{:.1f}"),
    ("tokens_per_s_batch8", "tokens/s, batch 8", "{:.1f}"),
    ("batch8_over_batch1_tokens_per_s", "batch 8 / batch 1 tokens/s", "{:.2f}"),
    ("decode_tokens_per_s_batch1", "decode tokens/s, batch 1", "{:.1f}"),
    ("decode_tokens_per_s_batch8", "decode tokens/s, batch 8", "{:.1f}"),
    ("generate_10_tokens_s_batch1", "10 tokens s, batch 1", "{:.4f}"),
    ("generate_10_tokens_s_batch8", "10 tokens s, batch 8", "{:.4f}"),
    ("first_turn_ttft_s", "chat turn 1 TTFT s", "{:.4f}"),
    ("second_turn_ttft_s", "chat turn 2 TTFT s", "{:.4f}"),
    ("second_turn_ttft_over_first", "turn 2 / turn 1 TTFT", "{:.3f}"),
    ("second_turn_flops_over_first", "turn 2 / turn 1 model FLOPs", "{:.3f}"),
    ("eval_items_per_s", "eval items/s", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MiB", "{:.0f}"),
)


def _cell(value: Any, pattern: str) -> str:
    if value is None:
        return "-"
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return str(value)


def _full_size_rows(name: str, vision: dict | None, language: dict | None) -> list[str]:
    rows = []
    if vision:
        encode = (
            f"{vision['encode_s']:.2f} ({vision['fraction_of_matmul_peak']:.0%} of {name} peak)"
        )
        rows.append(f"| image encoding s, {name} | {encode} | {vision['method']} |")
    if language:
        fraction = language["decode_fraction_of_bandwidth_bound"]
        bound = language["bandwidth_bound_tokens_per_s"]
        decode = f"{language['decode_tokens_per_s']:.3f} ({fraction:.0%} of the {bound:.2f} bound)"
        prefill = f"prefill s ({language['prompt_tokens']} tokens), {name}"
        rows += [
            f"| {prefill} | {language['prefill_s']:.2f} | {language['prefill_method']} |",
            f"| decode tokens/s, {name} | {decode} | {language['decode_method']} |",
        ]
        if "first_answer_s" in language:
            rows.append(
                f"| first answer s, {name} | {language['first_answer_s']:.1f} | "
                f"{language['first_answer_method']} |"
            )
    return rows


def table(result: dict[str, Any]) -> str:
    """Markdown: the machine, one column per model, the full-size rows and the targets."""
    m = result["machine"]
    lines = [
        f"machine: {m['threads']} threads, {m['cpu_capability']}, torch {m['torch']};"
        f" matmul fp32 {m['matmul_gflops']:.1f} GFLOP/s, bf16 {m['matmul_gflops_bf16']:.2f}"
        f" GFLOP/s; memory read {m['memory_gbps']:.1f} GB/s (matrix-vector fp32"
        f" {m['matvec_gbps_fp32']:.1f}, bf16 {m['matvec_gbps_bf16']:.1f} GB/s);"
        f" load average {result['load_average_start']} -> {result['load_average_end']}",
        "",
    ]
    names = list(result["models"])
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for key, label, pattern in ROWS:
        cells = [_cell(result["models"][name].get(key), pattern) for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    full = result.get("full_size")
    if full:
        lines += ["", "| full size (ViT-g 448 px + LLaMA-2-7B) | value | how |", "|---|---|---|"]
        for name in ("fp32", "bf16", "int8", "int4"):
            lines += _full_size_rows(name, full.get(f"vision_{name}"), full.get(f"language_{name}"))
    recipe = result.get("recipe")
    if recipe:
        lines += ["", "| Shapes recipe stage | answer tokens/step | step s | answer tokens/s |"]
        lines.append("|---|---|---|---|")
        for name, stage in recipe["stages"].items():
            lines.append(
                f"| {name} | {stage['answer_tokens_per_step']} | {stage['step_s']} | "
                f"{stage['train_answer_tokens_per_s']} |"
            )
        lines.append(f"| all stages | | | {recipe['train_answer_tokens_per_s']} |")
    lines += ["", "| target (issue 8) | measured | met |", "|---|---|---|"]
    for row in result.get("targets", []):
        met = {True: "yes", False: "no", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {_cell(row['measured'], '{:.4g}')} | {met} |")
    return "\n".join(lines)
