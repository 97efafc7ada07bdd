"""The real sizes, randomly initialised: EVA ViT-g at 448 px and LLaMA-2-7B (``--full``).

The whole model (about 15 GB in bf16, 30 GB in fp32) is never materialised: this machine has
24 GiB shared with other jobs, and on a CPU without native bf16 a bf16 pass over it would take
hours. Instead each part is timed at real width on a few layers and the rest is extrapolated,
which every result says in its ``*_method`` field:

* vision: one ViT-g block on the 1025 tokens of a 448-px image, times 39 blocks, plus the patch
  convolution;
* language: LLaMA-2-7B with 1 and 3 decoder layers (embedding and 32000-word head included);
  per-layer cost = the difference / 2, total = 1-layer time + 31 x per-layer cost;
* when a dtype is too slow for the time cap (emulated bf16), it is timed on fewer tokens and
  scaled by the FLOPs ratio.

Decode is compared with the memory-bandwidth bound: every weight a token reads (32 layers + the
head) divided by the measured read bandwidth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, LlamaForCausalLM

from benchmarks.measure import best_time, log
from minigptv2.config import LanguageConfig, VisionConfig
from minigptv2.model.language import llama_config
from minigptv2.model.vision import EvaBlock, EvaPatchEmbed

VISION = VisionConfig()
LANGUAGE = LanguageConfig()
# A MiniGPT-v2 prompt: 256 image tokens and about 40 of template and instruction.
PROMPT_TOKENS = 296
DECODE_STEPS = 6
LAYERS_MEASURED = (1, 3)


def _matrix_elements(module: nn.Module) -> int:
    return sum(layer.weight.numel() for layer in module.modules() if isinstance(layer, nn.Linear))


def _capped(
    run: Callable[[int], float], full_tokens: int, flops: Callable[[int], float], cap_s: float
) -> tuple[float, str]:
    """Time ``run(tokens)`` at full size, or on fewer tokens scaled by FLOPs if that is too slow.

    A probe on 8 tokens predicts the full-size time; the token count shrinks until it fits.
    """
    probe = run(8)
    predicted = probe * flops(full_tokens) / flops(8)
    if predicted <= cap_s:
        return run(full_tokens), "measured"
    tokens = full_tokens
    while tokens > 8 and probe * flops(tokens) / flops(8) > cap_s:
        tokens //= 2
    return run(tokens) * flops(full_tokens) / flops(tokens), f"extrapolated from {tokens} tokens"


def measure_vision(dtype: torch.dtype, peak_gflops: float, cap_s: float) -> dict[str, Any]:
    """One 448-px image through ViT-g: one block timed, times 39, plus the patch convolution."""
    torch.manual_seed(0)
    block = EvaBlock(VISION).to(dtype).eval()
    patch = EvaPatchEmbed(VISION).to(dtype).eval()
    tokens = 1 + VISION.num_patches  # 1025
    block_matrices = _matrix_elements(block)

    def block_flops(n: int) -> float:
        return 2.0 * block_matrices * n + 4.0 * n * n * VISION.width

    def run_block(n: int) -> float:
        x = torch.randn(1, n, VISION.width, dtype=dtype)
        with torch.inference_mode():
            return best_time(lambda: block(x), repeats=2, warmup=1, budget_s=cap_s)

    block_s, method = _capped(run_block, tokens, block_flops, cap_s)
    pixels = torch.randn(1, 3, VISION.image_size, VISION.image_size, dtype=dtype)
    with torch.inference_mode():
        patch_s = best_time(lambda: patch(pixels), repeats=2, warmup=1, budget_s=cap_s)
    seconds = VISION.depth * block_s + patch_s
    flops = (
        VISION.depth * block_flops(tokens) + 2.0 * patch.proj.weight.numel() * VISION.num_patches
    )
    return {
        "encode_s": round(seconds, 3),
        "gflops": round(flops / seconds / 1e9, 2),
        "fraction_of_matmul_peak": round(flops / seconds / 1e9 / peak_gflops, 3),
        "method": f"1 of {VISION.depth} blocks ({method}) x {VISION.depth} + patch embedding",
    }


def _llama(layers: int, dtype: torch.dtype) -> LlamaForCausalLM:
    """LLaMA-2-7B's widths with ``layers`` decoder layers, randomly initialised, in ``dtype``."""
    config = llama_config(LANGUAGE)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(dtype).eval()


def _prefill(model: LlamaForCausalLM, tokens: int, dtype: torch.dtype) -> tuple[float, Any]:
    embeds = torch.randn(1, tokens, LANGUAGE.hidden_size, dtype=dtype)
    mask = torch.ones(1, tokens, dtype=torch.long)
    cache = DynamicCache()
    began = time.perf_counter()
    with torch.inference_mode():
        model(inputs_embeds=embeds, attention_mask=mask, cache=cache, use_cache=True,
              logits_to_keep=1)  # fmt: skip
    return time.perf_counter() - began, (cache, mask)


def _decode_step_s(model: LlamaForCausalLM, state: Any, steps: int, dtype: torch.dtype) -> float:
    cache, mask = state
    best = float("inf")
    token = torch.randn(1, 1, LANGUAGE.hidden_size, dtype=dtype)
    for _ in range(steps):
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        began = time.perf_counter()
        with torch.inference_mode():
            model(inputs_embeds=token, attention_mask=mask, cache=cache, use_cache=True,
                  logits_to_keep=1)  # fmt: skip
        best = min(best, time.perf_counter() - began)
    return best


def _language_times(layers: int, dtype: torch.dtype, cap_s: float) -> dict[str, Any]:
    model = _llama(layers, dtype)
    # Prefill FLOPs per prompt token: the decoder layers (the head runs on the last position only).
    per_token = 2.0 * _matrix_elements(model.model.layers)

    def prefill_flops(n: int) -> float:
        return per_token * n + 4.0 * n * n * LANGUAGE.hidden_size * layers

    def run_prefill(n: int) -> float:
        return min(_prefill(model, n, dtype)[0] for _ in range(2))

    prefill_s, method = _capped(run_prefill, PROMPT_TOKENS, prefill_flops, cap_s)
    short = 8 if method != "measured" else PROMPT_TOKENS
    _, state = _prefill(model, short, dtype)
    decode_s = _decode_step_s(model, state, DECODE_STEPS, dtype)
    head_bytes = model.lm_head.weight.numel() * model.lm_head.weight.element_size()
    layer_bytes = sum(p.numel() * p.element_size() for p in model.model.layers[0].parameters())
    return {
        "prefill_s": prefill_s,
        "prefill_method": method,
        "decode_s": decode_s,
        "layer_bytes": layer_bytes,
        "head_bytes": head_bytes,
        "layer_matrices": _matrix_elements(model.model.layers[0]),
    }


def measure_language(dtype: torch.dtype, bandwidth_gbps: float, cap_s: float) -> dict[str, Any]:
    """Prefill of a MiniGPT-v2 prompt and greedy decode of LLaMA-2-7B, from 1 and 3 layers."""
    few, more = (_language_times(n, dtype, cap_s) for n in LAYERS_MEASURED)
    spread = LAYERS_MEASURED[1] - LAYERS_MEASURED[0]
    rest = LANGUAGE.num_layers - LAYERS_MEASURED[0]
    prefill_layer = (more["prefill_s"] - few["prefill_s"]) / spread
    decode_layer = (more["decode_s"] - few["decode_s"]) / spread
    prefill_s = few["prefill_s"] + rest * prefill_layer
    decode_s = few["decode_s"] + rest * decode_layer
    bytes_per_token = LANGUAGE.num_layers * few["layer_bytes"] + few["head_bytes"]
    bound = bandwidth_gbps * 1e9 / bytes_per_token
    prefill_flops = 2.0 * LANGUAGE.num_layers * few["layer_matrices"] * PROMPT_TOKENS
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "prefill_s": round(prefill_s, 3),
        "prefill_gflops": round(prefill_flops / prefill_s / 1e9, 2),
        "prefill_method": f"1 and 3 layers ({few['prefill_method']}), extrapolated to 32",
        "decode_tokens_per_s": round(1.0 / decode_s, 4),
        "decode_method": "1 and 3 layers measured, extrapolated to 32",
        "weight_gb_per_token": round(bytes_per_token / 1e9, 3),
        "bandwidth_bound_tokens_per_s": round(bound, 4),
        "decode_fraction_of_bandwidth_bound": round(1.0 / decode_s / bound, 3),
    }


def measure_full_size(machine: dict[str, Any], cap_s: float = 60.0) -> dict[str, Any]:
    """Vision encoding, prefill and decode at real size in fp32 and bf16 (see module docstring)."""
    result: dict[str, Any] = {}
    for name, dtype, peak in (
        ("fp32", torch.float32, machine["matmul_gflops"]),
        ("bf16", torch.bfloat16, machine["matmul_gflops_bf16"]),
    ):
        log(f"full size: ViT-g block in {name}")
        result[f"vision_{name}"] = measure_vision(dtype, peak, cap_s)
        log(f"full size: LLaMA-2-7B layers in {name}")
        result[f"language_{name}"] = measure_language(dtype, machine["memory_gbps"], cap_s)
    return result
