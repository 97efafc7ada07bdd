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
    """Samples of a list of shards that have an image and each of ``fields`` (e.g. "json")."""

    def __init__(self, shards: Sequence[str | Path], fields: Sequence[str]) -> None:
        self.shards = [Path(shard) for shard in shards]
        if not self.shards:
            raise DataError("no webdataset shards given; pass the .tar files (e.g. a glob)")
        missing = [str(shard) for shard in self.shards if not shard.is_file()]
        if missing:
            raise DataError(f"webdataset shards not found: {missing[:3]}")
        self.fields = tuple(fields)
        self._shard_of: np.ndarray | None = None  # (N,) shard index
        self._spans: np.ndarray | None = None  # (N, 1 + len(fields), 2) offset, size
        self._keys: list[str] = []

    def _scan(self, shard: Path) -> list[tuple[str, list[tuple[int, int]]]]:
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
        for key, members in found.items():
            image = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
            if image is None or any(field not in members for field in self.fields):
                continue  # an incomplete sample (e.g. a failed download): nothing to train on
            samples.append((key, [image] + [members[field] for field in self.fields]))
        return samples

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._shard_of is None or self._spans is None:
            shard_of, spans = [], []
            for number, shard in enumerate(self.shards):
                for key, members in self._scan(shard):
                    shard_of.append(number)
                    spans.append(members)
                    self._keys.append(key)
            self._shard_of = np.asarray(shard_of, dtype=np.int64)
            self._spans = np.asarray(spans, dtype=np.int64).reshape(-1, 1 + len(self.fields), 2)
        return self._shard_of, self._spans

    def __len__(self) -> int:
        return len(self._index()[0])

    def key(self, index: int) -> str:
        self._index()
        return self._keys[index]

    def read(self, index: int) -> tuple[bytes, list[bytes]]:
        """The image bytes and the bytes of each field of sample ``index``."""
        shard_of, spans = self._index()
        parts = []
        with self.shards[int(shard_of[index])].open("rb") as handle:
            for offset, size in spans[index]:
                handle.seek(int(offset))
                parts.append(handle.read(int(size)))
        return parts[0], parts[1:]
