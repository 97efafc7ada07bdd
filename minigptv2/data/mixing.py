"""Stage mixtures: datasets sampled by ratio, one draw per sample (spec §5.4).

Each sample of a run draws its dataset with probability proportional to the dataset's ratio. The
reference draws once per micro-batch instead, so its batches hold one task each; on the small
Shapes model that made the loss swing from task to task and localisation stalled (see the notes
of issue 5), and mixed batches cost only some padding. The draw is a function of (seed, sample
number) only, so a resumed run sees the same sequence, and a streaming dataset is never loaded
whole: only the indices asked for are read.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from torch.utils.data import Dataset

from minigptv2.data.sample import Sample
from minigptv2.errors import ConfigError

MixtureKey = tuple[str, int]


class Mixture(Dataset):
    """Named datasets with sampling ratios; items are addressed as ``(name, index)``."""

    def __init__(
        self, datasets: Mapping[str, Dataset], ratios: Mapping[str, float], seed: int = 0
    ) -> None:
        unknown = set(ratios) - set(datasets)
        if unknown:
            raise ConfigError(
                f"ratios name unknown datasets {sorted(unknown)}; have {sorted(datasets)}"
            )
        self.names = [name for name in ratios if ratios[name] > 0]
        if not self.names:
            raise ConfigError(
                f"every ratio is zero in {dict(ratios)}; give one dataset a ratio > 0"
            )
        self.weights = [float(ratios[name]) for name in self.names]
        self.datasets = dict(datasets)
        self.seed = seed

    def choose(self, position: int) -> str:
        """The dataset of the run's sample number ``position`` (over steps, accumulation, ranks)."""
        return random.Random(f"{self.seed}:{position}").choices(self.names, self.weights)[0]

    def __getitem__(self, key: MixtureKey) -> Sample:
        name, index = key
        dataset = self.datasets[name]
        # Finite datasets wrap around: position k of an epoch-less stream.
        return dataset[index % len(dataset)]

    def __len__(self) -> int:
        return sum(len(dataset) for dataset in self.datasets.values())
