"""Stage mixtures: the draws follow the ratios, and a resumed run reads the same samples."""

import math
from collections import Counter

import pytest

from minigptv2.data.mixing import Mixture
from minigptv2.data.stream import Stream, shuffled_index
from minigptv2.train.config import DataConfig
from minigptv2.train.data import StepBatchSampler, build_mixture

# The released stage-3 recipe (spec §5.2): 22 datasets, ratios summing to 730.
STAGE3_RATIOS = {
    "multitask_conversation": 50, "llava_conversation": 30, "unnatural_instruction": 10,
    "refvg": 40, "llava_detail": 20, "llava_reason": 80, "flickr_grounded_caption": 80,
    "flickr_CaptionToPhrase": 80, "flickr_ObjectToPhrase": 80, "coco_caption": 10,
    "textcaps_caption": 30, "refcoco": 25, "refcocop": 25, "refcocog": 25, "invrefcoco": 10,
    "invrefcocop": 10, "invrefcocog": 10, "coco_vqa": 15, "ok_vqa": 8, "aok_vqa": 12, "gqa": 50,
    "ocrvqa": 30,
}  # fmt: skip
DRAWS = 10_000


class Numbers:
    """A stand-in dataset: item i is (name, i)."""

    def __init__(self, name: str, size: int = 10**12) -> None:
        self.name, self.size = name, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return (self.name, index)


@pytest.mark.parametrize("seed", [0, 42])
def test_draws_follow_the_ratios_within_four_standard_deviations(seed):
    """Tolerance: |observed - p| <= 4 * sqrt(p (1 - p) / 10k), i.e. at most 0.02 absolute."""
    mixture = Mixture({name: Numbers(name) for name in STAGE3_RATIOS}, STAGE3_RATIOS, seed)
    counts = Counter(mixture.choose(n) for n in range(DRAWS))
    total = sum(STAGE3_RATIOS.values())
    assert total == 730
    for name, ratio in STAGE3_RATIOS.items():
        p = ratio / total
        tolerance = 4 * math.sqrt(p * (1 - p) / DRAWS)
        assert abs(counts[name] / DRAWS - p) <= tolerance, (name, counts[name], p)


def test_a_zero_ratio_is_never_drawn():
    mixture = Mixture({"a": Numbers("a"), "b": Numbers("b")}, {"a": 1, "b": 0})
    assert {mixture.choose(n) for n in range(2000)} == {"a"}


def test_the_draw_depends_on_the_seed():
    datasets = {name: Numbers(name) for name in STAGE3_RATIOS}
    first = [Mixture(datasets, STAGE3_RATIOS, 1).choose(n) for n in range(200)]
    again = [Mixture(datasets, STAGE3_RATIOS, 1).choose(n) for n in range(200)]
    other = [Mixture(datasets, STAGE3_RATIOS, 2).choose(n) for n in range(200)]
    assert first == again != other


@pytest.mark.parametrize(("accum", "world"), [(1, 1), (2, 1), (2, 2)])
def test_resuming_at_step_n_yields_the_samples_of_an_uninterrupted_run(accum, world):
    mixture = Mixture({name: Numbers(name) for name in STAGE3_RATIOS}, STAGE3_RATIOS, seed=5)
    for rank in range(world):
        straight = list(StepBatchSampler(mixture, 0, 12, 3, accum, rank, world))
        resumed = list(StepBatchSampler(mixture, 7, 12, 3, accum, rank, world))
        assert resumed == straight[7 * accum :]
        assert [[mixture[k] for k in b] for b in resumed] == [
            [mixture[k] for k in b] for b in straight[7 * accum :]
        ]
    # Ranks and micro-batches never read the same sample position twice.
    positions = [
        n
        for rank in range(world)
        for batch in StepBatchSampler(mixture, 0, 12, 3, accum, rank, world)
        for _, n in batch
    ]
    assert len(positions) == len(set(positions)) == 12 * accum * world * 3


def test_resumed_shapes_mixture_gives_identical_samples():
    mixture = build_mixture(DataConfig(source="shapes"), seed=9)
    straight = list(StepBatchSampler(mixture, 0, 4, 2))
    resumed = list(StepBatchSampler(mixture, 2, 4, 2))
    assert [[mixture[k].turns for k in b] for b in resumed] == [
        [mixture[k].turns for k in b] for b in straight[2:]
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000, 4097])
def test_stream_permutation_is_a_bijection(size):
    image = [shuffled_index(i, size, "k") for i in range(size)]
    assert sorted(image) == list(range(size))
    if size >= 64:  # and actually shuffles
        assert image != list(range(size))
        assert image != [shuffled_index(i, size, "other") for i in range(size)]


def test_stream_position_to_record_is_a_pure_function():
    class Reader:
        source = "r"
        records = range(50)

        def __len__(self):
            return 50

    a, b = Stream(Reader(), seed=1), Stream(Reader(), seed=1)
    assert [a.record_index(n) for n in range(200)] == [b.record_index(n) for n in range(200)]
    epochs = [[a.record_index(n) for n in range(e * 50, e * 50 + 50)] for e in range(3)]
    assert all(sorted(epoch) == list(range(50)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
