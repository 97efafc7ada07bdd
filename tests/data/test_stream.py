import random

import pytest

from minigptv2.data.reader import Reader
from minigptv2.data.sample import Sample
from minigptv2.data.stream import Stream
from minigptv2.errors import DataError, ImageError
from minigptv2.prompts import Turn


class Flaky(Reader):
    """Ten records; those in ``bad`` fail the way a missing image does."""

    source = "flaky"

    def __init__(self, bad=()):
        super().__init__()
        self.records = list(range(10))
        self.bad = set(bad)

    def build(self, index: int, rng: random.Random) -> Sample:
        if index in self.bad:
            raise ImageError(f"image file not found: {index}.jpg")
        return Sample(None, (Turn(f"q{index}", str(rng.random())),), None, self.source)


def test_bad_records_are_skipped_deterministically_and_counted():
    stream = Stream(Flaky(bad={3, 7}), seed=1)
    first = [stream[n].turns[0].user for n in range(30)]
    assert "q3" not in first and "q7" not in first
    assert stream.skipped["ImageError"] == 6  # two bad records in each of three epochs
    again = Stream(Flaky(bad={3, 7}), seed=1)
    assert [again[n].turns for n in range(30)] == [stream[n].turns for n in range(30)]


def test_the_rng_follows_the_position_so_epochs_differ():
    stream = Stream(Flaky(), seed=0)
    by_record = {}
    for n in range(20):
        sample = stream[n]
        by_record.setdefault(sample.turns[0].user, []).append(sample.turns[0].assistant)
    assert all(len(set(answers)) == 2 for answers in by_record.values())


def test_a_run_of_failures_means_the_data_is_wrong_and_says_so():
    with pytest.raises(DataError, match="consecutive records of 'flaky' failed"):
        Stream(Flaky(bad=range(10)), max_consecutive_skips=5)[0]
    empty = Flaky()
    empty.records = []
    with pytest.raises(DataError, match="no records"):
        Stream(empty)[0]
