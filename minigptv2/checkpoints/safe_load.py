"""Reading weight files without ever running code from them.

``.pth`` / ``.bin`` files are pickles. A pickle may name any importable function (``os.system``)
and have the unpickler call it, so reading an untrusted ``.pth`` with plain ``pickle`` runs
whatever its author wanted. We only use ``torch.load(weights_only=True)``, whose unpickler accepts
tensors, containers and primitives and refuses every other global *before* calling it; such files
are rejected with an explanation instead. ``.safetensors`` files are plain tensor data and are
read lazily with ``safetensors.safe_open``, so a 13 GB LLaMA shard is never held twice in memory.
"""

from __future__ import annotations

import json
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError, safe_open

from minigptv2.errors import CheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"

_GLOBAL_PATTERN = re.compile(r"GLOBAL ([\w.]+)")
# Globals every torch.save file references; anything else in a refused file is worth naming.
_TENSOR_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode")


class SafetensorsFile(Mapping[str, torch.Tensor]):
    """A ``.safetensors`` file as a read-only mapping; a tensor is read when it is indexed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._handle = safe_open(str(path), framework="pt", device="cpu")
            self._keys = list(self._handle.keys())
        except (SafetensorError, OSError) as error:
            raise _unreadable(path, error) from None

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self._handle.get_tensor(key)
        except (SafetensorError, OSError) as error:
            raise _unreadable(self.path, error) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape from the header, without reading the tensor."""
        return tuple(self._handle.get_slice(key).get_shape())


class ShardedTensors(Mapping[str, torch.Tensor]):
    """Several weight files (Hugging Face shards) seen as one mapping, each read lazily."""

    def __init__(self, shards: list[Mapping[str, torch.Tensor]]) -> None:
        self._owner: dict[str, Mapping[str, torch.Tensor]] = {}
        for shard in shards:
            self._owner.update(dict.fromkeys(shard, shard))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._owner[key][key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner)

    def __len__(self) -> int:
        return len(self._owner)

    def shape(self, key: str) -> tuple[int, ...]:
        return shape_of(self._owner[key], key)


def shape_of(tensors: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    """Shape of ``tensors[key]``, read from the header when the mapping is a lazy file."""
    if isinstance(tensors, SafetensorsFile | ShardedTensors):
        return tensors.shape(key)
    return tuple(tensors[key].shape)


def read_sharded(index_path: str | Path) -> ShardedTensors:
    """The shards named by a Hugging Face ``*.index.json``, checked against the index."""
    index_path = require_file(index_path)
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as error:
        raise _unreadable(index_path, error) from None
    shards = {}
    for name in sorted(set(weight_map.values())):
        shard = index_path.parent / name
        if not shard.is_file():
            raise CheckpointError(
                f"{index_path.name} lists the shard {name}, which is not in {index_path.parent};"
                " the download is incomplete: fetch the missing shard"
            )
        shards[name] = read_state_dict(shard)
    for key, name in weight_map.items():
        if key not in shards[name]:
            raise CheckpointError(
                f"{index_path.name} says {key} is in {name}, but that shard does not hold it;"
                " the shard is incomplete or from another model: download it again"
            )
    return ShardedTensors(list(shards.values()))


def read_torch_file(path: str | Path, *, mmap: bool = True) -> Any:
    """Unpickle ``path`` with ``weights_only=True``; refuse files that would run code.

    Zip-format files (everything ``torch.save`` wrote since torch 1.6) are memory-mapped unless
    ``mmap`` is False, so their tensors are paged in only when used.
    """
    path = require_file(path)
    is_zip = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():
            # Old protocol notes from torch's safe unpickler are noise for a user.
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as error:
        imports = pickle_globals(path, is_zip)
        if imports is None:  # not even a well-formed pickle: damage, not danger
            raise _unreadable(path, error) from None
        raise _refused(path, error, imports) from None
    except Exception as error:  # torch raises RuntimeError, KeyError, EOFError... on damage
        raise _unreadable(path, error) from None


def read_state_dict(path: str | Path) -> Mapping[str, torch.Tensor]:
    """A flat ``{name: tensor}`` from a ``.safetensors`` or a ``.pth``/``.bin`` file."""
    path = require_file(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return SafetensorsFile(path)
    return require_tensor_dict(read_torch_file(path), path)


def require_tensor_dict(obj: Any, path: Path, what: str = "the file") -> dict[str, torch.Tensor]:
    """``obj`` if it is a ``{str: Tensor}`` dict, else an error that says what was found."""
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{what} {path} holds a {type(obj).__name__}, not a dict of tensors; pass the"
            " state-dict file itself"
        )
    bad = [key for key, value in obj.items() if not torch.is_tensor(value)]
    if bad:
        raise CheckpointError(
            f"{what} {path} is not a flat dict of tensors: {', '.join(map(str, bad[:5]))} hold"
            f" {type(obj[bad[0]]).__name__} values; pass the state-dict file itself"
        )
    return obj


def require_file(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is an existing file, else an error saying what to pass."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, but a weight file was expected here")
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}; check the path (downloads may be missing)")
    return path


def pickle_globals(path: Path, is_zip: bool) -> list[str] | None:
    """The non-torch globals a pickle would import, read from its opcodes without running it.

    ``None`` if the stream is not a well-formed pickle (a damaged or foreign file).
    """
    names: list[str] = []
    strings: list[str] = []
    try:
        with _pickle_stream(path, is_zip) as stream:
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST"):
                    names.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # pickletools raises ValueError and others on malformed input
        return None
    return [name for name in names if not name.startswith(_TENSOR_GLOBALS)]


def _pickle_stream(path: Path, is_zip: bool) -> IO[bytes]:
    if not is_zip:
        return path.open("rb")
    archive = zipfile.ZipFile(path)
    member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
    if member is None:
        raise ValueError("no data.pkl in the archive")
    return archive.open(member)


def _refused(path: Path, error: Exception, imports: list[str]) -> CheckpointError:
    named = _GLOBAL_PATTERN.search(str(error))
    found = list(dict.fromkeys(([named.group(1)] if named else []) + imports))
    reason = (
        f"its pickle would import and call {', '.join(found[:3])}, which is not a tensor type"
        if found
        else f"torch's safe unpickler cannot read it ({_unpickler_reason(error)})"
    )
    return CheckpointError(
        f"refused to load {path}: {reason}. Unpickling it fully would run arbitrary code, so it"
        " was not loaded and none of its code ran. Only load files from a source you trust; if"
        " you trust this one, re-save its tensors as a plain dict (or .safetensors) yourself."
    )


def _unpickler_reason(error: Exception) -> str:
    # torch wraps the one useful line ("Unsupported operand 149") in paragraphs of advice.
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(error).splitlines()]
    useful = [line for line in lines if line and not line.startswith(boilerplate)]
    return " ".join(useful)[:300] or type(error).__name__


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    return CheckpointError(
        f"cannot read {path}: {_first_line(error)}. The file is probably truncated or corrupted"
        " (an interrupted download or copy); download or copy it again."
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
