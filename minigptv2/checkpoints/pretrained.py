"""Our own checkpoint format: ``config.json``, ``model.safetensors`` and the tokenizer.

The tokenizer is LLaMA's SentencePiece ``tokenizer.model``, or, for a language model that brings
a ``transformers`` tokenizer, its ``tokenizer.json`` / ``tokenizer_config.json`` (with its chat
template); ``tokenizer.load_tokenizer`` tells them apart.

``config.json`` is ``MiniGPTv2Config.to_dict()`` plus ``model_type`` and a ``checkpoint_format``
block::

    {"model_type": "minigptv2", "vision": {...}, "language": {...}, "lora": {...}, ...,
     "checkpoint_format": {"version": 1, "contents": "trainable", "base": {...}}}

``model_type`` is the key transformers' ``AutoConfig`` dispatches on, so
``AutoModelForImageTextToText`` and ``pipeline`` open our folders (``minigptv2/integrations``). It
changes nothing else: folders written before it was added load as they did.

``contents`` is ``"full"`` (every weight; loads alone) or ``"trainable"`` (the default: projector,
LoRA, ``vision_norm`` and whatever ``model.trainable`` switches on -- tens of MB instead of 14 GB).
A trainable save records its ``base``: the released EVA file and LLaMA folder (paths, EVA file
size, LLaMA sizes) or one of our full folders, and is loaded on top of it.

Saving is atomic: everything is written into a hidden temporary folder next to the target, which
is renamed into place only when complete. A crash mid-save leaves no loadable half folder and
keeps a previous save at the same path intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from minigptv2.checkpoints.assemble import Part, assemble
from minigptv2.checkpoints.key_maps import KeyMapping
from minigptv2.checkpoints.released import (
    check_same_base,
    checkpoint_lora_rank,
    checkpoint_part,
    open_released,
    read_checkpoint,
)
from minigptv2.checkpoints.safe_load import read_state_dict, require_file
from minigptv2.config import MiniGPTv2Config
from minigptv2.constants import MODEL_TYPE
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.model.language import tied_aliases
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.tokenizer import HF_TOKENIZER_FILES, AnyTokenizer, load_tokenizer

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_KEY = "checkpoint_format"
# What transformers' AutoConfig reads to find our classes (minigptv2/integrations/hf_config.py).
MODEL_TYPE_KEY = "model_type"
# Not in any base file, so a trainable-only save always carries them.
ALWAYS_SAVED = ("projector", "lora")


@dataclass
class SavedFolder:
    """A folder of ours, read: its config, what it contains, its base and its weights (lazy)."""

    path: Path
    config: MiniGPTv2Config
    contents: str
    base: dict[str, Any] | None
    part: Part


# -- saving --------------------------------------------------------------------------------------


def save_pretrained(
    model: MiniGPTv2, tokenizer: AnyTokenizer, directory: str | Path, *, full: bool = False
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` atomically; return the path.

    Args:
        full: save every weight. By default only the parts no base file holds (projector, LoRA,
            ``vision_norm``) plus the components ``model.trainable`` trains, with a record of the
            base files (``model.weights_source``) to load them on top of.
    """
    directory = Path(directory)
    keys = saved_keys(model, full=full)
    # A model that trains everything (e.g. from scratch) has no base to record.
    full = full or keys == saved_keys(model, full=True)
    base = None if full else _base_record(model)
    meta = {MODEL_TYPE_KEY: MODEL_TYPE, **model.config.to_dict()}
    meta[FORMAT_KEY] = {
        "version": FORMAT_VERSION,
        "contents": "full" if full else "trainable",
        "base": base,
    }
    _check_target(directory)
    if base is not None and base.get("path") == str(directory.resolve()):
        raise CheckpointError(
            f"a trainable-only save to {directory} would replace the full folder it builds on;"
            " save to another folder, or with full=True"
        )
    state = {key: t.detach().contiguous() for key, t in model.state_dict().items() if key in keys}
    with atomic_directory(directory) as staging:
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        tokenizer.save(staging)
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def saved_keys(model: MiniGPTv2, *, full: bool) -> set[str]:
    """State-dict keys a save holds: all, or those of the projector, LoRA, the vision norm, the
    ViT's position table and the components ``model.trainable`` switches on (as
    ``MiniGPTv2.parameter_groups`` sorts them).
    A tied alias (``lm_head.weight`` of tied embeddings) is never saved: its key is.
    """
    if full:
        return set(model.state_dict()) - set(tied_aliases(model))
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    keys = {key for key in model.state_dict() if key.startswith("vision_norm.")}
    # The ViT's position table follows the image size, which a stage may change
    # (MiniGPTv2.set_image_size): a base holds it at the base's size.
    keys.add("vision.pos_embed")
    for component, parameters in model.parameter_groups().items():
        if component in ALWAYS_SAVED or getattr(model.trainable, component):
            keys |= {names[id(parameter)] for parameter in parameters}
    return keys


def _base_record(model: MiniGPTv2) -> dict[str, Any]:
    source = getattr(model, "weights_source", None)
    if source is None:
        raise CheckpointError(
            "this model's base weights are not on record (it was built or changed in memory, e.g."
            " by merging LoRA), so a trainable-only save could not be loaded again; save it with"
            " full=True (CLI: drop --trainable-only)"
        )
    return source


def _check_target(directory: Path) -> None:
    """Refuse to replace anything that is not one of our saves."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CheckpointError(f"{directory} exists and is a file; choose another output folder")
    # A folder holding only tokenizer files is what a processor saved first (integrations/).
    tokenizer_files = {"tokenizer.model", *HF_TOKENIZER_FILES}
    if {path.name for path in directory.iterdir()} - tokenizer_files and not _is_ours(directory):
        raise CheckpointError(
            f"{directory} exists and is not a minigptv2 save; choose another output folder or"
            " empty it first (it would be replaced)"
        )


def _is_ours(directory: Path) -> bool:
    try:
        return FORMAT_KEY in json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a staging folder that replaces ``target`` only if the block completes.

    On any failure the staging folder is removed and ``target`` is left as it was. Replacing an
    existing folder takes two renames (there is no portable atomic directory swap); if the
    process dies between them the previous save is still complete under ``.NAME.old-*``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name}.partial-{tag}"
    old = target.parent / f".{target.name}.old-{tag}"
    staging.mkdir()
    try:
        yield staging
        _finish_files(staging)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# What ``atomic_directory`` leaves behind when its process is killed (SIGKILL, power loss): the
# staging folder, and during a replacement the previous save set aside.
_INTERRUPTED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[0-9a-f]{8}$")


def recover_interrupted_writes(folder: Path) -> list[str]:
    """Tidy ``folder`` after ``atomic_directory`` writes that were killed; returns what was done.

    A staging folder was never renamed into place, so it is not a save: it is removed. A previous
    save set aside (``.NAME.old-*``) is complete: it goes back to ``NAME`` if the replacement
    never arrived, and is removed only when ``NAME`` holds the newer complete save. Complete
    folders (``NAME`` itself) are never touched.
    """
    if not folder.is_dir():
        return []
    done = []
    for path in sorted(folder.iterdir()):
        match = _INTERRUPTED.match(path.name)
        if match is None or not path.is_dir():
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.replace(path, target)
            done.append(f"restored {target.name} from {path.name}")
        else:
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
    return done


def _finish_files(folder: Path) -> None:
    """Give files the usual permissions (safetensors writes 0600) and flush them to disk, since
    renaming is only crash-safe once the data it points to is there."""
    mode = 0o666 & ~_umask()
    for path in folder.iterdir():
        path.chmod(mode)
        with path.open("rb") as file:
            os.fsync(file.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# -- loading -------------------------------------------------------------------------------------


def load_pretrained(
    directory: str | Path,
    *,
    base: str | Path | None = None,
    strict: bool = True,
    dtype: str | None = None,
) -> tuple[MiniGPTv2, AnyTokenizer]:
    """A model saved by ``save_pretrained``, and its tokenizer.

    Args:
        base: for a trainable-only save, one of our full folders to load it on top of; by
            default the base recorded in its ``config.json``.
        strict: refuse missing, unexpected or wrong-shaped keys (see ``load_released``).
        dtype: override the saved dtype of the frozen weights ("float32" or "bfloat16").
    """
    directory = Path(directory)
    config, parts, source = folder_parts(directory, base)
    if dtype is not None:
        config = config.replace(dtype=dtype)
    model, _ = assemble(config, parts, strict=strict, what=f"the folder {directory}")
    model.weights_source = source
    return model, load_tokenizer(directory)


def read_config(directory: str | Path) -> MiniGPTv2Config:
    """The model config of one of our folders, without opening its weights."""
    directory = Path(directory)
    meta, _ = _read_config_json(directory)
    return _model_config(meta, directory)


def _model_config(meta: dict[str, Any], directory: Path) -> MiniGPTv2Config:
    try:
        return MiniGPTv2Config.from_dict(meta)
    except ConfigError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {error}") from None


def read_folder(directory: Path) -> SavedFolder:
    """``config.json`` and the (lazy) weights of one of our folders, with format checks."""
    meta, form = _read_config_json(directory)
    config = _model_config(meta, directory)
    weights = read_state_dict(require_file(directory / WEIGHTS_FILE))
    part = Part(
        label=f"the folder {directory}",
        tensors=weights,
        mapping=KeyMapping(renamed={key: key for key in weights}),
        responsible=_overlay_keys if form["contents"] == "trainable" else lambda key: True,
        explain=_explain_folder,
    )
    return SavedFolder(directory, config, form["contents"], form.get("base"), part)


def _read_config_json(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model config and the ``checkpoint_format`` block, checked."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not a minigptv2 folder (no {CONFIG_FILE}); create one with"
            " `minigptv2 convert` or save_pretrained"
        )
    try:
        meta = json.loads(path.read_text())
        form = meta.pop(FORMAT_KEY)
        version, contents = form.get("version"), form.get("contents")
    except (ValueError, KeyError, AttributeError, TypeError):
        raise CheckpointError(
            f"{path} is not a minigptv2 config (no {FORMAT_KEY} block); point at a folder"
            " written by save_pretrained"
        ) from None
    # Absent from folders saved before transformers integration; the same format otherwise.
    model_type = meta.pop(MODEL_TYPE_KEY, MODEL_TYPE)
    if model_type != MODEL_TYPE:
        raise CheckpointError(
            f"{path} says model_type {model_type!r}, not {MODEL_TYPE!r}; it belongs to another"
            " library (load it with that) or was edited by hand"
        )
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} uses checkpoint format {version}, this version of minigptv2 reads"
            f" format {FORMAT_VERSION}; use the minigptv2 release that wrote it"
        )
    if contents not in ("full", "trainable"):
        raise CheckpointError(
            f"{path}: contents must be 'full' or 'trainable', got {contents!r}; the file was"
            " edited by hand or is damaged"
        )
    return meta, form


def folder_parts(
    directory: Path, base: str | Path | None = None
) -> tuple[MiniGPTv2Config, list[Part], dict[str, Any]]:
    """The config and sources of a folder of ours, following a trainable save to its base."""
    saved = read_folder(directory)
    if saved.contents == "full":
        return saved.config, [saved.part], {"kind": "pretrained", "path": str(directory.resolve())}
    base_config, base_parts, source = _base_parts(saved, base)
    _check_base_matches(saved, base_config, source)
    replaced = set(saved.part.mapping.renamed)
    return saved.config, [p.without(replaced) for p in base_parts] + [saved.part], source


def _base_parts(
    saved: SavedFolder, base: str | Path | None
) -> tuple[MiniGPTv2Config, list[Part], dict[str, Any]]:
    if base is not None:
        return folder_parts(Path(base))
    record = saved.base or {}
    try:
        if record.get("kind") == "pretrained":
            return folder_parts(Path(record["path"]))
        if record.get("kind") == "released":
            return _released_base(saved, record)
        if record.get("kind") == "llm":
            return _language_model_base(saved, record)
    except CheckpointError as error:
        raise CheckpointError(
            f"{saved.path} holds only trainable weights and needs its base files: {error}\n"
            "Restore them, or pass base= (CLI: --base) with one of our full folders."
        ) from None
    raise CheckpointError(f"{saved.path}: unknown base record {record!r}; pass base= explicitly")


def _released_base(
    saved: SavedFolder, record: dict[str, Any]
) -> tuple[MiniGPTv2Config, list[Part], dict[str, Any]]:
    vision = saved.config.vision
    sources = open_released(
        record["eva"],
        record["llama"],
        dtype=saved.config.dtype,
        image_size=vision.image_size,
        vision_heads=vision.num_heads,
    )
    size = sources.files.eva.stat().st_size
    if size != record.get("eva_bytes"):
        raise CheckpointError(
            f"the EVA file {sources.files.eva} has changed since the save"
            f" ({record.get('eva_bytes')} bytes then, {size} now)"
        )
    return sources.config, sources.parts, record


def _language_model_base(
    saved: SavedFolder, record: dict[str, Any]
) -> tuple[MiniGPTv2Config, list[Part], dict[str, Any]]:
    from minigptv2.checkpoints.language_folder import open_language_model

    sources = open_language_model(
        record["llm"], saved.config, eva=record["eva"], vision_heads=saved.config.vision.num_heads
    )
    size = Path(record["eva"]).stat().st_size
    if size != record.get("eva_bytes"):
        raise CheckpointError(
            f"the EVA file {record['eva']} has changed since the save"
            f" ({record.get('eva_bytes')} bytes then, {size} now)"
        )
    return sources.config, sources.parts, record


def _check_base_matches(saved: SavedFolder, base: MiniGPTv2Config, source: dict[str, Any]) -> None:
    """The base must have the sizes the trainable weights were trained on."""
    ours = saved.config
    # The image size may differ: the folder holds the position table at its own size.
    base = base.replace(vision=replace(base.vision, image_size=ours.vision.image_size))
    differences = [
        f"{name}: saved with {getattr(ours, name)}, base has {getattr(base, name)}"
        for name in ("vision", "language")
        if getattr(ours, name) != getattr(base, name)
    ]
    if (ours.lora is None) != (base.lora is None):
        differences.append("LoRA: one of them has merged its LoRA weights")
    if differences:
        where = source.get("path") or source.get("llama") or source.get("llm")
        raise CheckpointError(
            f"the base of {saved.path} ({where}) does not match it:\n"
            + "\n".join(f"  - {line}" for line in differences)
        )


def _overlay_keys(key: str) -> bool:
    return key.startswith(("projector.", "vision_norm.")) or "lora_" in key


def _explain_folder(kind: str, key: str) -> str:
    return {
        "missing": "the folder's weights lack these; it was not written by this save format",
        "unexpected": "the model built from its config.json has no such keys",
        "shape": "its weights disagree with its config.json",
    }[kind]


# -- a released checkpoint on top of one of our folders ----------------------------------------


def apply_released_checkpoint(
    base_dir: str | Path, checkpoint: str | Path, *, strict: bool = True
) -> tuple[MiniGPTv2, AnyTokenizer]:
    """Our folder ``base_dir`` with its projector and LoRA replaced by a released checkpoint's.

    The checkpoint is checked against the folder's sizes first (LLM hidden size and layers, ViT
    width); the LoRA rank is taken from the checkpoint.
    """
    base_dir = Path(base_dir)
    base_config, base_parts, source = folder_parts(base_dir)
    if base_config.lora is None:
        raise CheckpointError(
            f"{base_dir} has its LoRA merged into the LLaMA weights; apply the checkpoint to an"
            " unmerged folder (convert without --merge-lora)"
        )
    checkpoint = require_file(checkpoint)
    tensors = read_checkpoint(checkpoint)
    rank = checkpoint_lora_rank(tensors) or base_config.lora.rank
    config = base_config.replace(lora=dataclasses.replace(base_config.lora, rank=rank))
    label = f"the MiniGPT-v2 checkpoint {checkpoint}"
    check_same_base(config, tensors, label, f"the folder {base_dir}")
    released = checkpoint_part(label, tensors)
    replaced = set(released.mapping.renamed) | {
        key for part in base_parts for key in part.mapping.renamed if _overlay_keys(key)
    }
    replaced -= {"vision_norm.weight", "vision_norm.bias"} - set(released.mapping.renamed)
    parts = [part.without(replaced) for part in base_parts] + [released]
    model, _ = assemble(config, parts, strict=strict, what=f"{label} on {base_dir}")
    model.weights_source = source
    return model, load_tokenizer(base_dir)
