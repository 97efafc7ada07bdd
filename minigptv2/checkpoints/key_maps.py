"""Explicit key maps from the three released formats to our parameter names (spec §8.2, §8.3).

Each map is a plain dict from a foreign key pattern to our key pattern. ``{}`` stands for a layer
or block number, copied from the foreign key into ours. ``None`` marks a key that is dropped on
purpose; it is listed in the load report, never silently skipped. A foreign key that matches no
pattern is *unexpected* and makes a strict load fail.

Our model (``minigptv2.model.MiniGPTv2``) names its parts by role:

* ``vision.*``: the EVA ViT, with exactly the names of ``eva_vit_g.pth``;
* ``vision_norm.*``: the reference's ``ln_vision``;
* ``projector.linear.*``: the reference's ``llama_proj``;
* ``language_model.base_model.model.*``: ``transformers``' ``LlamaForCausalLM`` (or another
  family's causal LM, ``families.py``) inside ``peft``'s LoRA wrapper, which renames a wrapped
  ``q_proj.weight`` to ``q_proj.base_layer.weight`` and adds ``q_proj.lora_A.default.weight`` /
  ``q_proj.lora_B.default.weight`` (same for ``v_proj``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from minigptv2.config import LanguageConfig, LoRAConfig

# -- EVA ViT-g: eva_vit_g.pth, a plain state dict without prefix ---------------------------------

EVA_KEYS: dict[str, str | None] = {
    "cls_token": "vision.cls_token",
    # Resampled from the file's 16x16 grid to the model's 32x32 before loading (spec §1.3).
    "pos_embed": "vision.pos_embed",
    "patch_embed.proj.weight": "vision.patch_embed.proj.weight",
    "patch_embed.proj.bias": "vision.patch_embed.proj.bias",
    "blocks.{}.norm1.weight": "vision.blocks.{}.norm1.weight",
    "blocks.{}.norm1.bias": "vision.blocks.{}.norm1.bias",
    "blocks.{}.attn.qkv.weight": "vision.blocks.{}.attn.qkv.weight",
    "blocks.{}.attn.q_bias": "vision.blocks.{}.attn.q_bias",
    "blocks.{}.attn.v_bias": "vision.blocks.{}.attn.v_bias",
    "blocks.{}.attn.proj.weight": "vision.blocks.{}.attn.proj.weight",
    "blocks.{}.attn.proj.bias": "vision.blocks.{}.attn.proj.bias",
    "blocks.{}.norm2.weight": "vision.blocks.{}.norm2.weight",
    "blocks.{}.norm2.bias": "vision.blocks.{}.norm2.bias",
    "blocks.{}.mlp.fc1.weight": "vision.blocks.{}.mlp.fc1.weight",
    "blocks.{}.mlp.fc1.bias": "vision.blocks.{}.mlp.fc1.bias",
    "blocks.{}.mlp.fc2.weight": "vision.blocks.{}.mlp.fc2.weight",
    "blocks.{}.mlp.fc2.bias": "vision.blocks.{}.mlp.fc2.bias",
    # A final norm or head would sit after the 40th block, which MiniGPT-v2 drops; if a file
    # has them they are dropped with it.
    "norm.weight": None,
    "norm.bias": None,
    "head.weight": None,
    "head.bias": None,
}
# The file's last block (``blocks.39.*`` in eva_vit_g.pth) is dropped by number, not by pattern:
# BLIP-2 and MiniGPT-v2 use the output of the penultimate block. See ``map_keys(dropped_layers=)``.
EVA_DROPPED_REASON = "after the penultimate EVA block, whose output MiniGPT-v2 uses"

# -- MiniGPT-v2 checkpoint: torch.load(path)["model"], trainable parameters and buffers ----------

_REF_LAYER = "llama_model.base_model.model.model.layers.{}.self_attn"
_OUR_LAYER = "language_model.base_model.model.model.layers.{}.self_attn"

MINIGPTV2_KEYS: dict[str, str | None] = {
    "llama_proj.weight": "projector.linear.weight",
    "llama_proj.bias": "projector.linear.bias",
    # Never present in the released files (ln_vision is frozen and never saved); loaded if a
    # checkpoint has it (spec §1.4).
    "ln_vision.weight": "vision_norm.weight",
    "ln_vision.bias": "vision_norm.bias",
    # LoRA as peft 0.2.0 (the reference's pin) names it: no adapter segment.
    f"{_REF_LAYER}.q_proj.lora_A.weight": f"{_OUR_LAYER}.q_proj.lora_A.default.weight",
    f"{_REF_LAYER}.q_proj.lora_B.weight": f"{_OUR_LAYER}.q_proj.lora_B.default.weight",
    f"{_REF_LAYER}.v_proj.lora_A.weight": f"{_OUR_LAYER}.v_proj.lora_A.default.weight",
    f"{_REF_LAYER}.v_proj.lora_B.weight": f"{_OUR_LAYER}.v_proj.lora_B.default.weight",
    # LoRA as peft >= 0.3 names it: adapter "default".
    f"{_REF_LAYER}.q_proj.lora_A.default.weight": f"{_OUR_LAYER}.q_proj.lora_A.default.weight",
    f"{_REF_LAYER}.q_proj.lora_B.default.weight": f"{_OUR_LAYER}.q_proj.lora_B.default.weight",
    f"{_REF_LAYER}.v_proj.lora_A.default.weight": f"{_OUR_LAYER}.v_proj.lora_A.default.weight",
    f"{_REF_LAYER}.v_proj.lora_B.default.weight": f"{_OUR_LAYER}.v_proj.lora_B.default.weight",
    # RoPE frequencies that transformers 4.30 saved as a buffer; recomputed, not loaded.
    f"{_REF_LAYER}.rotary_emb.inv_freq": None,
}

# -- a causal LM in Hugging Face format: the state dict of its *ForCausalLM ---------------------

# The file's keys are those of the very ``transformers`` class we build (``model/language.py``),
# so the map is derived from that class: each key to itself under our prefix, peft's
# ``base_layer`` inserted into the LoRA-wrapped modules (LLaMA: q_proj, v_proj), plus the keys
# below. For LLaMA-2 that gives model.embed_tokens, model.layers.{}.self_attn.{q,k,v,o}_proj,
# model.layers.{}.mlp.{gate,up,down}_proj, the two RMSNorms per layer, model.norm and lm_head.
IGNORED_REASON = "deterministic RoPE buffer, recomputed from the config"
# Old .bin exports (transformers < 4.31) hold the deterministic RoPE buffer; recomputed.
ROTARY_BUFFERS = ("model.layers.{}.self_attn.rotary_emb.inv_freq", "model.rotary_emb.inv_freq")
TIED_REASON = "tied to the input embeddings (tie_word_embeddings): one tensor, loaded once"


def language_prefix(lora: LoRAConfig | None) -> str:
    """Where the HF causal LM's root sits in our model: inside peft's wrapper or not."""
    return "language_model.base_model.model." if lora is not None else "language_model."


def language_key_map(
    language: LanguageConfig, lora: LoRAConfig | None, targets: tuple[str, ...] = ()
) -> dict[str, str | None]:
    """HF key pattern -> our key pattern for ``language``'s family; see above. A tied alias
    (``lm_head.weight`` of a model with tied embeddings) maps to ``None``: dropped if a file
    has it, since the embeddings it equals are loaded."""
    import torch

    from minigptv2.model.language import build_language_model, tied_aliases

    with torch.device("meta"):
        model = build_language_model(language, None)
    aliases = tied_aliases(model)
    prefix = language_prefix(lora)
    wrapped = targets if lora is not None else ()
    mapped: dict[str, str | None] = {pattern: None for pattern in ROTARY_BUFFERS}
    for key in model.state_dict():
        pattern = layer_pattern(key)
        if key in aliases:
            mapped[pattern] = None
            continue
        module, _, leaf = pattern.rpartition(".")
        if module.rpartition(".")[2] in wrapped:
            pattern_ours = f"{module}.base_layer.{leaf}"
        else:
            pattern_ours = pattern
        mapped[pattern] = prefix + pattern_ours
    return mapped


def llama_key_map(lora: LoRAConfig | None) -> dict[str, str | None]:
    """``language_key_map`` of LLaMA-2-7B, LoRA on q_proj and v_proj as released."""
    return language_key_map(LanguageConfig(), lora, ("q_proj", "v_proj"))


# -- applying a map -------------------------------------------------------------------------------

_LAYER = re.compile(r"\.(\d+)\.")


@dataclass
class KeyMapping:
    """The result of renaming one file's keys.

    Attributes:
        renamed: our key -> the foreign key it comes from.
        dropped: foreign key -> why it is deliberately not loaded.
        ignored: foreign keys of deterministic buffers that are recomputed instead.
        unexpected: foreign keys that no pattern knows (or that clash with another name).
    """

    renamed: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def map_keys(
    keys: Iterable[str],
    key_map: dict[str, str | None],
    *,
    dropped_layers: Collection[int] = (),
    dropped_reason: str = "",
) -> KeyMapping:
    """Rename ``keys`` with ``key_map``; keys of ``dropped_layers`` are dropped by number.

    A ``None`` target that is a RoPE buffer counts as *ignored*; any other ``None`` as *dropped*,
    as do the ``dropped_layers``, with ``dropped_reason`` as the explanation in the report.
    Two foreign names for the same key of ours (say peft 0.2.0 and peft 0.3 LoRA names side by
    side) are unexpected, because either could be the right one.
    """
    result = KeyMapping()
    for key in keys:
        match = _LAYER.search(key)
        layer = int(match.group(1)) if match else None
        pattern = layer_pattern(key)
        if pattern not in key_map:
            result.unexpected.append(key)
        elif layer is not None and layer in dropped_layers:
            result.dropped[key] = dropped_reason
        elif key_map[pattern] is None:
            if pattern.endswith("inv_freq"):
                result.ignored.append(key)
            else:
                result.dropped[key] = dropped_reason
        else:
            ours = key_map[pattern].format(layer)
            if ours in result.renamed:
                result.unexpected.append(key)
            else:
                result.renamed[ours] = key
    return result


def layer_pattern(key: str) -> str:
    """``key`` with its first layer number replaced by ``{}`` (the form key maps use)."""
    match = _LAYER.search(key)
    return key if match is None else key[: match.start()] + ".{}." + key[match.end() :]
