"""``minigptv2 eval``: generate in batches, record every answer as it comes, score at the end.

With ``--out DIR`` each prediction (answer, score, question and expected answer) is appended to
``DIR/predictions.jsonl`` as soon as its batch is done, so a killed run resumes where it stopped
and scores exactly as an uninterrupted one; ``DIR/scores.json`` and ``DIR/scores.md`` hold the
result, the latter with the paper's number beside ours where the paper reports one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from minigptv2.assistant import Assistant
from minigptv2.errors import ConfigError
from minigptv2.eval import (
    chair,
    gqa,
    hateful_memes,
    iconvqa,
    pope,
    refcoco,
    shapes,
    vizwiz,
    vqa,
    vsr,
)
from minigptv2.eval.benchmark import Benchmark, Item, Record, Source
from minigptv2.eval.paper_numbers import paper_numbers

BENCHMARKS: dict[str, Benchmark] = {
    "shapes": shapes.BENCHMARK,
    **refcoco.BENCHMARKS,
    **vqa.BENCHMARKS,
    "gqa": gqa.BENCHMARK,
    "vsr": vsr.BENCHMARK,
    "iconvqa": iconvqa.BENCHMARK,
    "vizwiz": vizwiz.BENCHMARK,
    "hateful_memes": hateful_memes.BENCHMARK,
    "chair": chair.BENCHMARK,
    "pope": pope.BENCHMARK,
}
PREDICTIONS = "predictions.jsonl"


def get_benchmark(name: str, split: str | None = None, language: str | None = None) -> Benchmark:
    """The benchmark called ``name``, checking ``split`` and ``language`` (None: any) are among
    its splits and languages."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    benchmark = BENCHMARKS[name]
    if split is not None and split not in benchmark.splits:
        raise ConfigError(
            f"{name} has no split {split!r}; use --split with one of {', '.join(benchmark.splits)}"
        )
    if language is not None and language not in benchmark.languages:
        others = [n for n, b in BENCHMARKS.items() if language in b.languages]
        raise ConfigError(
            f"{name} is asked in {', '.join(benchmark.languages)} only, not {language!r}; use "
            f"--language {benchmark.languages[0]}"
            + (f" (in {language}: {', '.join(others)})" if others else "")
        )
    return benchmark


def evaluate(
    assistant: Assistant,
    benchmark: str = "shapes",
    split: str = "test",
    *,
    limit: int | None = None,
    per_task: int | None = None,
    batch_size: int = 16,
    out: Path | None = None,
    identity: str = "",
    data_root: Path | None = None,
    images: Path | None = None,
    language: str = "en",
) -> dict[str, Any]:
    """Score ``assistant`` on one benchmark split; returns the summary (fractions in [0, 1]).

    ``limit`` keeps the first N questions (Shapes: N per task; ``per_task`` is its old name);
    ``language`` the language the questions are asked in (Shapes: en or ko).
    """
    bench = get_benchmark(benchmark, split, language)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    limit = limit if limit is not None else per_task
    source = Source(split, data_root, images, limit, language)
    items = bench.load(source)
    # A folder of English predictions keeps its identity of before languages existed.
    asked = "" if language == bench.languages[0] else f" {language}"
    identity = f"{identity} | {benchmark} {split}{asked}"
    records = _previous(out, identity) if out is not None else {}
    todo = [item for item in items if item.key not in records]
    with tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        unit="item",
        desc=f"{benchmark} {split}",
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        for batch in _batches(todo, batch_size):
            new = [
                {**bench.score(item, text), **extras, **_asked(item)}
                for item, (text, extras) in zip(
                    batch, _answers(bench, assistant, batch), strict=True
                )
            ]
            for record in new:
                records[record["key"]] = record
            if out is not None:
                _append(out / PREDICTIONS, new)
            bar.update(len(batch))
    summary = bench.summarise([records[item.key] for item in items])
    summary.update(benchmark=benchmark, split=split, language=language)
    paper = paper_numbers(benchmark, split)
    if paper:
        summary["paper"] = paper
    if out is not None:
        (out / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "scores.md").write_text(markdown_table(summary) + "\n")
    return summary


def _asked(item: Item) -> Record:
    """What a prediction record keeps besides its score, so a miss can be looked into from
    ``predictions.jsonl`` alone: the prompt, the expected answer (the benchmark's target) and,
    for a file, the image path."""
    record: Record = {"question": item.prompt, "expected": item.target}
    if isinstance(item.image, str | Path):
        record["image"] = str(item.image)
    return record


def _answers(
    bench: Benchmark, assistant: Assistant, batch: list[Item]
) -> list[tuple[str, dict[str, Any]]]:
    if bench.answer is not None:
        return bench.answer(assistant, batch)
    config = bench.generation(batch[0].task)
    answers = assistant.generate(
        [item.image for item in batch], [item.prompt for item in batch], config
    )
    return [(answer.text, {}) for answer in answers]


def _batches(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Batches of one task each, so every batch has one answer length."""
    batches: list[list[Item]] = []
    for item in items:
        if batches and batches[-1][0].task == item.task and len(batches[-1]) < size:
            batches[-1].append(item)
        else:
            batches.append([item])
    return batches


def _previous(out: Path, identity: str) -> dict[str, Record]:
    """Predictions of an earlier, interrupted run of the same model and split into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "meta.json"
    if meta.is_file():
        try:
            earlier = json.loads(meta.read_text()).get("model")
        except json.JSONDecodeError:
            earlier = None
        if earlier != identity:
            raise ConfigError(
                f"{out} holds predictions of another run ({earlier}); pass a different --out"
            )
    meta.write_text(json.dumps({"model": identity}) + "\n")
    records = {}
    path = out / PREDICTIONS
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill; that item is simply asked again
            records[record["key"]] = record
    return records


def _append(path: Path, records: list[Record]) -> None:
    with path.open("a") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")
        file.flush()


# -- the table ---------------------------------------------------------------------------------


def markdown_table(summary: dict[str, Any]) -> str:
    """Our numbers beside the paper's (MiniGPT-v2 and -chat, 7B), percentages to 2 decimals."""
    bench = BENCHMARKS[summary["benchmark"]]
    paper = summary.get("paper", {})
    lines = [
        f"### {summary['benchmark']} {summary['split']}"
        + ("" if summary.get("language", "en") == "en" else f" ({summary['language']})"),
        "",
        "| metric | ours | MiniGPT-v2 (paper) | MiniGPT-v2-chat (paper) |",
        "|---|---|---|---|",
    ]
    for metric in bench.headline:
        reported = paper.get(metric, {})
        lines.append(
            f"| {metric} (%) | {_ours(summary[metric], 100)} | {_paper(reported, 'minigptv2')} "
            f"| {_paper(reported, 'minigptv2_chat')} |"
        )
    for metric in bench.numbers:
        reported = paper.get(metric, {})
        lines.append(
            f"| {metric} | {_ours(summary[metric], 1)} | {_paper(reported, 'minigptv2')} "
            f"| {_paper(reported, 'minigptv2_chat')} |"
        )
    lines += [
        "",
        f"n: {_counts(summary['n'])}; unparsable answers: {_counts(summary['unparsable'])}",
    ]
    return "\n".join(lines)


def _ours(value: float | None, scale: float) -> str:
    return "–" if value is None else f"{scale * value:.2f}"  # None: e.g. AUROC of one class


def _paper(reported: dict[str, float], model: str) -> str:
    value = reported.get(model)
    return "–" if value is None else f"{value:.2f}"


def _counts(value: int | dict[str, int]) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{task} {count}" for task, count in value.items())
    return str(value)
