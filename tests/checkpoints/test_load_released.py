"""Loading the released formats: every variant, numerical parity, and every kind of mismatch."""

import json
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from checkpoint_helpers import IMAGE_SIZE, TINY, fixture_script, logits_of, sample_inputs
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

from minigptv2.checkpoints.released import load_released
from minigptv2.config import Trainable
from minigptv2.errors import CheckpointError
from minigptv2.model import MiniGPTv2

OURS = "language_model.base_model.model.model.layers"
REF = "llama_model.base_model.model.model.layers"


def copy_released(released, tmp_path):
    """A private copy of the three files that a test may alter."""
    root = tmp_path / "copy"
    shutil.copytree(released.eva.parent, root)
    return fixture_script.ReleasedFixture(
        root / released.eva.name, root / released.llama.name, root / released.checkpoint.name
    )


def edit_checkpoint(path, edit):
    state = torch.load(path, weights_only=True)
    edit(state["model"])
    torch.save(state, path)


def load(files, **kwargs):
    return load_released(files.eva, files.llama, files.checkpoint, image_size=IMAGE_SIZE, **kwargs)


# -- parity with a model whose weights were set by hand --------------------------------------------


@torch.no_grad()
def hand_built(config, files):
    """The same weights put in place without the loader: EVA by name, LoRA merged manually."""
    torch.manual_seed(123)
    model = MiniGPTv2(config.replace(lora=None, trainable=Trainable(lora=False))).eval()
    eva = torch.load(files.eva, weights_only=True)
    depth = config.vision.depth
    vision = {k: v.float() for k, v in eva.items() if not k.startswith(f"blocks.{depth}.")}
    old, new, width = config.vision.pretrain_grid_size, config.vision.grid_size, config.vision.width
    grid = vision["pos_embed"][:, 1:].reshape(1, old, old, width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new * new, width)
    vision["pos_embed"] = torch.cat([vision["pos_embed"][:, :1], grid], dim=1)
    model.vision.load_state_dict(vision)

    checkpoint = torch.load(files.checkpoint, weights_only=True)["model"]
    model.projector.linear.weight.copy_(checkpoint["llama_proj.weight"])
    model.projector.linear.bias.copy_(checkpoint["llama_proj.bias"])

    llama = LlamaForCausalLM.from_pretrained(files.llama, dtype=torch.float32).state_dict()
    scale = config.lora.alpha / config.lora.rank
    for layer in range(config.language.num_layers):
        for module in ("q_proj", "v_proj"):
            a = checkpoint[f"{REF}.{layer}.self_attn.{module}.lora_A.weight"]
            b = checkpoint[f"{REF}.{layer}.self_attn.{module}.lora_B.weight"]
            llama[f"model.layers.{layer}.self_attn.{module}.weight"] += scale * b @ a
    model.language_model.load_state_dict(llama)
    return model


def test_loaded_model_matches_hand_built_weights(loaded, released):
    model, tokenizer = loaded
    inputs = sample_inputs(model, tokenizer)
    reference = hand_built(model.config, released)
    logits = logits_of(model, inputs)
    # Unmerged (W x + s B A x) vs merged ((W + s B A) x) LoRA round differently in fp32.
    torch.testing.assert_close(logits, logits_of(reference, inputs), atol=1e-4, rtol=1e-4)
    with model.language_model.disable_adapter():  # LoRA matters, so the check has teeth
        assert (logits - logits_of(model, inputs)).abs().max() > 1e-2


def test_loaded_config_and_report(loaded, released):
    model, tokenizer = loaded
    config = model.config
    assert (config.vision.width, config.vision.depth, config.vision.num_heads) == (176, 2, 2)
    assert config.vision.pretrain_image_size == 56 and config.vision.image_size == IMAGE_SIZE
    assert (config.language.hidden_size, config.language.num_layers) == (64, 2)
    assert (config.lora.rank, config.lora.alpha, config.lora.dropout) == (TINY.lora_rank, 16, 0.05)
    assert tokenizer.path == released.llama / "tokenizer.model"
    report = model.load_report
    assert report.ok
    assert {n.key for n in report.dropped} == {k for k in _eva_keys(released) if "blocks.2." in k}
    assert len(report.ignored) == TINY.layers  # rotary_emb.inv_freq
    assert any("4x4 grid to 8x8" in note for note in report.notes)
    # Non-persistent RoPE buffers were recomputed, not left on meta.
    rotary = model.language_model.base_model.model.model.rotary_emb
    head_dim = TINY.hidden // TINY.heads
    expected = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    torch.testing.assert_close(rotary.inv_freq, expected)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    # vision_norm is the identity LayerNorm; trainable flags follow MiniGPT-v2.
    assert torch.equal(model.vision_norm.weight, torch.ones(176))
    assert model.projector.linear.weight.requires_grad and not model.vision.cls_token.requires_grad


def _eva_keys(released):
    return torch.load(released.eva, weights_only=True).keys()


def test_bfloat16_keeps_projector_and_lora_fp32(released):
    model, _ = load(released, dtype="bfloat16")
    assert model.vision.cls_token.dtype == torch.bfloat16
    lm = model.language_model.base_model.model.model
    assert lm.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    assert lm.layers[0].self_attn.q_proj.lora_A.default.weight.dtype == torch.float32
    assert model.projector.linear.weight.dtype == torch.float32


# -- every foreign format ------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["sharded", "bin"])
def test_llama_folder_formats_load_identically(loaded, released, tmp_path, weights):
    model, tokenizer = loaded
    files = copy_released(released, tmp_path)
    shutil.rmtree(files.llama)
    fixture_script.write_llama_folder(files.llama, TINY, seed=1, weights=weights)
    other, _ = load(files)
    inputs = sample_inputs(model, tokenizer)
    assert torch.equal(logits_of(model, inputs), logits_of(other, inputs))
    if weights == "bin":  # legacy exports carry the RoPE buffer; ignored by name
        assert any("rotary_emb.inv_freq" in n.key for n in other.load_report.ignored)


def test_checkpoint_with_peft_default_names_loads_identically(loaded, released, tmp_path):
    model, tokenizer = loaded
    files = copy_released(released, tmp_path)
    state = fixture_script.checkpoint_state_dict(TINY, seed=2, peft_default=True)
    torch.save({"model": state, "epoch": 3, "config": {"run": {"lr": 1e-5}}}, files.checkpoint)
    other, _ = load(files)
    inputs = sample_inputs(model, tokenizer)
    assert torch.equal(logits_of(model, inputs), logits_of(other, inputs))


def test_ln_vision_in_checkpoint_is_loaded(released, tmp_path):
    files = copy_released(released, tmp_path)
    norm = {"ln_vision.weight": torch.full((176,), 2.0), "ln_vision.bias": torch.ones(176)}
    edit_checkpoint(files.checkpoint, lambda s: s.update(norm))
    model, _ = load(files)
    assert torch.equal(model.vision_norm.weight, torch.full((176,), 2.0))
    assert not model.load_report.fresh


def test_without_checkpoint_projector_and_lora_are_fresh(released):
    model, _ = load_released(released.eva, released.llama, image_size=IMAGE_SIZE)
    assert model.config.lora.rank == 64  # the released rank when nothing says otherwise
    lm = model.language_model.base_model.model.model
    assert torch.count_nonzero(lm.layers[1].self_attn.v_proj.lora_B.default.weight) == 0
    assert torch.count_nonzero(lm.layers[1].self_attn.v_proj.lora_A.default.weight) > 0
    fresh = model.load_report.format()
    assert "no MiniGPT-v2 checkpoint given" in fresh and "projector.linear.weight" in fresh
    # LoRA B = 0, so the wrapped language model computes exactly the base LLaMA.
    ids = torch.tensor([[1, 5, 9, 30]])
    with torch.no_grad():
        with model.language_model.disable_adapter():
            plain = model.language_model(ids).logits
        torch.testing.assert_close(model.language_model(ids).logits, plain)


# -- mismatches ----------------------------------------------------------------------------------


def test_missing_lora_blames_the_checkpoint(released, tmp_path):
    files = copy_released(released, tmp_path)
    edit_checkpoint(
        files.checkpoint, lambda s: [s.pop(k) for k in list(s) if ".q_proj.lora_A" in k]
    )
    with pytest.raises(CheckpointError) as error:
        load(files)
    message = str(error.value)
    assert "missing" in message
    assert f"{OURS}.{{0-1}}.self_attn.q_proj.lora_A.default.weight (2 keys)" in message
    assert f"the MiniGPT-v2 checkpoint {files.checkpoint}" in message
    assert "no LoRA weights" in message and "--no-strict" in message


def test_unknown_lora_naming_is_unexpected_and_missing(released, tmp_path):
    files = copy_released(released, tmp_path)

    def rename(state):
        for key in [k for k in state if ".lora_" in k]:
            state[key.replace(".weight", ".adapter_x.weight")] = state.pop(key)

    edit_checkpoint(files.checkpoint, rename)
    with pytest.raises(CheckpointError) as error:
        load(files)
    message = str(error.value)
    assert "unexpected" in message and "names no known peft version writes" in message
    assert f"{REF}.{{0-1}}.self_attn.v_proj.lora_B.adapter_x.weight (2 keys)" in message
    assert "missing" in message


def test_unexpected_keys_in_eva_file(released, tmp_path):
    files = copy_released(released, tmp_path)
    eva = torch.load(files.eva, weights_only=True)
    eva["rel_pos_bias.table"] = torch.zeros(3)
    torch.save(eva, files.eva)
    with pytest.raises(CheckpointError) as error:
        load(files)
    assert f"the EVA file {files.eva}" in str(error.value)
    assert "rel_pos_bias.table" in str(error.value)


def test_wrong_projector_shape_says_other_llm_size(released, tmp_path):
    files = copy_released(released, tmp_path)
    edit_checkpoint(files.checkpoint, lambda s: s.update({"llama_proj.bias": torch.zeros(65)}))
    with pytest.raises(CheckpointError) as error:
        load(files)
    message = str(error.value)
    assert "wrong shape" in message and "projector.linear.bias: model [64], file [65]" in message
    assert "another LLM size" in message


def test_llama_weights_disagreeing_with_config(released, tmp_path):
    files = copy_released(released, tmp_path)
    weights = load_file(files.llama / "model.safetensors")
    weights["model.layers.1.mlp.up_proj.weight"] = torch.zeros(96, 64, dtype=torch.float16)
    save_file(weights, files.llama / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as error:
        load(files)
    message = str(error.value)
    assert (
        f"the LLaMA folder {files.llama}" in message and "model [128, 64], file [96, 64]" in message
    )
    assert "disagree with its own config.json" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"hidden_size": 96, "num_attention_heads": 4},
            "LLM hidden size: expected 64 (llama_proj.weight is [64, 704]), found 96",
        ),
        (
            {"num_hidden_layers": 3},
            "LLM layers: expected 2 (the checkpoint has LoRA weights for layers 0..1), found 3",
        ),
    ],
)
def test_wrong_base_model_is_refused_before_loading(released, tmp_path, change, expected):
    files = copy_released(released, tmp_path)
    config = json.loads((files.llama / "config.json").read_text())
    (files.llama / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(CheckpointError) as error:
        load(files)
    message = str(error.value)
    assert "was not trained on" in message and expected in message
    assert str(files.llama) in message


def test_wrong_vision_width_is_refused(released, tmp_path):
    files = copy_released(released, tmp_path)
    edit_checkpoint(
        files.checkpoint, lambda s: s.update({"llama_proj.weight": torch.zeros(64, 512)})
    )
    with pytest.raises(CheckpointError, match=re.escape("vision width: expected 512 / 4 = 128")):
        load(files)


def test_vocabulary_larger_than_the_model_is_refused(released, tmp_path):
    files = copy_released(released, tmp_path)
    config = json.loads((files.llama / "config.json").read_text())
    (files.llama / "config.json").write_text(json.dumps(config | {"vocab_size": 100}))
    with pytest.raises(CheckpointError, match=r"pieces but config\.json has vocab_size 100"):
        load(files)


def test_not_a_llama_folder(released, tmp_path):
    files = copy_released(released, tmp_path)
    (files.llama / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=r"lacks tokenizer\.model"):
        load(files)
    with pytest.raises(CheckpointError, match="no LLaMA folder"):
        load_released(files.eva, tmp_path / "nowhere", files.checkpoint)


def test_non_strict_loads_what_matches_and_prints_the_report(released, tmp_path, capsys):
    files = copy_released(released, tmp_path)
    dropped = [f"{REF}.1.self_attn.{m}_proj.lora_B.weight" for m in "qv"]
    edit_checkpoint(files.checkpoint, lambda s: [s.pop(k) for k in dropped])
    model, _ = load(files, strict=False)
    printed = capsys.readouterr().err
    assert "missing" in printed and f"{OURS}.1.self_attn.q_proj.lora_B.default.weight" in printed
    assert not model.load_report.ok
    lm = model.language_model.base_model.model.model
    assert torch.count_nonzero(lm.layers[1].self_attn.q_proj.lora_B.default.weight) == 0
    reference = torch.load(files.checkpoint, weights_only=True)["model"]
    torch.testing.assert_close(
        lm.layers[0].self_attn.q_proj.lora_B.default.weight,
        reference[f"{REF}.0.self_attn.q_proj.lora_B.weight"],
    )


def test_script_default_files_load_at_448_px_without_options(tmp_path):
    files = fixture_script.make_released_fixture(tmp_path, fixture_script.SIZES["small"], seed=3)
    model, _ = load_released(files.eva, files.llama, files.checkpoint)
    assert model.config.num_image_tokens == 256  # the real model's count
    assert any("16x16 grid to 32x32" in note for note in model.load_report.notes)
    with torch.no_grad():
        features = model.encode_images(torch.randn(1, 3, 448, 448))
    assert features.shape == (1, 256, fixture_script.SIZES["small"].hidden)


def test_vit_width_off_head_dim_88_needs_vision_heads(tmp_path):
    sizes = TINY.__class__(vision_width=32, vision_mlp=64, pretrain_grid=4, max_positions=256)
    files = fixture_script.make_released_fixture(tmp_path, sizes, seed=4)
    with pytest.raises(CheckpointError, match="not a multiple of EVA's head dimension 88"):
        load(files)
    model, _ = load(files, vision_heads=4)
    assert (model.config.vision.width, model.config.vision.num_heads) == (32, 4)
