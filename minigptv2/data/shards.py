"""Random access into webdataset tar shards with the standard library, without loading them.

A webdataset shard is a plain tar whose members are grouped into samples by key: ``000123.jpg``
and ``000123.json`` form sample ``000123`` (the key is the member path up to the first dot of its
file name). ``TarShards`` scans each shard's headers once, on first use (``tarfile`` seeks past
member data, so this reads only headers), and keeps, per sample, the byte offset and size of each
wanted member in int64 arrays. Reading a sample is then one seek and read per member, so LAION or
GRIT shards can be addressed by index, shuffled and resumed like any other reader without holding
their images in memory. The ``webdataset`` package is not needed for this.
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from minigptv2.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")


def _split_key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, extension.lower() if dot else ""


class TarShards:
    """Samples of a list of shards that have an image and each of ``fields`` (e.g. "json").

    The index costs 16 bytes per member read (offset and size), about 32 bytes per sample, plus
    one integer per shard; sample keys are not kept (``key`` gives the sample's location).
    """

    def __init__(self, shards: Sequence[str | Path], fields: Sequence[str]) -> None:
        self.shards = [Path(shard) for shard in shards]
        if not self.shards:
            raise DataError("no webdataset shards given; pass the .tar files (e.g. a glob)")
        missing = [str(shard) for shard in self.shards if not shard.is_file()]
        if missing:
            raise DataError(f"webdataset shards not found: {missing[:3]}")
        self.fields = tuple(fields)
        self._starts: np.ndarray | None = None  # (S + 1,) first sample of each shard, then N
        self._spans: np.ndarray | None = None  # (N, 1 + len(fields), 2) offset and size

    def _scan(self, shard: Path) -> np.ndarray:
        """(samples, 1 + len(fields), 2) offsets and sizes of one shard's complete samples."""
        found: dict[str, dict[str, tuple[int, int]]] = {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for member in tar:
                    if member.isfile():
                        key, extension = _split_key(member.name)
                        found.setdefault(key, {})[extension] = (member.offset_data, member.size)
        except tarfile.TarError as error:
            raise DataError(f"{shard} is not a readable tar shard ({error})") from None
        samples = []
        for members in found.values():
            image = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
            if image is None or any(field not in members for field in self.fields):
                continue  # an incomplete sample (e.g. a failed download): nothing to train on
            samples.append([image] + [members[field] for field in self.fields])
        return np.asarray(samples, dtype=np.int64).reshape(-1, 1 + len(self.fields), 2)

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._starts is None or self._spans is None:
            per_shard = [self._scan(shard) for shard in self.shards]
            self._starts = np.cumsum([0] + [len(spans) for spans in per_shard])
            self._spans = np.concatenate(per_shard)
        return self._starts, self._spans

    def __len__(self) -> int:
        return len(self._index()[1])

    def _shard_of(self, index: int) -> int:
        starts, _ = self._index()
        return int(np.searchsorted(starts, index, side="right")) - 1

    def key(self, index: int) -> str:
        """Where sample ``index`` is: ``shard.tar#k``, its k-th complete sample."""
        number = self._shard_of(index)
        return f"{self.shards[number].name}#{index - int(self._index()[0][number])}"

    def read(self, index: int) -> tuple[bytes, list[bytes]]:
        """The image bytes and the bytes of each field of sample ``index``."""
        _, spans = self._index()
        if not 0 <= index < len(spans):
            raise IndexError(f"sample {index} out of range for {len(spans)} shard samples")
        parts = []
        with self.shards[self._shard_of(index)].open("rb") as handle:
            for offset, size in spans[index]:
                handle.seek(int(offset))
                parts.append(handle.read(int(size)))
        return parts[0], parts[1:]
