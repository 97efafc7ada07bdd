"""Tiny random causal LMs of every supported family, saved as Hugging Face folders (no download).

Each folder is what ``save_pretrained`` of a real checkpoint looks like at toy size: a
``config.json`` from the family's config class, ``model.safetensors`` and a tokenizer trained here
on the interface's text:

* ``llama``: a SentencePiece ``tokenizer.model`` only (the reference's LLaMA tokenizer) and no
  chat template, so MiniGPT-v2's own ``[INST]`` template is used;
* ``mistral``: a ``tokenizers`` BPE on SentencePiece-style word markers (``tokenizer.json``) with
  Mistral's ``[INST]`` chat template, grouped-query attention and a sliding window;
* ``qwen2``: byte-level BPE, no BOS token, the ChatML template (``<|im_start|>``/``<|im_end|>``)
  and tied input/output embeddings;
* ``phi3``: Phi-3's template (``<|user|>``, ``<|assistant|>``, ``<|end|>``) and its fused
  ``qkv_proj`` / ``gate_up_proj``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer as RawTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from minigptv2.config import LoRAConfig, MiniGPTv2Config, VisionConfig, get_preset
from minigptv2.model.language import causal_lm_class
from minigptv2.tasks import INSTRUCTION_POOLS
from minigptv2.tokenizer import train_tokenizer

FAMILIES_UNDER_TEST = ("llama", "mistral", "qwen2", "phi3")

CORPUS = [
    "<Img><ImageHere></Img> [refer] where is the red circle ? {<10><20><30><40>}",
    "[grounding] describe this image <p>a blue square</p> {<0><12><45><100>} <delim>",
    "[vqa] how many shapes are there? two three four yes no red green blue yellow",
    "a young man sitting at his desk with a cup of coffee and two sofas 0123456789",
    *[template for pool in INSTRUCTION_POOLS.values() for template in pool],
]

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
    " [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}"
    "{{ eos_token }}{% endif %}"
)

# (specials, bos, eos, pad, byte_level, chat template) of each tokenizers-based tokenizer.
TOKENIZERS = {
    "mistral": (["<unk>", "<s>", "</s>"], "<s>", "</s>", None, False, MISTRAL_TEMPLATE),
    "qwen2": (
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        None,
        "<|im_end|>",
        "<|endoftext|>",
        True,
        CHATML_TEMPLATE,
    ),
    "phi3": (
        ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"],
        "<s>",
        "<|endoftext|>",
        "<|endoftext|>",
        False,
        PHI3_TEMPLATE,
    ),
}

SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
}


def tiny_tokenizer(family: str, folder: Path):
    """Train the family's tokenizer on ``CORPUS`` and save it into ``folder``."""
    lines = CORPUS * 4
    if family == "llama":
        return train_tokenizer(lines, folder, vocab_size=400)
    specials, bos, eos, pad, byte_level, template = TOKENIZERS[family]
    if byte_level:
        raw = RawTokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        raw = RawTokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
        raw.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        raw.decoder = decoders.Metaspace(prepend_scheme="first")
        alphabet = []
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    raw.train_from_iterator(lines, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>" if "<unk>" in specials else None,
        additional_special_tokens=[t for t in specials if t not in (bos, eos, pad, "<unk>")],
    )
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_hf_config(family: str, vocab_size: int, ids: dict[str, int | None]):
    """The family's config class at toy size, with the tokenizer's special ids."""
    common = {**SIZES, "vocab_size": vocab_size, **ids}
    if family == "llama":
        return LlamaConfig(**common, num_key_value_heads=2)
    if family == "mistral":
        return MistralConfig(**common, num_key_value_heads=2, sliding_window=256)
    if family == "qwen2":
        return Qwen2Config(**common, num_key_value_heads=2, tie_word_embeddings=True)
    return Phi3Config(**common, num_key_value_heads=4)


def tiny_lm_folder(family: str, folder: Path, seed: int = 0) -> Path:
    """A random tiny causal LM of ``family`` with its tokenizer, as a Hugging Face folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(family, folder)
    if family == "llama":
        size = tokenizer.vocab_size
        ids = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
        ids["pad_token_id"] = None
    else:
        size = len(tokenizer)
        ids = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    config = tiny_hf_config(family, size + 8, ids)  # a few unused rows, as real models have
    torch.manual_seed(seed)
    model = causal_lm_class(config)(config)
    model.save_pretrained(folder)
    return folder


def tiny_base(vision_width: int = 48) -> MiniGPTv2Config:
    """The tiny preset with another ViT width (the projector follows both widths) and LoRA r=8."""
    tiny = get_preset("tiny")
    vision = VisionConfig(
        image_size=112,
        patch_size=14,
        width=vision_width,
        depth=2,
        num_heads=4,
        mlp_hidden=96,
        pretrain_image_size=56,
    )
    return tiny.replace(vision=vision, lora=LoRAConfig(rank=8, alpha=16))
