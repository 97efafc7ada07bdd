"""The language model: LLaMA from ``transformers`` with LoRA from ``peft`` (spec §1.7, §1.8).

No copy of the upstream class is kept: ``LlamaForCausalLM`` already computes the loss MiniGPT-v2
uses (token-mean cross-entropy over labels that are not -100, logits in fp32).
"""

from __future__ import annotations

import warnings

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from minigptv2.config import LanguageConfig, LoRAConfig


def llama_config(config: LanguageConfig) -> LlamaConfig:
    """The ``transformers`` config of a LLaMA-2-style decoder (MHA, SwiGLU, RMSNorm, RoPE)."""
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        rms_norm_eps=config.rms_norm_eps,
        rope_theta=config.rope_theta,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        attn_implementation="sdpa",
    )


def build_language_model(config: LanguageConfig, lora: LoRAConfig | None) -> nn.Module:
    """A randomly initialised LLaMA, wrapped with LoRA adapters when ``lora`` is given."""
    model = LlamaForCausalLM(llama_config(config))
    return add_lora(model, lora) if lora is not None else model


def add_lora(model: LlamaForCausalLM, lora: LoRAConfig) -> nn.Module:
    """Wrap ``model`` with LoRA: y = Wx + (alpha / r) * B(A(dropout(x))), B initialised to zero."""
    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers API that transformers 5 renamed; the warning is noise.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated")
        return get_peft_model(model, peft_config)
