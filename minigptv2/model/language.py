"""The language model: a ``transformers`` causal LM with LoRA from ``peft`` (spec §1.7, §1.8).

MiniGPT-v2 uses LLaMA-2-7B-chat; any family in ``minigptv2.families.FAMILIES`` is built the same
way, from ``LanguageConfig`` (sizes, family, other ``config.json`` fields) through ``AutoConfig``
and the family's own ``*ForCausalLM`` class. No copy of an upstream class is kept: these classes
already compute the loss MiniGPT-v2 uses (token-mean cross-entropy over labels that are not -100,
logits in fp32).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from torch import nn
from transformers import AutoConfig, LlamaConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from minigptv2.config import LanguageConfig, LoRAConfig

# Fields of a ``config.json`` that describe the file or the runtime, not the network.
NOT_ARCHITECTURE = frozenset(
    {
        "_name_or_path", "architectures", "transformers_version", "model_type", "dtype",
        "torch_dtype", "id2label", "label2id", "auto_map", "use_cache", "return_dict",
        "output_attentions", "output_hidden_states", "problem_type", "_attn_implementation",
        "attn_implementation", "chunk_size_feed_forward", "is_encoder_decoder",
    }
)  # fmt: skip


def hf_config(config: LanguageConfig) -> PretrainedConfig:
    """The ``transformers`` config of ``config``'s family.

    The sizes give the fields every family shares; LLaMA-2's conventions (multi-head attention,
    untied embeddings, BOS 1 and EOS 2) are the defaults, and ``config.hf`` overrides them.
    """
    fields: dict[str, Any] = {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_heads,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        "attn_implementation": "sdpa",
    }
    if "rope_parameters" in config.hf:  # the whole RoPE description, theta included
        del fields["rope_theta"]
    fields.update(config.hf)
    return AutoConfig.for_model(config.family, **fields)


def llama_config(config: LanguageConfig) -> LlamaConfig:
    """The ``transformers`` config of a LLaMA-2-style decoder (MHA, SwiGLU, RMSNorm, RoPE)."""
    return hf_config(config)


def language_config(hf: PretrainedConfig) -> LanguageConfig:
    """Our ``LanguageConfig`` of a ``transformers`` config: sizes, family, and every other field
    that ``hf_config`` would not reproduce from them (so ``hf_config`` gives ``hf`` back)."""
    from minigptv2.families import get_family

    get_family(hf.model_type)
    rope = getattr(hf, "rope_parameters", None) or {}
    sizes = LanguageConfig(
        vocab_size=hf.vocab_size,
        hidden_size=hf.hidden_size,
        num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads,
        intermediate_size=hf.intermediate_size,
        rms_norm_eps=hf.rms_norm_eps,
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        max_position_embeddings=hf.max_position_embeddings,
        family=hf.model_type,
    )
    rebuilt = hf_config(sizes).to_dict()
    extra = {
        key: value
        for key, value in hf.to_dict().items()
        if key not in NOT_ARCHITECTURE and rebuilt.get(key) != value
    }
    return replace(sizes, hf=extra)


def causal_lm_class(config: PretrainedConfig) -> type[nn.Module]:
    """The family's ``*ForCausalLM`` class (what ``AutoModelForCausalLM`` would pick)."""
    return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]


def build_language_model(
    config: LanguageConfig, lora: LoRAConfig | None, targets: tuple[str, ...] = ()
) -> nn.Module:
    """A randomly initialised causal LM, wrapped with LoRA on ``targets`` when ``lora`` is given."""
    hf = hf_config(config)
    model = causal_lm_class(hf)(hf)
    return add_lora(model, lora, targets) if lora is not None else model


def add_lora(model: nn.Module, lora: LoRAConfig, targets: tuple[str, ...]) -> nn.Module:
    """Wrap ``model`` with LoRA: y = Wx + (alpha / r) * B(A(dropout(x))), B initialised to zero."""
    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers API that transformers 5 renamed; the warning is noise.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return get_peft_model(model, peft_config)


def tied_aliases(model: nn.Module) -> dict[str, str]:
    """``{alias: key}`` of parameters that are one tensor under two names, e.g. a tied
    ``lm_head.weight`` -> ``model.embed_tokens.weight`` (``tie_word_embeddings``). A state dict
    lists both names, a file holds one; saving, loading and key maps use ``key`` only."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in first:
            aliases[name] = first[id(parameter)]
        else:
            first[id(parameter)] = name
    return aliases


def retie(model: nn.Module, aliases: dict[str, str]) -> None:
    """Make every alias the same parameter as its key again (``load_state_dict(assign=True)``
    gives each name a parameter of its own)."""
    for alias, key in aliases.items():
        owner, _, name = alias.rpartition(".")
        setattr(model.get_submodule(owner), name, model.get_parameter(key))
