"""Build a model from renamed tensors without allocating random weights first.

The model is built on the meta device (shapes only; the 7B model takes about a second), every
key is checked against the sources, and the tensors are then put in place with
``load_state_dict(assign=True)``. Peak memory is therefore one copy of the weights, which is what
lets LLaMA-2-7B plus EVA-g load in bf16 on a 24 GB machine.

Two things a meta build leaves behind are handled here explicitly: keys no file provides on
purpose (a fresh projector and LoRA, the identity ``ln_vision``) get their documented
initialisation, and the non-persistent RoPE buffers (``inv_freq``), which no state dict carries,
are recomputed from the LLaMA config.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from minigptv2.checkpoints.key_maps import IGNORED_REASON, KeyMapping
from minigptv2.checkpoints.report import KeyNote, LoadReport
from minigptv2.checkpoints.safe_load import shape_of
from minigptv2.config import MiniGPTv2Config
from minigptv2.model.language import retie, tied_aliases
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.model.summary import build_on_meta

Shapes = dict[str, tuple[tuple[int, ...], torch.dtype]]


def _generic_hint(kind: str, key: str) -> str:
    return {
        "missing": "it lacks these",
        "unexpected": "the model has no place for these",
        "shape": "these do not fit the model",
    }[kind]


@dataclass
class Part:
    """The tensors of one file or folder, renamed to our keys, with what to say if they misfit.

    Attributes:
        label: the source as a user knows it, e.g. "the EVA file /data/eva_vit_g.pth".
        tensors: the file's own ``{key: tensor}`` (possibly lazy).
        mapping: our key -> file key, plus the file's dropped, ignored and unexpected keys.
        responsible: which of the model's keys this source must provide (to blame it for gaps).
        transforms: our key -> function applied to the file's tensor (position-embedding
            resampling).
        explain: ``(kind, key) -> probable cause`` for kind "missing", "unexpected" or "shape".
        notes: remarks for the report, such as what was resampled.
    """

    label: str
    tensors: Mapping[str, Tensor]
    mapping: KeyMapping
    responsible: Callable[[str], bool]
    transforms: dict[str, Callable[[Tensor], Tensor]] = field(default_factory=dict)
    explain: Callable[[str, str], str] = _generic_hint
    notes: list[str] = field(default_factory=list)

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of our ``key`` as it will be loaded (after any transform)."""
        if key in self.transforms:
            return tuple(self.tensor(key).shape)
        return shape_of(self.tensors, self.mapping.renamed[key])

    def tensor(self, key: str) -> Tensor:
        """The tensor for our ``key``, read from the file now and transformed if needed."""
        tensor = self.tensors[self.mapping.renamed[key]]
        transform = self.transforms.get(key)
        return transform(tensor) if transform is not None else tensor

    def without(self, keys: set[str]) -> Part:
        """This part minus some of our keys: another source provides them instead."""
        mapping = replace(
            self.mapping,
            renamed={
                ours: theirs for ours, theirs in self.mapping.renamed.items() if ours not in keys
            },
        )
        return replace(
            self, mapping=mapping, responsible=lambda k: self.responsible(k) and k not in keys
        )


def model_shapes(model: nn.Module) -> Shapes:
    """``{key: (shape, dtype)}`` of everything ``load_state_dict`` expects, each tensor once (a
    tied alias such as the ``lm_head.weight`` of tied embeddings is loaded with its key)."""
    aliases = tied_aliases(model)
    return {
        key: (tuple(t.shape), t.dtype)
        for key, t in model.state_dict().items()
        if key not in aliases
    }


def plan_load(
    expected: Shapes,
    parts: list[Part],
    fresh: Callable[[str], str | None] = lambda key: None,
) -> tuple[dict[str, Part], LoadReport]:
    """Which part provides each key, and a report of everything that does not fit.

    Works on shapes alone (file headers, meta tensors), so it can check a 7B load before any
    weight is read. ``fresh(key)`` gives the reason a key legitimately comes from no file.
    """
    plan: dict[str, Part] = {}
    report = LoadReport()
    for part in parts:
        _note_part(part, expected, plan, report)
    misshapen = {note.key for note in report.mismatched}
    for key in expected:
        if key in plan or key in misshapen:
            continue
        reason = fresh(key)
        if reason is not None:
            report.fresh.append(KeyNote(key, "initialised here", reason))
            continue
        owner = next((part for part in parts if part.responsible(key)), None)
        if owner is None:
            report.missing.append(KeyNote(key, "no source", "no file provides these"))
        else:
            report.missing.append(KeyNote(key, owner.label, owner.explain("missing", key)))
    report.loaded = len(plan)
    return plan, report


def _note_part(part: Part, expected: Shapes, plan: dict[str, Part], report: LoadReport) -> None:
    label, mapping = part.label, part.mapping
    report.unexpected += [
        KeyNote(key, label, part.explain("unexpected", key)) for key in mapping.unexpected
    ]
    report.dropped += [KeyNote(key, label, reason) for key, reason in mapping.dropped.items()]
    report.ignored += [KeyNote(key, label, IGNORED_REASON) for key in mapping.ignored]
    report.notes += part.notes
    for ours, theirs in mapping.renamed.items():
        if ours not in expected:
            report.unexpected.append(KeyNote(theirs, label, part.explain("unexpected", ours)))
            continue
        if ours in plan:  # two sources for one weight: neither can be trusted to be the right one
            reason = f"{plan[ours].label} provides the same weights"
            report.unexpected.append(KeyNote(theirs, label, reason))
            continue
        found, (wanted, _) = part.shape(ours), expected[ours]
        if found != wanted:
            detail = f"model {list(wanted)}, file {list(found)}"
            report.mismatched.append(KeyNote(ours, label, part.explain("shape", ours), detail))
        else:
            plan[ours] = part


def assemble(
    config: MiniGPTv2Config,
    parts: list[Part],
    *,
    fresh: Callable[[str], str | None] = lambda key: None,
    strict: bool = True,
    what: str = "the weights",
) -> tuple[MiniGPTv2, LoadReport]:
    """A real (CPU) model from ``parts``, after checking every key on the meta device.

    With ``strict`` any missing, unexpected or wrong-shaped key raises ``CheckpointError`` before
    a tensor is read. Without it the problems are printed to stderr, the keys that fit are
    loaded and the rest keep a fresh initialisation. The report is also kept as
    ``model.load_report``.
    """
    model = build_on_meta(config)
    expected = model_shapes(model)
    plan, report = plan_load(expected, parts, fresh)
    if strict:
        report.raise_if_problems(what)
    elif not report.ok:
        print(f"warning: {what} loaded with problems (strict=False):", file=sys.stderr)
        print(report.format(), file=sys.stderr)
    materialise(model, plan, expected)
    model.eval()
    model.load_report = report
    return model, report


def materialise(model: nn.Module, plan: dict[str, Part], expected: Shapes) -> None:
    """Replace every meta tensor of ``model``: planned keys from files, others freshly."""
    state: dict[str, Tensor] = {}
    for key, (shape, dtype) in expected.items():
        part = plan.get(key)
        if part is None:
            state[key] = fresh_tensor(key, shape, dtype, expected)
        else:
            # Always a private copy: a tensor memory-mapped from a .pth would otherwise break
            # (SIGBUS) if that file were rewritten while the model lives.
            state[key] = part.tensor(key).to(dtype=dtype, copy=True).contiguous()
    aliases = tied_aliases(model)
    state |= {alias: state[key] for alias, key in aliases.items()}
    model.load_state_dict(state, strict=True, assign=True)
    retie(model, aliases)
    restore_rotary_buffers(model)
    leftovers = [
        name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta
    ]
    if leftovers:
        raise RuntimeError(f"tensors left on the meta device after loading: {leftovers[:5]}")


def fresh_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype, expected: Shapes) -> Tensor:
    """The initialisation a key gets when no file provides it.

    LoRA follows peft (A Kaiming-uniform, B zero, so a fresh adapter changes nothing); the
    projector follows ``nn.Linear``; ``vision_norm`` is the identity LayerNorm the released
    projector was trained on (spec §1.4). Anything else only happens in a non-strict load of an
    incomplete file: norm weights 1, other vectors 0, matrices N(0, 0.02).
    """
    tensor = torch.empty(shape, dtype=torch.float32)
    if "lora_B." in key:
        nn.init.zeros_(tensor)
    elif "lora_A." in key or key == "projector.linear.weight":
        nn.init.kaiming_uniform_(tensor, a=math.sqrt(5))
    elif key == "projector.linear.bias":
        fan_in = expected["projector.linear.weight"][0][1]
        nn.init.uniform_(tensor, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
    elif tensor.ndim == 1 and key.endswith("weight") and "norm" in key:
        nn.init.ones_(tensor)
    elif tensor.ndim <= 1:
        nn.init.zeros_(tensor)
    else:
        nn.init.normal_(tensor, std=0.02)
    return tensor.to(dtype)


def restore_rotary_buffers(model: nn.Module) -> None:
    """Recompute RoPE's ``inv_freq`` buffers, which are not saved and so stayed on meta."""
    for module in model.modules():
        buffers = getattr(module, "_buffers", {})
        if not any(b is not None and b.is_meta for b in buffers.values()):
            continue
        if not hasattr(module, "config") or "inv_freq" not in buffers:
            continue
        with torch.device("cpu"):
            rebuilt = type(module)(module.config)
        for name, buffer in rebuilt.named_buffers(recurse=False):
            module._buffers[name] = buffer
