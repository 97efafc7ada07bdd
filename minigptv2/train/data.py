"""Turning a stage's data config into a mixture, step-addressed batches and a tokenizer corpus.

Batches are addressed by step: micro-batch ``m`` of step ``s`` on rank ``r`` is micro-batch
position ``p = (s * accum + m) * world + r``, and its ``k``-th sample is sample ``n = p * batch + k``
of the run, which draws its dataset from the mixture at ``n`` and reads that dataset's item ``n``.
A resumed run therefore reads exactly the samples an uninterrupted run would have read, without
saving any sampler state beyond the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

from minigptv2.data.mixing import Mixture, MixtureKey
from minigptv2.data.sample import Sample
from minigptv2.errors import ConfigError
from minigptv2.processor import Processor
from minigptv2.prompts import TRAIN_STYLE, PromptStyle, render, to_text
from minigptv2.train.config import DataConfig

# Streams are addressed by index; this is "as many as any run will ask for".
STREAM_SIZE = 10**12


def _shapes(config: DataConfig, split: str, seed: int) -> Mixture:
    from minigptv2.data.shapes import SHAPES_MIX, ShapesDataset

    ratios = config.mix if config.mix is not None else SHAPES_MIX
    tasks = {task: ShapesDataset(split, STREAM_SIZE, task=task) for task in ratios}
    return Mixture(tasks, ratios, seed)


DATA_SOURCES: dict[str, Callable[[DataConfig, str, int], Mixture]] = {"shapes": _shapes}


def build_mixture(config: DataConfig, split: str = "train", seed: int = 0) -> Mixture:
    if config.source not in DATA_SOURCES:
        raise ConfigError(
            f"unknown data source {config.source!r}; known: {', '.join(DATA_SOURCES)}"
        )
    return DATA_SOURCES[config.source](config, split, seed)


class StepBatchSampler(Sampler[list[MixtureKey]]):
    """Keys of steps ``start..steps`` (each ``accum`` micro-batches) of one rank."""

    def __init__(
        self,
        mixture: Mixture,
        start: int,
        steps: int,
        batch: int,
        accum: int = 1,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.mixture = mixture
        self.start, self.steps, self.batch = start, steps, batch
        self.accum, self.rank, self.world = accum, rank, world

    def __iter__(self) -> Iterator[list[MixtureKey]]:
        for step in range(self.start, self.steps):
            for micro in range(self.accum):
                position = (step * self.accum + micro) * self.world + self.rank
                first = position * self.batch
                yield [(self.mixture.choose(n), n) for n in range(first, first + self.batch)]

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accum


class Collator:
    """Samples -> a right-padded training batch; runs in the data workers."""

    def __init__(self, processor: Processor, style: PromptStyle = TRAIN_STYLE) -> None:
        self.processor = processor
        self.style = style

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        return self.processor.training_batch(
            [sample.turns for sample in samples],
            [sample.image for sample in samples],
            style=self.style,
        )


def corpus(mixture: Mixture, count: int) -> list[str]:
    """Rendered text of ``count`` samples, to train a tokenizer for a from-scratch model."""
    lines = []
    for position in range(count):
        sample = mixture[(mixture.choose(position), position)]
        lines.append(to_text(render(sample.turns, image=sample.image is not None)))
    return lines
