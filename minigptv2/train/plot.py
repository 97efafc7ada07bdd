"""``curves.png``: loss (raw and smoothed) and learning rate against step, from ``metrics.jsonl``.

The loop writes one JSON record per logged step — ``{"step", "loss", "lr", ...}`` — a record with
``"skipped"`` (and no loss) for a step whose loss was not finite, and ``{"step", "eval": {...}}``
after a periodic evaluation. A resumed run appends to the same log, so a step can appear twice;
the later record (the resumed run's) wins. Drawn with matplotlib's object API and the Agg canvas,
so no display and no global ``pyplot`` state are involved.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minigptv2.errors import DataError

# Exponential smoothing as TensorBoard does it: weight of the running average per logged point.
SMOOTHING = 0.9
SIZE_INCHES, DPI = (8.0, 6.0), 100  # -> an 800 x 600 PNG


class NothingToPlot(DataError):
    """The metrics log holds no finite training loss yet."""


@dataclass
class Curves:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def read_curves(metrics: Path) -> Curves:
    """Parse ``metrics.jsonl``; a torn last line (a killed run) is ignored, not fatal."""
    if not metrics.is_file():
        raise NothingToPlot(f"no metrics log at {metrics}; train for at least log_every steps")
    train: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    for line in metrics.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "eval" in record:
            evals[record["step"]] = record["eval"]
        elif "step" in record:
            train[record["step"]] = record
    curves = Curves()
    for step in sorted(train):
        record = train[step]
        loss = record.get("loss")
        if "skipped" in record or loss is None or not math.isfinite(loss):
            curves.skipped.append(step)
            continue
        curves.steps.append(step)
        curves.losses.append(float(loss))
        curves.lrs.append(float(record["lr"]))
    for step in sorted(evals):
        for name, value in evals[step].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                curves.evals.setdefault(name, []).append((step, float(value)))
    return curves


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (early points are not pulled towards 0)."""
    result, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        result.append(average / (1 - weight**count))
    return result


def plot_curves(metrics: Path, target: Path) -> Path:
    """Draw ``target`` (PNG) from ``metrics``; raises ``NothingToPlot`` on a log without losses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = read_curves(metrics)
    if not curves.steps:
        skipped = f" ({len(curves.skipped)} step(s) skipped for a non-finite loss)"
        raise NothingToPlot(
            f"{metrics} has no finite training loss to plot"
            + (skipped if curves.skipped else "; the run logged no step yet")
        )
    rows = 3 if curves.evals else 2
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, lr_axes, *eval_axes = figure.subplots(rows, 1, sharex=True)
    loss_axes.plot(curves.steps, curves.losses, color="tab:blue", alpha=0.3, label="loss")
    loss_axes.plot(curves.steps, smooth(curves.losses), color="tab:blue", label="smoothed")
    for index, step in enumerate(curves.skipped):
        label = "skipped (non-finite loss)" if index == 0 else None
        loss_axes.axvline(step, color="tab:red", alpha=0.5, linewidth=0.8, label=label)
    loss_axes.set_ylabel("loss")
    loss_axes.legend(loc="upper right")
    loss_axes.grid(alpha=0.3)
    lr_axes.plot(curves.steps, curves.lrs, color="tab:orange")
    lr_axes.set_ylabel("learning rate")
    lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    lr_axes.grid(alpha=0.3)
    for axes in eval_axes:
        for name, points in sorted(curves.evals.items()):
            axes.plot(*zip(*points, strict=True), marker="o", label=name)
        axes.set_ylabel("held-out eval")
        axes.set_ylim(-0.02, 1.02)  # every benchmark score is a fraction
        axes.legend(loc="best", fontsize="small", ncol=2)
        axes.grid(alpha=0.3)
    (eval_axes or [lr_axes])[-1].set_xlabel("step")
    figure.suptitle(metrics.parent.name)
    # Written beside the target and renamed, so a reader never sees a half-written PNG.
    partial = target.with_name(f".{target.name}.partial")
    figure.savefig(partial, format="png")
    os.replace(partial, target)
    return target
