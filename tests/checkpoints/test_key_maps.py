"""The key maps on their own, the grouped report, and the full-size 7B plan on the meta device."""

from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from minigptv2.checkpoints.assemble import Part, model_shapes, plan_load
from minigptv2.checkpoints.key_maps import (
    EVA_KEYS,
    MINIGPTV2_KEYS,
    KeyMapping,
    llama_key_map,
    map_keys,
)
from minigptv2.checkpoints.released import (
    ReleasedFiles,
    eva_vision_config,
    fresh_reasons,
    language_config,
    released_config,
    released_parts,
)
from minigptv2.checkpoints.report import KeyNote, LoadReport, collapse_keys, number_ranges
from minigptv2.config import LoRAConfig, get_preset
from minigptv2.errors import CheckpointError
from minigptv2.model.language import llama_config
from minigptv2.model.summary import build_on_meta

REF = "llama_model.base_model.model.model.layers"
OURS = "language_model.base_model.model.model.layers"


def test_reference_lora_names_with_and_without_default_map_to_ours():
    keys = [
        f"{REF}.3.self_attn.q_proj.lora_A.weight",
        f"{REF}.3.self_attn.v_proj.lora_B.default.weight",
        f"{REF}.3.self_attn.rotary_emb.inv_freq",
        "llama_proj.weight",
        "llama_model.base_model.model.lm_head.0.weight",
    ]
    mapping = map_keys(keys, MINIGPTV2_KEYS)
    assert mapping.renamed == {
        f"{OURS}.3.self_attn.q_proj.lora_A.default.weight": keys[0],
        f"{OURS}.3.self_attn.v_proj.lora_B.default.weight": keys[1],
        "projector.linear.weight": "llama_proj.weight",
    }
    assert mapping.ignored == [keys[2]]
    assert mapping.unexpected == [keys[4]]


def test_both_lora_namings_for_one_key_is_unexpected():
    keys = [
        f"{REF}.0.self_attn.q_proj.lora_A.weight",
        f"{REF}.0.self_attn.q_proj.lora_A.default.weight",
    ]
    mapping = map_keys(keys, MINIGPTV2_KEYS)
    assert len(mapping.renamed) == 1 and mapping.unexpected == [keys[1]]


def test_eva_last_block_is_dropped_by_number():
    keys = ["cls_token", "blocks.0.attn.qkv.weight", "blocks.1.attn.qkv.weight", "norm.weight"]
    mapping = map_keys(keys, EVA_KEYS, dropped_layers={1}, dropped_reason="last block")
    assert mapping.renamed == {
        "vision.cls_token": "cls_token",
        "vision.blocks.0.attn.qkv.weight": "blocks.0.attn.qkv.weight",
    }
    assert mapping.dropped == {
        "blocks.1.attn.qkv.weight": "last block",
        "norm.weight": "last block",
    }


def test_llama_map_follows_the_lora_wrapper():
    wrapped = llama_key_map(LoRAConfig())
    assert (
        wrapped["model.layers.{}.self_attn.q_proj.weight"]
        == f"{OURS}.{{}}.self_attn.q_proj.base_layer.weight"
    )
    assert (
        wrapped["model.layers.{}.self_attn.k_proj.weight"] == f"{OURS}.{{}}.self_attn.k_proj.weight"
    )
    assert wrapped["lm_head.weight"] == "language_model.base_model.model.lm_head.weight"
    plain = llama_key_map(None)
    assert (
        plain["model.layers.{}.self_attn.q_proj.weight"]
        == "language_model.model.layers.{}.self_attn.q_proj.weight"
    )


def test_report_collapses_layer_numbers():
    notes = [
        KeyNote(f"{OURS}.{i}.self_attn.q_proj.lora_A.default.weight", "ckpt", "why")
        for i in range(32)
    ]
    notes.append(KeyNote("projector.linear.bias", "ckpt", "why"))
    assert collapse_keys(notes) == [
        f"{OURS}.{{0-31}}.self_attn.q_proj.lora_A.default.weight (32 keys)",
        "projector.linear.bias",
    ]
    assert number_ranges([5, 0, 1, 2, 3, 7, 8]) == "0-3,5,7-8"
    report = LoadReport(missing=notes)
    assert len(report.problems().splitlines()) == 4  # title, cause, two key lines


# -- the full-size model, without files ----------------------------------------------------------

SPEC_EVA_BLOCK = {  # spec §8.3, per block
    "norm1.weight": [1408],
    "norm1.bias": [1408],
    "attn.qkv.weight": [4224, 1408],
    "attn.q_bias": [1408],
    "attn.v_bias": [1408],
    "attn.proj.weight": [1408, 1408],
    "attn.proj.bias": [1408],
    "norm2.weight": [1408],
    "norm2.bias": [1408],
    "mlp.fc1.weight": [6144, 1408],
    "mlp.fc1.bias": [6144],
    "mlp.fc2.weight": [1408, 6144],
    "mlp.fc2.bias": [1408],
}


def _meta(shape, dtype=torch.float16):
    return torch.empty(shape, dtype=dtype, device="meta")


def released_7b_on_meta():
    """eva_vit_g.pth, Llama-2-7b-chat-hf and the MiniGPT-v2 checkpoint as meta tensors."""
    eva = {
        "cls_token": _meta([1, 1, 1408]),
        "pos_embed": _meta([1, 257, 1408]),
        "patch_embed.proj.weight": _meta([1408, 3, 14, 14]),
        "patch_embed.proj.bias": _meta([1408]),
    }
    for block in range(40):
        eva |= {f"blocks.{block}.{name}": _meta(s) for name, s in SPEC_EVA_BLOCK.items()}
    checkpoint = {"llama_proj.weight": _meta([4096, 5632]), "llama_proj.bias": _meta([4096])}
    for layer in range(32):
        prefix = f"{REF}.{layer}.self_attn."
        for module in ("q_proj", "v_proj"):
            checkpoint[prefix + f"{module}.lora_A.weight"] = _meta([64, 4096], torch.float32)
            checkpoint[prefix + f"{module}.lora_B.weight"] = _meta([4096, 64], torch.float32)
        checkpoint[prefix + "rotary_emb.inv_freq"] = _meta([64], torch.float32)
    hf_config = llama_config(get_preset("minigptv2-7b").language)
    with torch.device("meta"):
        llama = LlamaForCausalLM(hf_config).state_dict()
    return eva, hf_config, llama, checkpoint


def test_7b_plan_covers_every_key_on_meta():
    eva, hf_config, llama, checkpoint = released_7b_on_meta()
    files = ReleasedFiles(Path("eva_vit_g.pth"), Path("Llama-2-7b-chat-hf"), Path("ckpt.pth"))
    language = language_config(hf_config, "config.json")
    config = released_config(eva, language, checkpoint, files=files)
    assert config == get_preset("minigptv2-7b")  # every size read off the files

    parts = released_parts(config, files, eva, llama, checkpoint)
    expected = model_shapes(build_on_meta(config))
    plan, report = plan_load(expected, parts, fresh_reasons(has_checkpoint=True))

    assert report.ok, report.format()
    assert set(plan) | {note.key for note in report.fresh} == set(expected)
    assert {note.key for note in report.fresh} == {"vision_norm.weight", "vision_norm.bias"}
    assert {note.key for note in report.dropped} == {f"blocks.39.{name}" for name in SPEC_EVA_BLOCK}
    assert len(report.ignored) == 32
    assert "blocks.39.* (13 keys" in report.format()
    # Spec §8.2 / §8.3 shapes land where they belong; pos_embed is resampled 257 -> 1025.
    lora_a = f"{OURS}.31.self_attn.v_proj.lora_A.default.weight"
    assert expected["projector.linear.weight"][0] == (4096, 5632)
    assert expected[lora_a][0] == (64, 4096)
    assert expected["vision.blocks.38.attn.qkv.weight"][0] == (4224, 1408)
    assert plan["vision.pos_embed"].shape("vision.pos_embed") == (1, 1025, 1408)
    assert plan[lora_a].mapping.renamed[lora_a] == f"{REF}.31.self_attn.v_proj.lora_A.weight"
    q_base = f"{OURS}.0.self_attn.q_proj.base_layer.weight"
    assert plan[q_base].mapping.renamed[q_base] == "model.layers.0.self_attn.q_proj.weight"


def test_a_trimmed_eva_g_file_is_refused():
    eva, *_ = released_7b_on_meta()
    trimmed = {k: v for k, v in eva.items() if not k.startswith("blocks.39.")}
    with pytest.raises(CheckpointError, match="has 39 blocks but EVA ViT-g has 40"):
        eva_vision_config(trimmed, Path("eva_vit_g.pth"), image_size=448)


def test_two_sources_for_one_key_are_both_suspect():
    tensors = {"projector.linear.bias": torch.zeros(4)}

    def part(label):
        mapping = KeyMapping(renamed={"projector.linear.bias": "projector.linear.bias"})
        return Part(label, tensors, mapping, responsible=lambda key: True)

    expected = {"projector.linear.bias": ((4,), torch.float32)}
    plan, report = plan_load(expected, [part("first"), part("second")])
    assert plan["projector.linear.bias"].label == "first"
    assert [(n.source, n.reason) for n in report.unexpected] == [
        ("second", "first provides the same weights")
    ]
