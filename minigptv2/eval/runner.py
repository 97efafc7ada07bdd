"""``minigptv2 eval``: generate in batches, record every answer as it comes, score at the end.

With ``--out DIR`` each prediction is appended to ``DIR/predictions.jsonl`` as soon as its batch
is done, so a killed run resumes where it stopped and scores exactly as an uninterrupted one;
``DIR/scores.json`` and ``DIR/scores.md`` hold the result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from minigptv2.assistant import Assistant, GenerationConfig
from minigptv2.errors import ConfigError
from minigptv2.eval import shapes

BENCHMARKS = {"shapes": shapes}
PREDICTIONS = "predictions.jsonl"


def evaluate(
    assistant: Assistant,
    benchmark: str = "shapes",
    split: str = "test",
    *,
    per_task: int = 200,
    batch_size: int = 16,
    out: Path | None = None,
    identity: str = "",
) -> dict[str, Any]:
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {benchmark!r}; available: {', '.join(BENCHMARKS)}")
    module = BENCHMARKS[benchmark]
    items = module.items(split, per_task)
    records = _previous(out, identity) if out is not None else {}
    todo = [item for item in items if item.key not in records]
    with tqdm(
        total=len(items), initial=len(items) - len(todo), unit="item", file=sys.stderr
    ) as bar:
        for batch in _batches(todo, batch_size):
            config = GenerationConfig(max_new_tokens=module.MAX_NEW_TOKENS[batch[0].task])
            answers = assistant.generate(
                [item.image for item in batch], [item.prompt for item in batch], config
            )
            new = [
                module.score(item, answer.text) for item, answer in zip(batch, answers, strict=True)
            ]
            for record in new:
                records[record["key"]] = record
            if out is not None:
                _append(out / PREDICTIONS, new)
            bar.update(len(batch))
    summary = module.summarise([records[item.key] for item in items])
    summary.update(benchmark=benchmark, split=split)
    if out is not None:
        (out / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "scores.md").write_text(markdown_table(summary) + "\n")
    return summary


def _batches(items: Sequence[shapes.Item], size: int) -> list[list[shapes.Item]]:
    """Batches of one task each, so every batch has one answer length."""
    batches: list[list[shapes.Item]] = []
    for item in items:
        if batches and batches[-1][0].task == item.task and len(batches[-1]) < size:
            batches[-1].append(item)
        else:
            batches.append([item])
    return batches


def _previous(out: Path, identity: str) -> dict[str, dict[str, Any]]:
    """Predictions of an earlier, interrupted run of the same model into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()).get("model") != identity:
        raise ConfigError(
            f"{out} holds predictions of another model ({json.loads(meta.read_text())['model']});"
            " pass a different --out"
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


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")


def markdown_table(summary: dict[str, Any]) -> str:
    rows = [("metric", "value", "n")]
    counts = summary["n"]
    for metric, task in (
        ("refer_acc50", "refer"),
        ("vqa_acc", "vqa"),
        ("identify_acc", "identify"),
        ("detection_f1", "detection"),
        ("grounding_recall50", "grounding"),
    ):
        rows.append((metric, f"{summary[metric]:.3f}", str(counts[task])))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---|---|")
    return "\n".join(lines)
