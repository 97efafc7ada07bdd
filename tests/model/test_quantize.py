import copy

import pytest
import torch
from llm_helpers import tiny_hf_config
from torch import nn

from minigptv2.assistant import QUANTIZATIONS, Assistant
from minigptv2.checkpoints import save_pretrained
from minigptv2.checkpoints.options import QUANTIZATIONS as CLI_QUANTIZATIONS
from minigptv2.errors import ConfigError
from minigptv2.model import quantize
from minigptv2.model.quantize import (
    MATRIX_ROWS,
    Int4Linear,
    Int8Linear,
    pack_int4,
    quantize_int4,
    quantize_int8,
    unpack_int4,
)

EPS32 = torch.finfo(torch.float32).eps
EPS_BF16 = torch.finfo(torch.bfloat16).eps
ROWS = {"decode": 1, "few": 3, "prefill": MATRIX_ROWS + 7}


def test_int8_linear_matches_the_float_layer_to_quantisation_error():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    quantized = Int8Linear.from_linear(linear)
    assert quantized.weight_int8.dtype == torch.int8
    assert quantized.weight_int8.abs().amax(dim=1).eq(127).all()  # each row uses its full range
    x = torch.randn(3, 5, 96)
    expected = linear(x)
    got = quantized(x)
    assert got.shape == expected.shape and got.dtype == x.dtype
    # int8 weights and bf16 activations: about 1% of the output scale, never more than 3%.
    error = (got - expected).abs().max() / expected.abs().max()
    assert 1e-5 < error < 0.03, error


def test_int4_pack_unpack_round_trip():
    generator = torch.Generator().manual_seed(0)
    q = torch.randint(0, 16, (192, 96), generator=generator)
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.numel() == q.numel() // 2  # two per byte
    assert torch.equal(unpack_int4(packed, 96), q.to(torch.uint8))
    with pytest.raises(ConfigError, match="multiple of 64"):
        pack_int4(q[:100])


def _bound(x: torch.Tensor, weight: torch.Tensor, decode: bool) -> torch.Tensor:
    """Float error allowed between two ways of computing ``x @ weight.T``, elementwise.

    Summation order differs between kernels (and between AVX2 and AVX-512 builds of the same
    kernel): at most ``K * eps32 * (|x| @ |W|.T)``. The decode kernel also takes bf16 activations
    (the reference gets the same rounded x) and rounds its output to bf16: ``eps_bf16 * |y|``.
    """
    magnitude = x.abs() @ weight.abs().t()
    bound = 2 * x.shape[-1] * EPS32 * magnitude
    if decode:
        bound = bound + EPS_BF16 * magnitude
    return bound


@pytest.mark.parametrize("path", ROWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int4_linear_equals_a_dequantised_reference_matmul(path, dtype):
    torch.manual_seed(0)
    linear = nn.Linear(256, 128)
    quantized = Int4Linear.from_linear(linear, group_size=64)
    assert quantized.weight_int4.dtype == torch.uint8
    weight = quantized.dequantize()  # (out, in) fp32
    # About 1/30 of each group's range: 4 bits, not a copy and not noise.
    error = (weight - linear.weight).abs().max() / linear.weight.abs().max()
    assert 0.005 < error < 0.1, error
    x = torch.randn(ROWS[path], 256)
    decode = ROWS[path] <= MATRIX_ROWS
    reference_x = x.bfloat16().float() if decode or dtype == torch.bfloat16 else x
    expected = reference_x @ weight.t()
    with torch.no_grad():
        got = quantized(x.to(dtype)).float() - linear.bias
    bound = _bound(reference_x, weight, decode or dtype == torch.bfloat16)
    assert ((got - expected).abs() <= bound).all(), ((got - expected).abs() / bound).max()


@pytest.mark.parametrize("path", ROWS)
def test_int8_linear_equals_a_dequantised_reference_matmul(path):
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    quantized = Int8Linear.from_linear(linear)
    weight = quantized.dequantize()
    x = torch.randn(ROWS[path], 96)
    decode = ROWS[path] <= MATRIX_ROWS
    reference_x = x.bfloat16().float() if decode else x
    with torch.no_grad():
        got = quantized(x) - linear.bias
    # The prefill path multiplies the scales after the sum: one more rounding per output.
    bound = _bound(reference_x, weight, decode) + EPS32 * (reference_x @ weight.t()).abs()
    assert ((got - reference_x @ weight.t()).abs() <= bound).all()


def test_int4_pads_shapes_that_do_not_fit_the_kernel():
    torch.manual_seed(0)
    # The Shapes model's MLP: 688 input channels (not a multiple of 128), 600 outputs (not of 64).
    linear = nn.Linear(688, 600)
    quantized = Int4Linear.from_linear(linear, group_size=128)
    assert quantized.padded_in == 768
    assert quantized.scales_and_zeros.shape == (6, 640, 2)
    assert quantized.dequantize().shape == (600, 688)
    for rows in (1, MATRIX_ROWS + 1):
        x = torch.randn(2, rows, 688)
        with torch.no_grad():
            got = quantized(x)
        assert got.shape == (2, rows, 600)
        expected = linear(x)
        assert (got - expected).abs().max() / expected.abs().max() < 0.1


def test_int4_refuses_a_group_size_the_kernel_lacks_and_non_finite_weights(tiny_model):
    with pytest.raises(ConfigError, match=r"group size 100.*\(32, 64, 128, 256\)"):
        quantize_int4(tiny_model.language_model, group_size=100)
    layer = tiny_model.language_model.get_output_embeddings()
    with torch.no_grad():
        layer.weight[0, 0] = float("inf")
    with pytest.raises(ConfigError, match=r"lm_head.*non-finite.*without --quantize"):
        quantize_int4(tiny_model.language_model)
    # Checked before anything was replaced: the model is as it was.
    assert not any(isinstance(m, Int4Linear) for m in tiny_model.language_model.modules())


def test_a_torch_without_the_kernels_gets_a_clear_error(monkeypatch, tiny_model):
    monkeypatch.setattr(quantize, "_INT4_KERNEL", None)
    with pytest.raises(ConfigError, match=r"torch .* has no _weight_int4pack_mm_for_cpu.*2\.6"):
        quantize_int4(tiny_model.language_model)
    monkeypatch.setattr(quantize, "_INT8_KERNEL", None)
    with pytest.raises(ConfigError, match=r"no _weight_int8pack_mm kernel.*2\.3"):
        quantize_int8(tiny_model.language_model)


@pytest.mark.parametrize("quantizer", [quantize_int8, quantize_int4])
def test_quantize_replaces_the_language_model_linears_but_not_lora(tiny_model, quantizer):
    linears = [
        name
        for name, module in tiny_model.language_model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    lora = [name for name in linears if "lora_" in name]
    assert lora  # the tiny preset has LoRA adapters, which must stay trainable floats
    ids = torch.tensor([[1, 17, 42, 99, 7]])
    with torch.no_grad():
        before = tiny_model.language_model(input_ids=ids).logits
    assert quantizer(tiny_model.language_model) == len(linears) - len(lora)
    remaining = [
        name
        for name, module in tiny_model.language_model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    assert remaining == lora
    with torch.no_grad():
        after = tiny_model.language_model(input_ids=ids).logits
    similarity = torch.nn.functional.cosine_similarity(before.flatten(), after.flatten(), dim=0)
    assert similarity > (0.999 if quantizer is quantize_int8 else 0.98)


# Greedy agreement with fp32 on a tiny random LLaMA, the hardest case: random weights leave the
# logits nearly tied, so a small change flips the argmax (trained models have margins; the README
# gives the Shapes model's scores). Measured with seeds 0 and 1: teacher-forced top-1 agreement
# int8 0.98-1.0, int4 0.83-0.88; logits' relative error int8 0.009, int4 0.13-0.14.
AGREEMENT = {"int8": (0.95, 0.02), "int4": (0.7, 0.2)}


@pytest.mark.parametrize("name", AGREEMENT)
def test_greedy_tokens_of_a_tiny_llama_agree_with_fp32(name):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    model = LlamaForCausalLM(tiny_hf_config("llama", 400, ids)).eval()
    prompts = torch.randint(3, 400, (8, 12))
    settings = {"max_new_tokens": 16, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}
    mask = torch.ones_like(prompts)
    with torch.no_grad():
        greedy = model.generate(prompts, attention_mask=mask, **settings)
        expected = model(greedy).logits
    quantized = copy.deepcopy(model)
    QUANTIZATIONS[name](quantized)
    with torch.no_grad():
        got = quantized(greedy).logits  # the fp32 answer, teacher-forced: no cascade
        answers = quantized.generate(prompts, attention_mask=mask, **settings)
    agreement = (got[:, 11:-1].argmax(-1) == expected[:, 11:-1].argmax(-1)).float().mean()
    minimum, most = AGREEMENT[name]
    assert agreement >= minimum, agreement
    assert (got - expected).norm() / expected.norm() < most
    # Generation runs (decode kernel for new tokens, the GEMM path for nothing this short).
    assert answers.shape == greedy.shape


def test_load_with_int8_int4_and_unknown_quantization(tmp_path, tiny_model, tokenizer):
    assert set(QUANTIZATIONS) == set(CLI_QUANTIZATIONS)  # the CLI offers what load accepts
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    assistant = Assistant.load(folder, quantize="int8")
    assert isinstance(assistant.model.language_model.get_output_embeddings(), Int8Linear)
    assistant = Assistant.load(folder, quantize="int4")
    assert isinstance(assistant.model.language_model.get_output_embeddings(), Int4Linear)
    with pytest.raises(ConfigError, match=r"unknown quantization 'int3'.*int4.*int8"):
        Assistant.load(folder, quantize="int3")
