"""The language-model families MiniGPT-v2 can be built on, as data (issue 17).

The paper's model is LLaMA-2-7B-chat with LoRA on its query and value projections (spec §1.8).
Any Hugging Face causal LM works the same way; what depends on the family is only what this table
holds. Everything else is derived from the LM's own ``config.json`` (hidden size -> the projector's
output width, vocabulary, layers) or its tokenizer folder (pieces, chat template).

A family is named by ``transformers``' ``model_type`` (``AutoConfig.for_model(name)`` builds it).
Adding one is one row here, after checking its attention module names in ``transformers``.

Phi-3 fuses the three projections into one ``qkv_proj`` (output ``[q; k; v]``). LoRA wraps that
module whole: one ``A`` (hidden -> r) shared by q, k and v and one ``B`` (r -> q + k + v
widths), so the adapter also reaches the keys. That keeps the model ``transformers``' own class
(its weights load unchanged, no splitting of fused tensors) and costs ``r * (2h + 2kv)``
parameters per layer (h the hidden size, kv the key/value width) against ``r * (3h + kv)`` for
separate q and v adapters: the same for multi-head attention (Phi-3-mini, kv = h), fewer for a
grouped-query model.
"""

from __future__ import annotations

from dataclasses import dataclass

from minigptv2.errors import ConfigError


@dataclass(frozen=True)
class LanguageFamily:
    """What MiniGPT-v2 needs to know about a family of causal LMs that its config does not say.

    Attributes:
        lora_targets: the modules LoRA wraps in every decoder layer: the query and value
            projections as this family names them (MiniGPT-v2: ``q_proj``, ``v_proj``), or the
            fused projection that holds them.
        example: a public checkpoint of the family, for error messages and the README.
    """

    lora_targets: tuple[str, ...]
    example: str


FAMILIES: dict[str, LanguageFamily] = {
    "llama": LanguageFamily(("q_proj", "v_proj"), "meta-llama/Llama-2-7b-chat-hf"),
    "mistral": LanguageFamily(("q_proj", "v_proj"), "mistralai/Mistral-7B-Instruct-v0.2"),
    "qwen2": LanguageFamily(("q_proj", "v_proj"), "Qwen/Qwen2.5-3B-Instruct"),
    # Fused q/k/v: LoRA on the whole qkv_proj (see the module docstring).
    "phi3": LanguageFamily(("qkv_proj",), "microsoft/Phi-3-mini-4k-instruct"),
}


def get_family(name: str) -> LanguageFamily:
    """The family ``name`` (a ``model_type``), or an error naming the supported ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(
            f"language model family {name!r} (config.json model_type) is not supported; use one "
            f"of {', '.join(FAMILIES)}, or add a row for it to FAMILIES in minigptv2/families.py"
        ) from None
