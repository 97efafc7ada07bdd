import pytest
import torch
from torch import nn

from minigptv2.assistant import Assistant
from minigptv2.checkpoints import save_pretrained
from minigptv2.errors import ConfigError
from minigptv2.model.quantize import Int8Linear, quantize_int8


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


def test_quantize_replaces_the_language_model_linears_but_not_lora(tiny_model):
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
    assert quantize_int8(tiny_model.language_model) == len(linears) - len(lora)
    remaining = [
        name
        for name, module in tiny_model.language_model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    assert remaining == lora
    with torch.no_grad():
        after = tiny_model.language_model(input_ids=ids).logits
    assert torch.nn.functional.cosine_similarity(before.flatten(), after.flatten(), dim=0) > 0.999


def test_load_with_int8_and_unknown_quantization(tmp_path, tiny_model, tokenizer):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    assistant = Assistant.load(folder, quantize="int8")
    assert isinstance(assistant.model.language_model.get_output_embeddings(), Int8Linear)
    with pytest.raises(ConfigError, match="int8"):
        Assistant.load(folder, quantize="int4")
