"""A finite reader as an endless, reshuffled, fault-tolerant stream addressed by sample position.

``Mixture`` asks a dataset for item ``n``, the run's sample number (see ``train/data.py``). A
``Stream`` maps ``n`` to record ``perm_e(n mod N)`` of epoch ``e = n // N``, where ``perm_e`` is a
keyed pseudo-random permutation: a 4-round Feistel network with cycle walking. It needs no memory
(a 20M-record GRIT index is not shuffled by materialising 20M integers) and is a pure function of
(seed, source, epoch, n), so a resumed run reads the same records in the same order, and every
epoch visits every record once in a fresh order.

Bad rows (missing or unreadable image, malformed record) never stop a run: the stream moves on to
position ``n + 1`` (deterministically), counts the skip by reason and logs it. Only a long run of
consecutive failures, which means the data or its layout is wrong rather than a few rows, raises.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter

import torch.utils.data

from minigptv2.data.reader import Reader
from minigptv2.data.sample import Sample
from minigptv2.errors import DataError, MiniGPTv2Error

# Streams are addressed by sample position; this is "more than any run will ask for".
STREAM_LENGTH = 10**12
FEISTEL_ROUNDS = 4
# Failures a malformed record can raise while being built; anything else is a bug and propagates.
SKIPPABLE = (MiniGPTv2Error, OSError, ValueError, KeyError, TypeError, IndexError)

logger = logging.getLogger("minigptv2.data")


def shuffled_index(position: int, size: int, key: str) -> int:
    """The image of ``position`` under a keyed permutation of ``range(size)``.

    Feistel rounds permute ``range(2**bits)`` (``2**bits < 4 * size``); values that land outside
    ``range(size)`` are permuted again until they land inside ("cycle walking"), which keeps it a
    bijection on ``range(size)``.
    """
    if not 0 <= position < size:
        raise IndexError(f"position {position} outside a permutation of size {size}")
    half = max(1, ((size - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    value = position
    while True:
        left, right = value >> half, value & mask
        for round_number in range(FEISTEL_ROUNDS):
            digest = hashlib.blake2b(f"{key}:{round_number}:{right}".encode(), digest_size=8)
            left, right = right, left ^ (int.from_bytes(digest.digest(), "big") & mask)
        value = (left << half) | right
        if value < size:
            return value


class Stream(torch.utils.data.Dataset):
    """``reader`` repeated forever, each epoch in a new order, bad rows skipped and counted."""

    def __init__(
        self, reader: Reader, seed: int = 0, shuffle: bool = True, max_consecutive_skips: int = 64
    ) -> None:
        self.reader = reader
        self.seed = seed
        self.shuffle = shuffle
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped: Counter[str] = Counter()

    def __len__(self) -> int:
        return STREAM_LENGTH

    def record_index(self, position: int) -> int:
        """Which record sample position ``position`` reads."""
        size = len(self.reader)
        if size == 0:
            raise DataError(
                f"dataset {self.reader.source!r} has no records; check its files and split"
            )
        epoch, offset = divmod(position, size)
        if not self.shuffle:
            return offset
        return shuffled_index(offset, size, f"{self.seed}:{self.reader.source}:{epoch}")

    def __getitem__(self, position: int) -> Sample:
        last_error: BaseException | None = None
        for attempt in range(self.max_consecutive_skips + 1):
            index = self.record_index(position + attempt)
            rng = random.Random(f"{self.seed}:{self.reader.source}:{position + attempt}")
            try:
                return self.reader.build(index, rng)
            except SKIPPABLE as error:
                last_error = error
                self._count(index, error)
        raise DataError(
            f"{self.max_consecutive_skips + 1} consecutive records of {self.reader.source!r} "
            f"failed (last: {last_error}); check the dataset's files and layout"
        )

    def _count(self, index: int, error: BaseException) -> None:
        reason = type(error).__name__
        self.skipped[reason] += 1
        total = sum(self.skipped.values())
        # Every skip for the first 20, then at powers of ten: visible, but not a flood.
        if total <= 20 or str(total).strip("0") == "1":
            logger.warning(
                "%s: skipped record %d (%s: %s); %d skipped so far",
                self.reader.source,
                index,
                reason,
                error,
                total,
            )
