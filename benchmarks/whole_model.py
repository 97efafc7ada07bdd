"""The first answer a user waits for, timed on the whole full-size model with random weights.

``full_size.py`` times a few layers and extrapolates. Where the whole model fits in memory (bf16,
int8 and int4 do in 24 GiB; fp32's 30 GB does not), this builds it for real and times what a
user's first question costs through ``MiniGPTv2.generate``: encode a 448-px image, prefill its 256
tokens and a 40-token prompt, decode 20 tokens.

The model is built on the meta device and materialised one ViT block or decoder layer at a time,
each quantised right after it is filled, so that memory peaks at the finished model plus one
float layer, never at the float model.
"""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from minigptv2.assistant import QUANTIZATIONS
from minigptv2.checkpoints.assemble import fresh_tensor, model_shapes, restore_rotary_buffers
from minigptv2.config import MiniGPTv2Config
from minigptv2.constants import IMAGE_TOKEN_ID
from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.model.summary import build_on_meta
from minigptv2.model.vision import EvaBlock

PROMPT_TEXT_TOKENS = 40
ANSWER_TOKENS = 20
# Bytes per weight of a quantised linear layer, group scales and padding included (int4: one
# bf16 scale and zero per 128 weights adds 0.03 B; int8: one bf16 scale per row).
QUANTISED_BYTES = {"int8": 1.01, "int4": 0.54}
# Room beyond the model's own bytes: one fp32 decoder layer being quantised (0.8 GB at 7B),
# activations, the KV cache and the interpreter.
HEADROOM_BYTES = 3 * 2**30


def _blocks(model: nn.Module) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, (EvaBlock, LlamaDecoderLayer))
    ]


def _without_lora(config: MiniGPTv2Config) -> MiniGPTv2Config:
    """For inference LoRA would be merged into the weights: the model is timed without it."""
    return replace(config, lora=None, trainable=replace(config.trainable, lora=False))


def estimated_bytes(config: MiniGPTv2Config, quantize: str | None = None) -> int:
    """What ``random_model`` will hold, from a meta build (no memory used)."""
    model = build_on_meta(_without_lora(config))
    total = 0
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        size = tensor.numel() * tensor.element_size()
        if quantize is not None and name.startswith("language_model.") and tensor.ndim == 2:
            is_embedding = "embed_tokens" in name
            size = size if is_embedding else int(tensor.numel() * QUANTISED_BYTES[quantize])
        total += size
    return total


def available_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo``; None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _fill(model: MiniGPTv2, prefix: str, expected: dict) -> None:
    """Random weights for every tensor under ``prefix`` still on the meta device: matrices
    N(0, 0.02), norms 1, other vectors 0 (``fresh_tensor``), in the dtype the model keeps."""
    module = model.get_submodule(prefix) if prefix else model
    head = f"{prefix}." if prefix else ""
    state = {
        key: fresh_tensor(head + key, *expected[head + key], expected)
        for key, tensor in module.state_dict(keep_vars=True).items()
        if tensor.is_meta
    }
    module.load_state_dict(state, strict=False, assign=True)


def random_model(config: MiniGPTv2Config, quantize: str | None = None) -> MiniGPTv2:
    """``config``'s model without LoRA, random weights filled (and quantised) block by block."""
    model = build_on_meta(_without_lora(config))
    expected = model_shapes(model)
    for name in _blocks(model):
        _fill(model, name, expected)
        if quantize is not None and name.startswith("language_model."):
            QUANTIZATIONS[quantize](model.get_submodule(name))
    _fill(model, "", expected)  # embeddings, norms, projector, head
    restore_rotary_buffers(model)
    if quantize is not None:
        QUANTIZATIONS[quantize](model.language_model)  # what is left: the head
    return model.eval()


def time_first_answer(
    model: MiniGPTv2, prompt_tokens: int = PROMPT_TEXT_TOKENS, answer_tokens: int = ANSWER_TOKENS
) -> float:
    """Seconds for one image, a prompt of ``prompt_tokens`` and ``answer_tokens`` new tokens."""
    config = model.config
    vocab = config.language.vocab_size
    text = torch.randint(3, vocab, (1, prompt_tokens))
    image = torch.full((1, config.num_image_tokens), IMAGE_TOKEN_ID)
    ids = torch.cat([torch.ones(1, 1, dtype=torch.long), image, text], dim=1)  # BOS first
    size = config.vision.image_size
    pixels = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        began = time.perf_counter()
        # eos -1 never comes: random weights would otherwise stop at a random length.
        answer = model.generate(
            ids, torch.ones_like(ids), pixels, max_new_tokens=answer_tokens, eos_token_id=-1
        )
        seconds = time.perf_counter() - began
    if answer.shape[1] != answer_tokens:
        raise RuntimeError(f"generated {answer.shape[1]} tokens, not {answer_tokens}")
    return seconds


def measure_first_answer(config: MiniGPTv2Config, quantize: str | None = None) -> dict[str, float]:
    """Build the whole model, time one first answer, free it. Raises MemoryError when the model
    and ``HEADROOM_BYTES`` would not fit in the memory available now."""
    needed = estimated_bytes(config, quantize) + HEADROOM_BYTES
    available = available_bytes()
    if available is not None and needed > available:
        raise MemoryError(f"needs {needed / 2**30:.1f} GiB, {available / 2**30:.1f} available")
    began = time.perf_counter()
    model = random_model(config, quantize)
    built = time.perf_counter() - began
    try:
        seconds = time_first_answer(model)
    finally:
        del model
        gc.collect()
    return {"first_answer_s": round(seconds, 2), "build_s": round(built, 1)}
