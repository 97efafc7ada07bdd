"""Turning a stage's data config into a mixture, step-addressed batches and a tokenizer corpus.

Batches are addressed by step: micro-batch ``m`` of step ``s`` on rank ``r`` is micro-batch
position ``p = (s * accum + m) * world + r``, and its ``k``-th sample is sample
``n = p * batch + k`` of the run, which draws its dataset from the mixture at ``n`` and reads
that dataset's item ``n``. A resumed run therefore reads exactly the samples an uninterrupted run
would have read, without saving any sampler state beyond the step.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from torch.utils.data import Sampler

from minigptv2.data.mixing import Mixture, MixtureKey
from minigptv2.data.sample import Sample
from minigptv2.errors import ConfigError, DataError, PromptError
from minigptv2.processor import Processor
from minigptv2.prompts import TRAIN_STYLE, ChatFormat, render, to_text
from minigptv2.train.config import DataConfig

# Streams are addressed by index; this is "as many as any run will ask for".
STREAM_SIZE = 10**12


def _shapes(config: DataConfig, split: str, seed: int) -> Mixture:
    """One dataset per task, drawn by ``mix``; with ``pack`` > 1, rows of that many single-task
    questions about one scene (tasks drawn by ``mix``) instead, beside conversations and
    text-only rows, which are rows of their own and keep their share of rows. Scenes come from
    the world ``world``, text in ``language``."""
    from minigptv2.data.shapes import OWN_ROWS, SHAPES_MIX, WORLDS, ShapesDataset, ShapesPacks

    ratios = config.mix if config.mix is not None else SHAPES_MIX
    world = replace(WORLDS[config.world], language=config.language)
    if config.pack == 1:
        tasks = {task: ShapesDataset(split, STREAM_SIZE, world, task=task) for task in ratios}
        return Mixture(tasks, ratios, seed)
    single = {task: weight for task, weight in ratios.items() if task not in OWN_ROWS}
    datasets = {"packed": ShapesPacks(split, STREAM_SIZE, single, config.pack, world)}
    shares = {"packed": sum(single.values())}
    for task in OWN_ROWS:
        if ratios.get(task, 0.0) > 0:
            datasets[task] = ShapesDataset(split, STREAM_SIZE, world, task=task)
            shares[task] = ratios[task]
    return Mixture(datasets, shares, seed)


def _custom(config: DataConfig, split: str, seed: int) -> Mixture:
    """One custom JSONL file (``data.path``), reshuffled every epoch; ``split`` does not apply."""
    from minigptv2.data.custom import CustomDataset
    from minigptv2.data.stream import Stream

    if config.path is None:
        raise ConfigError(
            "data.source 'custom' needs data.path, the .jsonl file to train on "
            "(e.g. data.path=data/mine.jsonl); check it first with `minigptv2 data check`"
        )
    if config.mix is not None:
        raise ConfigError("data.mix does not apply to the 'custom' source (one file); remove it")
    return Mixture({"custom": Stream(CustomDataset(config.path), seed)}, {"custom": 1.0}, seed)


def _paper(config: DataConfig, split: str, seed: int) -> Mixture:
    """The paper's datasets under the data root ``data.path``, by ``data.mix`` ratios."""
    from minigptv2.data.paper import paper_mixture

    return paper_mixture(config.path, config.mix, seed)


DATA_SOURCES: dict[str, Callable[[DataConfig, str, int], Mixture]] = {
    "shapes": _shapes,
    "custom": _custom,
    "paper": _paper,
}


def vocabulary_mixture(config: DataConfig, seed: int = 0) -> Mixture:
    """The samples a from-scratch tokenizer learns its pieces from: every Shapes task (the default
    mix), whatever this stage's ratios; the later stages reuse the tokenizer, so a stage 1 of boxes
    only must still give VQA's digits and question words their pieces. Other sources: the stage's.
    """
    whole = replace(config, mix=None) if config.source == "shapes" else config
    return build_mixture(whole, "train", seed)


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
    """Samples -> right-padded training batches; runs in the data workers.

    With ``pieces`` > 1 a micro-batch comes back as that many batches of similar-length samples
    (sorted by length, cut where the padding saved is largest): the loop runs one forward pass per
    piece and normalises the loss over all of them (``loss.py``), so the gradient is the one of the
    whole micro-batch while padding drops from ~55% to ~20% of the tokens on a Shapes mix.

    A sample the processor refuses (too long for the context or ``max_txt_len``, or a message that
    opens with an unknown ``[tag]``) is left out of its batch and counted in ``skipped``, so one
    odd row never stops a long run. A batch whose every sample is refused is replaced by the
    previous batch's usable samples.
    """

    def __init__(
        self, processor: Processor, style: ChatFormat = TRAIN_STYLE, pieces: int = 1
    ) -> None:
        if pieces < 1:
            raise ConfigError(f"a micro-batch needs at least 1 piece, got {pieces}")
        self.processor = processor
        self.style = style
        self.pieces = pieces
        self.skipped: Counter[str] = Counter()
        self._previous: list[tuple[Sample, int]] = []

    def __call__(self, samples: Sequence[Sample]) -> list[dict[str, Any]]:
        usable = [(sample, length) for sample in samples if (length := self._length(sample))]
        if not usable:
            if not self._previous:
                raise DataError(
                    f"all {len(samples)} samples of the first batch were skipped as too long; "
                    "raise max_context_len / max_txt_len or shorten the data"
                )
            usable = self._previous
        self._previous = usable
        usable = sorted(usable, key=lambda pair: pair[1]) if self.pieces > 1 else usable
        cuts = split_by_length([length for _, length in usable], self.pieces)
        return [self._batch([sample for sample, _ in usable[a:b]]) for a, b in cuts]

    def _batch(self, samples: Sequence[Sample]) -> dict[str, Any]:
        """The processor's tensors, plus ``tasks``: each row's task name for the per-task loss
        log (the loop removes it before the forward pass)."""
        batch: dict[str, Any] = self.processor.training_batch(
            [sample.turns for sample in samples],
            [sample.image for sample in samples],
            style=self.style,
            packed=[sample.packed for sample in samples],
        )
        batch["tasks"] = [task_name(sample) for sample in samples]
        return batch

    def _length(self, sample: Sample) -> int:
        """The sample's length in tokens, or 0 when it is refused (and then counted)."""
        try:
            length = self.processor.training_length(
                sample.turns, image=sample.image is not None, style=self.style, packed=sample.packed
            )
        except PromptError as error:
            self.skipped[sample.source] += 1
            logging.getLogger("minigptv2.data").warning(
                "skipped a %s sample: %s (%d skipped by this collator)",
                sample.source,
                error,
                sum(self.skipped.values()),
            )
            return 0
        return length


def task_name(sample: Sample) -> str:
    """A sample's task for logging; mixed-task and free-form conversations are "chat", packed
    questions "packed"."""
    return sample.task or ("packed" if sample.packed else "chat")


def split_by_length(lengths: Sequence[int], pieces: int) -> list[tuple[int, int]]:
    """Cut ``lengths`` (ascending when ``pieces`` > 1) into ``min(pieces, len)`` consecutive
    ranges that minimise the padded size, sum over ranges of (count x longest)."""
    count = len(lengths)
    pieces = min(pieces, count)
    if pieces == 1:
        return [(0, count)]
    inf = float("inf")
    # best[g][j]: least padded size of the first j lengths in g ranges; cut[g][j]: where the
    # last of those ranges starts. 32 samples x 4 pieces: a few thousand additions.
    best = [[inf] * (count + 1) for _ in range(pieces + 1)]
    cut = [[0] * (count + 1) for _ in range(pieces + 1)]
    best[0][0] = 0
    for g in range(1, pieces + 1):
        for j in range(g, count + 1):
            for i in range(g - 1, j):
                size = best[g - 1][i] + (j - i) * lengths[j - 1]
                if size < best[g][j]:
                    best[g][j], cut[g][j] = size, i
    ranges, end = [], count
    for g in range(pieces, 0, -1):
        ranges.append((cut[g][end], end))
        end = cut[g][end]
    return ranges[::-1]


def corpus(mixture: Mixture, count: int) -> list[str]:
    """Rendered text of ``count`` samples, to train a tokenizer for a from-scratch model."""
    lines = []
    for position in range(count):
        sample = mixture[(mixture.choose(position), position)]
        lines.append(to_text(render(sample.turns, image=sample.image is not None)))
    return lines
