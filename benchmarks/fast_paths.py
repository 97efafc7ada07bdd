"""Issue 8's fast paths, each timed before and after on the shipped Shapes model.

"Before" is rebuilt here from plain PyTorch / ``transformers`` so both sides run on the same
weights and inputs:

* KV cache: greedy decoding that re-reads the whole sequence for every token, against the
  cached loop (``MiniGPTv2.generate_steps``) and against ``transformers``' ``generate``;
* scaled-dot-product attention: a hand-written softmax(QK^T)V in the ViT, and ``transformers``'
  "eager" attention in LLaMA, against ``F.scaled_dot_product_attention`` / "sdpa";
* bf16 on CPU: the same generation with the frozen weights in bf16;
* weight-only int8: ``minigptv2.model.quantize.quantize_int8`` on the language model.

Batched generation (batch 8 vs 1) and the chat session (second turn with vs without it) are in
the per-model numbers; the training hot path's collation is timed there too.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from benchmarks.generation import fixed_length_steps
from benchmarks.measure import best_time, log
from minigptv2.assistant import Assistant
from minigptv2.model.vision import EvaAttention

# Builds the benchmarked model with its weights in a dtype (None: the model's own).
AssistantFactory = Callable[[str | None], Assistant]


def _eager_vision_attention(self: EvaAttention, x: torch.Tensor) -> torch.Tensor:
    """EVA attention as the reference computes it: scores, softmax, weighted sum."""
    batch, tokens, width = x.shape
    q, k, v = self.project_qkv(x)  # (B, heads, N, head_dim) each
    weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)
    out = (weights @ v).transpose(1, 2).reshape(batch, tokens, width)
    return self.proj(out)


@contextlib.contextmanager
def eager_attention(assistant: Assistant) -> Iterator[None]:
    """Temporarily switch the ViT and LLaMA from SDPA to explicit attention."""
    model = assistant.model
    blocks = [block.attn for block in model.vision.blocks]
    for attention in blocks:
        attention.forward = types.MethodType(_eager_vision_attention, attention)
    language = model.language_model
    previous = language.config._attn_implementation
    language.set_attn_implementation("eager")
    try:
        yield
    finally:
        for attention in blocks:
            del attention.forward  # back to the class's SDPA forward
        language.set_attn_implementation(previous)


def greedy_without_cache(
    assistant: Assistant, image: Any, prompt: str, new_tokens: int
) -> torch.Tensor:
    """(new_tokens,) greedy ids without a KV cache: each step re-reads the whole sequence."""
    model = assistant.model
    batch = assistant.processor.generation_batch([prompt], [image], style=assistant.style)
    embedding = model.language_model.get_input_embeddings()
    chosen = []
    with torch.inference_mode():
        embeds = model.embed(batch["input_ids"], batch["pixel_values"])  # (1, T, hidden)
        for _ in range(new_tokens):
            logits = model.language_model(inputs_embeds=embeds, use_cache=False).logits
            token = logits[:, -1].argmax(-1)  # (1,)
            chosen.append(token)
            embeds = torch.cat([embeds, embedding(token)[:, None].to(embeds.dtype)], dim=1)
    return torch.cat(chosen)


def greedy_hf_generate(
    assistant: Assistant, image: Any, prompt: str, new_tokens: int
) -> torch.Tensor:
    """(new_tokens,) greedy ids from ``transformers``' ``generate`` (KV cache, processors)."""
    model = assistant.model
    batch = assistant.processor.generation_batch([prompt], [image], style=assistant.style)
    with torch.inference_mode():
        embeds = model.embed(batch["input_ids"], batch["pixel_values"])
        ids = model.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=batch["attention_mask"],
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=assistant.processor.tokenizer.pad_id,
            eos_token_id=assistant.processor.tokenizer.eos_id,
        )
    return ids[0, -new_tokens:]


def greedy_cached(assistant: Assistant, image: Any, prompt: str, new_tokens: int) -> torch.Tensor:
    """(new_tokens,) greedy ids from the model's own KV-cached loop."""
    return torch.cat(list(fixed_length_steps(assistant, [image], [prompt], new_tokens)))


def _tokens_s(
    generate: Any, assistant: Assistant, scene: tuple[Any, str], new_tokens: int
) -> float:
    began = time.perf_counter()
    generate(assistant, *scene, new_tokens)
    return new_tokens / (time.perf_counter() - began)


def _best(measure: Any, repeats: int) -> float:
    measure()  # warm-up
    return max(measure() for _ in range(repeats))


def kv_cache(assistant: Assistant, scene: tuple[Any, str], new_tokens: int, repeats: int) -> dict:
    """Tokens/s at batch 1 without a cache, with ``generate``, with the model's cached loop."""
    return {
        f"{name}_tokens_per_s": _best(
            lambda generate=generate: _tokens_s(generate, assistant, scene, new_tokens), repeats
        )
        for name, generate in (
            ("no_cache", greedy_without_cache),
            ("hf_generate", greedy_hf_generate),
            ("cached", greedy_cached),
        )
    }


def attention(assistant: Assistant, scenes: list[tuple[Any, str]], repeats: int) -> dict:
    """ViT encoding of 8 images and a batch-8 prefill, with SDPA and with explicit attention."""
    model = assistant.model
    images = [image for image, _ in scenes[:8]]
    prompts = [prompt for _, prompt in scenes[:8]]
    batch = assistant.processor.generation_batch(prompts, images, style=assistant.style)
    pixels = batch["pixel_values"]

    def encode() -> None:
        with torch.inference_mode():
            model.encode_images(pixels)

    def prefill() -> None:
        with torch.inference_mode():
            model.language_model(
                inputs_embeds=model.embed(batch["input_ids"], pixels),
                attention_mask=batch["attention_mask"],
                use_cache=False,
            )

    result = {
        "vision_sdpa_s": best_time(encode, repeats=repeats),
        "prefill_sdpa_s": best_time(prefill, repeats=repeats),
    }
    with eager_attention(assistant):
        result["vision_eager_s"] = best_time(encode, repeats=repeats)
        result["prefill_eager_s"] = best_time(prefill, repeats=repeats)
    return result


def bf16(load: AssistantFactory, scene: tuple[Any, str], new_tokens: int) -> dict:
    """The same model with bf16 weights, same greedy decoding (one timed run: may be slow)."""
    assistant = load("bfloat16")
    greedy_cached(assistant, *scene, 1)  # warm-up
    return {"bf16_tokens_per_s": _tokens_s(greedy_cached, assistant, scene, new_tokens)}


def int8(assistant: Assistant, scene: tuple[Any, str], new_tokens: int) -> dict:
    """Weight-only int8 language model (``minigptv2.model.quantize``), same greedy decoding.

    Quantises ``assistant``'s model in place: run it last. Also reports how many of the greedy
    tokens stay the same as in fp32, a first look at the accuracy cost.
    """
    try:
        from minigptv2.model.quantize import quantize_int8
    except ImportError:
        return {"int8": "not available (no minigptv2.model.quantize)"}
    reference = greedy_cached(assistant, *scene, new_tokens)
    quantize_int8(assistant.model.language_model)
    greedy_cached(assistant, *scene, 1)  # warm-up
    same = greedy_cached(assistant, *scene, new_tokens) == reference
    return {
        "int8_tokens_per_s": _tokens_s(greedy_cached, assistant, scene, new_tokens),
        "int8_same_greedy_tokens": float(same.float().mean()),
    }


def measure_fast_paths(
    load: AssistantFactory, scenes: list[tuple[Any, str]], *, new_tokens: int, repeats: int
) -> dict[str, Any]:
    """Before/after pairs on the model ``load(dtype)`` builds; see the module docstring."""
    assistant = load(None)
    scene = scenes[0]
    log("fast paths: KV cache")
    result: dict[str, Any] = kv_cache(assistant, scene, new_tokens, repeats)
    log("fast paths: attention")
    result |= attention(assistant, scenes, repeats)
    log("fast paths: bf16")
    result |= bf16(load, scene, new_tokens)
    result["bf16_over_fp32_tokens_per_s"] = (
        result["bf16_tokens_per_s"] / result["cached_tokens_per_s"]
    )
    log("fast paths: int8")
    result |= int8(assistant, scene, new_tokens)
    return {
        key: round(value, 4) if isinstance(value, float) else value for key, value in result.items()
    }
