"""The real sizes, randomly initialised: EVA ViT-g at 448 px and LLaMA-2-7B (``--full``).

Rates are measured on parts of the model at real width, which every result says in its
``*_method`` field:

* vision: one ViT-g block on the 1025 tokens of a 448-px image, times 39 blocks, plus the patch
  convolution;
* language: LLaMA-2-7B with 2 decoder layers (embedding and 32000-word head included), each
  layer timed by forward hooks; total = 32 x one layer + the time outside the layers;
* when a dtype is too slow for the time cap (emulated bf16), it is timed on fewer tokens and
  scaled by the FLOPs ratio.

Decode is compared with the memory-bandwidth bound: every weight a token reads (32 layers + the
head) divided by the measured read bandwidth. ``first_answer_s`` is what a user waits for a first
answer: encode a 448-px image, prefill its 256 tokens and a 40-token prompt, decode 20 tokens.
It is timed on the whole model (``whole_model.py``) where that fits in the memory available
(bf16, int8, int4; not fp32's 30 GB) and is not too slow, else added up from the parts above;
``first_answer_whole`` says which, and ``first_answer_extrapolated_s`` keeps the sum beside a
whole-model time. The weight-only ``int8`` and ``int4`` language models
(``minigptv2.model.quantize``) take fp32 activations and pair with the fp32 image encoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, LlamaForCausalLM

from benchmarks.measure import best_time, log
from benchmarks.whole_model import ANSWER_TOKENS, PROMPT_TEXT_TOKENS, measure_first_answer
from minigptv2.config import LanguageConfig, MiniGPTv2Config, VisionConfig
from minigptv2.model.language import llama_config
from minigptv2.model.vision import EvaBlock, EvaPatchEmbed

VISION = VisionConfig()
LANGUAGE = LanguageConfig()
# A MiniGPT-v2 prompt: 256 image tokens and about 40 of template and instruction.
PROMPT_TOKENS = 296
DECODE_STEPS = 6
# Above the quantised layers' MATRIX_ROWS (64), so a probe takes the path the prompt will take.
PROBE_TOKENS = 80
# The models timed whole for first_answer_s (fp32's 30 GB does not fit in 24 GiB): name, dtype
# of the frozen weights, quantisation. Skipped when the extrapolation says it would take more than
# WHOLE_CAP times the per-measurement cap (emulated bf16).
WHOLE_MODELS = (
    ("bf16", "bfloat16", None),
    ("int8", "float32", "int8"),
    ("int4", "float32", "int4"),
)
WHOLE_CAP = 10


def _matrix_elements(module: nn.Module) -> int:
    return sum(layer.weight.numel() for layer in module.modules() if isinstance(layer, nn.Linear))


def _capped(
    run: Callable[[int], float], full_tokens: int, flops: Callable[[int], float], cap_s: float
) -> tuple[float, str]:
    """Time ``run(tokens)`` at full size, or on fewer tokens scaled by FLOPs if that is too slow.

    A probe on a few tokens predicts the full-size time; the token count halves until it fits.
    """
    few = min(PROBE_TOKENS, full_tokens)
    probe = run(few)
    if probe * flops(full_tokens) / flops(few) <= cap_s:
        return run(full_tokens), "measured"
    tokens = full_tokens
    while tokens // 2 >= few and probe * flops(tokens) / flops(few) > cap_s:
        tokens //= 2
    return run(tokens) * flops(full_tokens) / flops(tokens), f"extrapolated from {tokens} tokens"


def measure_vision(
    dtype: torch.dtype, peak_gflops: float, cap_s: float, vision: VisionConfig = VISION
) -> dict[str, Any]:
    """One 448-px image through ViT-g: one block timed, times 39, plus the patch convolution."""
    torch.manual_seed(0)
    block = EvaBlock(vision).to(dtype).eval()
    patch = EvaPatchEmbed(vision).to(dtype).eval()
    tokens = 1 + vision.num_patches  # 1025
    block_matrices = _matrix_elements(block)

    def block_flops(n: int) -> float:
        return 2.0 * block_matrices * n + 4.0 * n * n * vision.width

    def run_block(n: int) -> float:
        x = torch.randn(1, n, vision.width, dtype=dtype)
        with torch.inference_mode():
            return best_time(lambda: block(x), repeats=2, warmup=1, budget_s=cap_s)

    block_s, method = _capped(run_block, tokens, block_flops, cap_s)
    pixels = torch.randn(1, 3, vision.image_size, vision.image_size, dtype=dtype)
    with torch.inference_mode():
        patch_s = best_time(lambda: patch(pixels), repeats=2, warmup=1, budget_s=cap_s)
    seconds = vision.depth * block_s + patch_s
    flops = (
        vision.depth * block_flops(tokens) + 2.0 * patch.proj.weight.numel() * vision.num_patches
    )
    return {
        "encode_s": round(seconds, 3),
        "gflops": round(flops / seconds / 1e9, 4),
        "fraction_of_matmul_peak": round(flops / seconds / 1e9 / peak_gflops, 3),
        "method": f"1 of {vision.depth} blocks ({method}) x {vision.depth} + patch embedding",
    }


def _llama(layers: int, dtype: torch.dtype, language: LanguageConfig) -> LlamaForCausalLM:
    """``language``'s widths with ``layers`` decoder layers, randomly initialised, in ``dtype``."""
    config = llama_config(language)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(dtype).eval()


class LayerClock:
    """Wall time of each decoder layer's forward, from hooks around it (newest call last)."""

    def __init__(self, layers: nn.ModuleList) -> None:
        self.seconds: list[list[float]] = [[] for _ in layers]
        self._began = 0.0
        for index, layer in enumerate(layers):
            layer.register_forward_pre_hook(self._start)
            layer.register_forward_hook(lambda *_, index=index: self._stop(index))

    def _start(self, *_: Any) -> None:
        self._began = time.perf_counter()

    def _stop(self, index: int) -> None:
        self.seconds[index].append(time.perf_counter() - self._began)

    def last_call(self) -> float:
        """The cheapest layer of the last forward (the layers are identical in shape)."""
        return min(times[-1] for times in self.seconds)


def _forward(model: LlamaForCausalLM, embeds: torch.Tensor, mask: torch.Tensor, cache: Any) -> None:
    with torch.inference_mode():
        model(inputs_embeds=embeds, attention_mask=mask, cache=cache, use_cache=True,
              logits_to_keep=1)  # fmt: skip


def _timed_forward(
    model: LlamaForCausalLM, clock: LayerClock, embeds: torch.Tensor, mask: torch.Tensor, cache: Any
) -> tuple[float, float]:
    """(whole forward, one decoder layer) seconds; the rest is embedding, final norm and head."""
    began = time.perf_counter()
    _forward(model, embeds, mask, cache)
    return time.perf_counter() - began, clock.last_call()


def _bytes(module: nn.Module) -> int:
    """Bytes of the weights ``module`` reads: parameters and buffers (int8 weights, scales)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def _extrapolate(whole: float, layer: float, layers: int, total_layers: int) -> float:
    """A forward of the model with ``total_layers`` layers, from one with ``layers`` of them."""
    outside = max(0.0, whole - layers * layer)
    return outside + total_layers * layer


def measure_language(
    dtype: torch.dtype,
    bandwidth_gbps: float,
    cap_s: float,
    language: LanguageConfig = LANGUAGE,
    prompt_tokens: int = PROMPT_TOKENS,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Prefill of a MiniGPT-v2 prompt and greedy decode for LLaMA-2-7B, from a 2-layer model.

    Hooks time each decoder layer; 32 x the cheapest layer + what runs outside the layers
    (embedding, final norm, the head on the last position) is the full model's time.
    ``quantize`` ("int8", "int4") replaces the linears by weight-only quantised ones; norms stay.
    """
    layers = 2
    model = _llama(layers, dtype, language)
    # Counted before quantising: a quantised linear is no nn.Linear, and counting after it made
    # the FLOPs attention's alone (int8 prefill "0.27 GFLOP/s", extrapolated 4x per doubling).
    layer_matrices = _matrix_elements(model.model.layers[0])
    if quantize is not None:
        from minigptv2.assistant import QUANTIZATIONS

        QUANTIZATIONS[quantize](model)
    clock = LayerClock(model.model.layers)
    hidden = language.hidden_size

    def prefill_flops(n: int) -> float:
        return language.num_layers * (2.0 * layer_matrices * n + 4.0 * n * n * hidden)

    def run_prefill(n: int) -> float:
        embeds = torch.randn(1, n, hidden, dtype=dtype)
        mask = torch.ones(1, n, dtype=torch.long)
        runs = [_timed_forward(model, clock, embeds, mask, DynamicCache()) for _ in range(2)]
        return min(_extrapolate(whole, layer, layers, language.num_layers) for whole, layer in runs)

    prefill_s, method = _capped(run_prefill, prompt_tokens, prefill_flops, cap_s)

    # Decode after a short prompt when prefill is slow: reading the weights dominates a step,
    # and the attention over 8 or 296 cached positions costs next to nothing beside it.
    prompt = prompt_tokens if method == "measured" else 8
    mask = torch.ones(1, prompt, dtype=torch.long)
    cache = DynamicCache()
    _forward(model, torch.randn(1, prompt, hidden, dtype=dtype), mask, cache)
    token = torch.randn(1, 1, hidden, dtype=dtype)
    steps = []
    for _ in range(DECODE_STEPS):
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        whole, layer = _timed_forward(model, clock, token, mask, cache)
        steps.append(_extrapolate(whole, layer, layers, language.num_layers))
    decode_s = min(steps)

    bytes_per_token = language.num_layers * _bytes(model.model.layers[0]) + _bytes(model.lm_head)
    bound = bandwidth_gbps * 1e9 / bytes_per_token
    return {
        "prompt_tokens": prompt_tokens,
        "prefill_s": round(prefill_s, 3),
        "prefill_gflop": round(prefill_flops(prompt_tokens) / 1e9, 4),  # the work, any dtype
        "prefill_gflops": round(prefill_flops(prompt_tokens) / prefill_s / 1e9, 2),
        "prefill_method": f"{layers} layers timed by hooks ({method}), x{language.num_layers}",
        "decode_tokens_per_s": round(1.0 / decode_s, 4),
        "decode_method": (
            f"best of {DECODE_STEPS} steps, {layers} layers timed by hooks, x{language.num_layers}"
        ),
        "weight_bytes_per_token": bytes_per_token,
        "weight_gb_per_token": round(bytes_per_token / 1e9, 3),
        "bandwidth_bound_tokens_per_s": round(bound, 4),
        "decode_fraction_of_bandwidth_bound": round(1.0 / decode_s / bound, 3),
    }


def first_answer(vision: dict[str, Any], language: dict[str, Any], vision_name: str) -> None:
    """Add ``first_answer_s``: image encoding + prompt prefill + ``ANSWER_TOKENS`` decode steps."""
    seconds = (
        vision["encode_s"] + language["prefill_s"] + ANSWER_TOKENS / language["decode_tokens_per_s"]
    )
    language["first_answer_s"] = round(seconds, 2)
    language["first_answer_method"] = (
        f"ViT-g {vision_name} encode + prefill of {language['prompt_tokens']} tokens (256 image, "
        f"the rest prompt) + {ANSWER_TOKENS} tokens at the decode rate"
    )


def measure_full_size(machine: dict[str, Any], cap_s: float = 60.0) -> dict[str, Any]:
    """Vision encoding, prefill and decode at real size in fp32 and bf16, and the language model
    with int8 and int4 weights (see module docstring)."""
    result: dict[str, Any] = {}
    for name, dtype, peak in (
        ("fp32", torch.float32, machine["matmul_gflops"]),
        ("bf16", torch.bfloat16, machine["matmul_gflops_bf16"]),
    ):
        log(f"full size: ViT-g block in {name}")
        result[f"vision_{name}"] = measure_vision(dtype, peak, cap_s)
        log(f"full size: LLaMA-2-7B layers in {name}")
        result[f"language_{name}"] = measure_language(dtype, machine["memory_gbps"], cap_s)
        first_answer(result[f"vision_{name}"], result[f"language_{name}"], name)
    for name in ("int8", "int4"):
        log(f"full size: LLaMA-2-7B layers with {name} weights")
        result[f"language_{name}"] = measure_language(
            torch.float32, machine["memory_gbps"], cap_s, quantize=name
        )
        first_answer(result["vision_fp32"], result[f"language_{name}"], "fp32")
    for name, dtype, quantize in WHOLE_MODELS:
        whole_first_answer(result[f"language_{name}"], dtype, quantize, cap_s * WHOLE_CAP)
    return result


def whole_first_answer(
    language: dict[str, Any], dtype: str, quantize: str | None, cap_s: float
) -> None:
    """Replace the extrapolated ``first_answer_s`` by the whole model's, where it fits in memory
    and the extrapolation says it takes at most ``cap_s``; the extrapolation stays beside it."""
    extrapolated = language["first_answer_s"]
    if extrapolated > cap_s:
        language["first_answer_whole"] = f"not run: extrapolated {extrapolated} s > {cap_s} s"
        return
    log(f"full size: whole model, {quantize or dtype}, first answer")
    try:
        whole = measure_first_answer(MiniGPTv2Config(dtype=dtype), quantize)
    except MemoryError as error:
        language["first_answer_whole"] = f"not run: {error}"
        return
    language["first_answer_extrapolated_s"] = extrapolated
    language["first_answer_s"] = whole["first_answer_s"]
    language["first_answer_method"] = (
        f"whole model, random weights (built in {whole['build_s']} s): a 448-px image, "
        f"{PROMPT_TEXT_TOKENS} prompt tokens and {ANSWER_TOKENS} new ones through generate"
    )
    language["first_answer_whole"] = "measured"
