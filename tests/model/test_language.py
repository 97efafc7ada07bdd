"""The language model as data: families, configs that round-trip, LoRA targets, tied weights."""

import pytest
import torch
from llm_helpers import FAMILIES_UNDER_TEST, tiny_base, tiny_hf_config

from minigptv2.config import LanguageConfig, MiniGPTv2Config, get_preset
from minigptv2.errors import ConfigError
from minigptv2.families import FAMILIES
from minigptv2.model import MiniGPTv2
from minigptv2.model.language import (
    NOT_ARCHITECTURE,
    hf_config,
    language_config,
    llama_config,
    tied_aliases,
)

IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


def architecture(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in NOT_ARCHITECTURE}


@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_language_config_rebuilds_the_folder_config(family):
    original = tiny_hf_config(family, 300, IDS)
    language = language_config(original)
    assert language.family == family and language.hidden_size == 64
    assert architecture(hf_config(language)) == architecture(original)
    # Through JSON (our config.json) and back.
    again = MiniGPTv2Config.from_dict(tiny_base().replace(language=language).to_dict())
    assert again.language == language


def test_llama_2_needs_no_extra_fields():
    preset = get_preset("minigptv2-7b")
    assert language_config(llama_config(preset.language)) == preset.language
    assert preset.language.hf == {} and preset.lora_targets == ("q_proj", "v_proj")


@pytest.mark.parametrize("family", FAMILIES_UNDER_TEST)
def test_lora_wraps_the_family_projections_and_the_projector_follows_the_widths(family):
    language = language_config(tiny_hf_config(family, 300, IDS))
    config = tiny_base(vision_width=48).replace(language=language)
    model = MiniGPTv2(config)
    wrapped = {
        name.rpartition(".")[0].rpartition(".")[2]
        for name, _ in model.named_modules()
        if name.endswith(".lora_A")
    }
    assert wrapped == set(FAMILIES[family].lora_targets)
    assert model.projector.linear.weight.shape == (64, 48 * 4)


def test_phi3_lora_on_fused_qkv_reaches_q_k_and_v():
    language = language_config(tiny_hf_config("phi3", 300, IDS))
    model = MiniGPTv2(tiny_base().replace(language=language))
    layer = model.language_model.base_model.model.model.layers[0].self_attn.qkv_proj
    # One A (hidden -> r) and one B (r -> q + k + v): 64 + 2 * 64 rows for 4 heads of 16.
    assert layer.lora_A.default.weight.shape == (8, 64)
    assert layer.lora_B.default.weight.shape == (64 * 3, 8)


def test_explicit_targets_override_the_family():
    language = language_config(tiny_hf_config("qwen2", 300, IDS))
    config = tiny_base().replace(language=language)
    config = config.replace(lora=config.lora.__class__(rank=4, target_modules=("o_proj",)))
    assert config.lora_targets == ("o_proj",)


def test_unknown_family_names_the_supported_ones():
    with pytest.raises(ConfigError, match=r"gpt2.*not supported; use one of llama, mistral"):
        LanguageConfig(family="gpt2")


def test_tied_embeddings_are_one_parameter_under_two_names():
    language = language_config(tiny_hf_config("qwen2", 300, IDS))
    model = MiniGPTv2(tiny_base().replace(language=language))
    aliases = tied_aliases(model)
    assert aliases == {
        "language_model.base_model.model.lm_head.weight": (
            "language_model.base_model.model.model.embed_tokens.weight"
        )
    }
    head = model.language_model.get_output_embeddings().weight
    assert head is model.language_model.get_input_embeddings().weight
    assert torch.equal(head, model.state_dict()[next(iter(aliases))])
