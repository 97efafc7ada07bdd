"""Tests for the EVA ViT-g/14 encoder (spec §1.2, §1.3, §8.3) on tiny configs, CPU only."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minigptv2.errors import ConfigError
from minigptv2.model import vision
from minigptv2.model.vision import EvaViT, VisionConfig, resample_pos_embed, sincos_2d

# 56 px / 14 = 4x4 grid; the "checkpoint" side is 28 px = 2x2, like 224 -> 448 in the real model.
TINY = VisionConfig(
    image_size=56,
    patch_size=14,
    width=32,
    depth=2,
    num_heads=4,
    mlp_hidden=128,
    pretrain_image_size=28,
)

BLOCK_KEYS = {
    "norm1.weight": ("W",),
    "norm1.bias": ("W",),
    "attn.qkv.weight": ("3W", "W"),
    "attn.q_bias": ("W",),
    "attn.v_bias": ("W",),
    "attn.proj.weight": ("W", "W"),
    "attn.proj.bias": ("W",),
    "norm2.weight": ("W",),
    "norm2.bias": ("W",),
    "mlp.fc1.weight": ("H", "W"),
    "mlp.fc1.bias": ("H",),
    "mlp.fc2.weight": ("W", "H"),
    "mlp.fc2.bias": ("W",),
}


def expected_state_dict_shapes(config: VisionConfig, depth: int | None = None) -> dict:
    """The ``eva_vit_g.pth`` layout (spec §8.3), written out by hand, for ``config``."""
    width, hidden, patch = config.width, config.mlp_hidden, config.patch_size
    dims = {"W": width, "3W": 3 * width, "H": hidden}
    shapes = {
        "cls_token": (1, 1, width),
        "pos_embed": (1, 1 + config.num_patches, width),
        "patch_embed.proj.weight": (width, 3, patch, patch),
        "patch_embed.proj.bias": (width,),
    }
    for i in range(config.depth if depth is None else depth):
        for name, dim_names in BLOCK_KEYS.items():
            shapes[f"blocks.{i}.{name}"] = tuple(dims[d] for d in dim_names)
    return shapes


def randomise(model: EvaViT, seed: int = 0) -> EvaViT:
    """Give every parameter (including q_bias/v_bias and LayerNorm affine) non-trivial values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.5 if name.endswith(("q_bias", "v_bias")) else 0.1
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
            if name.endswith(("norm1.weight", "norm2.weight")):
                param.add_(1.0)
    return model


def reference_forward(model: EvaViT, pixels: torch.Tensor) -> torch.Tensor:
    """A literal re-statement of eva_vit's forward, using the module's own parameters."""
    config = model.config
    state = model.state_dict()
    batch, patch, grid, width = pixels.shape[0], config.patch_size, config.grid_size, config.width
    heads, head_dim = config.num_heads, config.width // config.num_heads

    conv_w = state["patch_embed.proj.weight"].reshape(width, -1)
    tokens = []
    for r in range(grid):  # raster order: row by row, left to right
        for c in range(grid):
            tile = pixels[:, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
            tokens.append(tile.reshape(batch, -1) @ conv_w.T + state["patch_embed.proj.bias"])
    x = torch.stack(tokens, dim=1)
    x = torch.cat([state["cls_token"].expand(batch, 1, width), x], dim=1) + state["pos_embed"]

    def layer_norm(t, w, b):
        mean = t.mean(-1, keepdim=True)
        var = ((t - mean) ** 2).mean(-1, keepdim=True)
        return (t - mean) / torch.sqrt(var + 1e-6) * w + b

    for i in range(config.depth):
        p = {k[len(f"blocks.{i}.") :]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        h = layer_norm(x, p["norm1.weight"], p["norm1.bias"])
        bias = torch.cat([p["attn.q_bias"], torch.zeros(width), p["attn.v_bias"]])
        qkv = h @ p["attn.qkv.weight"].T + bias
        q, k, v = qkv.split(width, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-2, -1) * head_dim**-0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, -1, width)
        x = x + out @ p["attn.proj.weight"].T + p["attn.proj.bias"]
        h = layer_norm(x, p["norm2.weight"], p["norm2.bias"])
        h = h @ p["mlp.fc1.weight"].T + p["mlp.fc1.bias"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        x = x + h @ p["mlp.fc2.weight"].T + p["mlp.fc2.bias"]
    return x


# --- config ---------------------------------------------------------------------------------------


def test_default_config_is_minigptv2_encoder():
    config = VisionConfig()
    assert (config.grid_size, config.num_patches, config.head_dim) == (32, 1024, 88)
    assert config.pretrain_grid_size == 16
    assert config.mlp_hidden == int(1408 * 4.3637)
    assert (config.depth, config.norm_eps) == (39, 1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 450}, "image_size=450 is not divisible by patch_size=14"),
        ({"pretrain_image_size": 225}, "pretrain_image_size=225 is not divisible"),
        ({"num_heads": 15}, "width=1408 is not divisible by num_heads=15"),
        ({"depth": 0}, "depth must be a positive integer, got 0"),
        ({"patch_size": -14}, "patch_size must be a positive integer"),
        ({"norm_eps": 0.0}, "norm_eps must be positive"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        VisionConfig(**overrides)


# --- parameters -----------------------------------------------------------------------------------


def test_state_dict_is_exactly_eva_vit_g_layout():
    state = EvaViT(TINY).state_dict()
    expected = expected_state_dict_shapes(TINY)
    assert set(state) == set(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert not any("k_bias" in key for key in state)
    assert list(EvaViT(TINY).buffers()) == []


def test_full_size_on_meta_device():
    with torch.device("meta"):
        model = EvaViT(VisionConfig())
    assert sum(p.numel() for p in model.parameters()) == 986_975_872
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_state_dict_shapes(
        VisionConfig()
    )
    assert len(state) == 4 + 39 * 13
    assert "blocks.38.mlp.fc2.bias" in state and "blocks.39.norm1.weight" not in state
    assert state["pos_embed"].shape == (1, 1025, 1408)
    assert state["blocks.0.attn.qkv.weight"].shape == (4224, 1408)
    assert state["blocks.0.mlp.fc1.weight"].shape == (6144, 1408)


def test_meta_model_materialises_with_reset_parameters():
    with torch.device("meta"):
        model = EvaViT(TINY)
    model.to_empty(device="cpu")
    model.reset_parameters()
    state = model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    assert torch.equal(state["blocks.1.norm2.weight"], torch.ones(TINY.width))
    for name in ("attn.q_bias", "attn.v_bias", "attn.proj.bias", "mlp.fc1.bias"):
        assert torch.equal(state[f"blocks.0.{name}"], torch.zeros_like(state[f"blocks.0.{name}"]))
    assert 0.01 < state["cls_token"].std() < 0.03
    assert state["cls_token"].abs().max() <= 0.04 + 1e-6  # truncated at 2 std
    grid = TINY.image_size // TINY.patch_size
    assert torch.equal(state["pos_embed"][0, 1:], sincos_2d(grid, TINY.width))
    # Output projections are scaled down with depth (EVA's rescale).
    assert state["blocks.1.mlp.fc2.weight"].std() < state["blocks.1.mlp.fc1.weight"].std()


def test_sincos_2d_codes_row_and_column_separately():
    grid, width = 5, 16
    table = sincos_2d(grid, width).reshape(grid, grid, width)
    rows, cols = table[..., : width // 2], table[..., width // 2 :]
    # The first half depends on the row only, the second on the column only, with the same code.
    assert torch.equal(rows, rows[:, :1].expand_as(rows))
    assert torch.equal(cols, cols[:1].expand_as(cols))
    assert torch.equal(rows[:, 0], cols[0])
    # Lowest frequency channel: sin(index) in row half, cos(index) after the sines.
    assert torch.allclose(rows[:, 0, 0], torch.sin(torch.arange(grid, dtype=torch.float32)))
    assert torch.allclose(
        rows[:, 0, width // 4], torch.cos(torch.arange(grid, dtype=torch.float32))
    )
    # Every patch gets its own code.
    flat = table.reshape(grid * grid, width)
    assert torch.cdist(flat, flat).add(torch.eye(grid * grid)).min() > 0.1


def test_sincos_2d_needs_width_divisible_by_four():
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d(4, 18)


def test_checkpoint_layout_loads_without_renaming():
    """A 28-px, depth+1 state dict in eva_vit_g.pth layout loads after pos_embed resampling."""
    source = VisionConfig(**{**TINY.__dict__, "image_size": 28, "depth": TINY.depth + 1})
    checkpoint = randomise(EvaViT(source), seed=3).state_dict()
    assert checkpoint["pos_embed"].shape == (1, 1 + 2 * 2, TINY.width)
    checkpoint["pos_embed"] = resample_pos_embed(checkpoint["pos_embed"], TINY.grid_size)

    model = EvaViT(TINY)
    result = model.load_state_dict(checkpoint, strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == sorted(f"blocks.{TINY.depth}.{k}" for k in BLOCK_KEYS)
    assert torch.equal(model.blocks[1].attn.v_bias, checkpoint["blocks.1.attn.v_bias"])


# --- forward --------------------------------------------------------------------------------------


def test_forward_matches_reference_with_nonzero_biases():
    torch.manual_seed(0)
    model = randomise(EvaViT(TINY)).eval()
    assert model.blocks[0].attn.q_bias.abs().min() > 0
    assert model.blocks[0].attn.v_bias.abs().min() > 0
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        out = model(pixels)
        expected = reference_forward(model, pixels)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_key_bias_is_zero_and_query_value_biases_are_applied():
    torch.manual_seed(1)
    attn = randomise(EvaViT(TINY)).blocks[0].attn
    x = torch.randn(2, 5, TINY.width)
    with torch.no_grad():
        q, k, v = attn.project_qkv(x)
    w_q, w_k, w_v = attn.qkv.weight.detach().split(TINY.width)

    def heads(t):  # (B, N, W) -> (B, heads, N, head_dim)
        return t.reshape(2, 5, TINY.num_heads, TINY.head_dim).transpose(1, 2)

    torch.testing.assert_close(k, heads(x @ w_k.T))
    torch.testing.assert_close(q, heads(x @ w_q.T + attn.q_bias.detach()))
    torch.testing.assert_close(v, heads(x @ w_v.T + attn.v_bias.detach()))


def test_output_shape_and_cls_first():
    model = EvaViT(TINY)
    out = model(torch.randn(3, 3, 56, 56))
    assert out.shape == (3, 1 + 16, TINY.width)
    # Changing only the CLS embedding changes token 0 of the input sequence; the output must react.
    with torch.no_grad():
        before = model(torch.zeros(1, 3, 56, 56))
        model.cls_token.add_(1.0)
        after = model(torch.zeros(1, 3, 56, 56))
    assert not torch.allclose(before[:, 0], after[:, 0])


def test_wrong_image_size_raises_clear_error():
    model = EvaViT(TINY)
    with pytest.raises(ValueError, match=r"expected 56x56 pixels, got 28x28: resize images"):
        model(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match=r"expected 56x56 pixels, got 56x70"):
        model(torch.randn(1, 3, 56, 70))
    with pytest.raises(ValueError, match=r"shape \(batch, 3, 56, 56\), got \(1, 1, 56, 56\)"):
        model(torch.randn(1, 1, 56, 56))


def test_gradient_checkpointing_matches_plain_backward(monkeypatch):
    torch.manual_seed(2)
    model = randomise(EvaViT(TINY)).train()
    pixels = torch.randn(2, 3, 56, 56)

    def run():
        model.zero_grad()
        out = model(pixels)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_out, plain_grads = run()

    calls = []
    real_checkpoint = vision.checkpoint

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real_checkpoint(*args, **kwargs)

    monkeypatch.setattr(vision, "checkpoint", counting_checkpoint)
    model.gradient_checkpointing = True
    ckpt_out, ckpt_grads = run()
    assert calls == [False] * TINY.depth
    torch.testing.assert_close(ckpt_out, plain_out)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, msg=name)

    calls.clear()
    with torch.no_grad():
        model.eval()(pixels)
    assert calls == []  # not used outside training


# --- position-embedding resampling ----------------------------------------------------------------


def manual_resample(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    old = math.isqrt(pos_embed.shape[1] - 1)
    width = pos_embed.shape[2]
    image = pos_embed[:, 1:].float().reshape(1, old, old, width).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False)
    rows = image.permute(0, 2, 3, 1).reshape(1, grid * grid, width)
    return torch.cat([pos_embed[:, :1].float(), rows], dim=1).to(pos_embed.dtype)


def test_resample_matches_hand_written_interpolate_16_to_32():
    torch.manual_seed(3)
    pos_embed = torch.randn(1, 257, 8)
    out = resample_pos_embed(pos_embed, 32)
    assert out.shape == (1, 1025, 8)
    torch.testing.assert_close(out, manual_resample(pos_embed, 32), rtol=0, atol=0)
    torch.testing.assert_close(out[:, :1], pos_embed[:, :1], rtol=0, atol=0)


def test_resample_does_not_antialias():
    torch.manual_seed(4)
    pos_embed = torch.randn(1, 1 + 4 * 4, 6)
    out = resample_pos_embed(pos_embed, 8)[:, 1:]
    image = pos_embed[:, 1:].reshape(1, 4, 4, 6).permute(0, 3, 1, 2)
    antialiased = (
        F.interpolate(image, size=(8, 8), mode="bicubic", align_corners=False, antialias=True)
        .permute(0, 2, 3, 1)
        .reshape(1, 64, 6)
    )
    assert (out - antialiased).abs().max() > 1e-3


def test_resample_keeps_constant_grid_constant_and_ramp_monotone():
    width = 3
    constant = torch.full((1, 1 + 16, width), 0.25)
    constant[:, 0] = -7.0
    out = resample_pos_embed(constant, 7)
    assert out[0, 0].tolist() == [-7.0] * width
    torch.testing.assert_close(out[:, 1:], torch.full((1, 49, width), 0.25))

    ramp = torch.zeros(1, 1 + 16, width)
    ramp[0, 1:] = torch.arange(4.0).repeat(4)[:, None]  # value = column index, rows identical
    grid = resample_pos_embed(ramp, 8)[0, 1:, 0].reshape(8, 8)
    assert (grid[:, 1:] - grid[:, :-1] > 0).all()  # increases left to right (row-major layout)
    torch.testing.assert_close(grid, grid[:1].expand(8, 8))  # and is the same on every row


def test_resample_identity_when_grid_matches():
    pos_embed = torch.randn(1, 1 + 9, 4)
    assert resample_pos_embed(pos_embed, 3) is pos_embed


def test_resample_computes_in_float32_and_keeps_dtype():
    torch.manual_seed(5)
    pos_embed = torch.randn(1, 1 + 16, 4).to(torch.bfloat16)
    out = resample_pos_embed(pos_embed, 6)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, manual_resample(pos_embed, 6), rtol=0, atol=0)


def test_resample_rejects_bad_input():
    with pytest.raises(ValueError, match=r"15 patch rows .* not a square grid"):
        resample_pos_embed(torch.zeros(1, 16, 4), 4)
    with pytest.raises(ValueError, match=r"shape \(1, 1 \+ g\*g, width\)"):
        resample_pos_embed(torch.zeros(257, 4), 4)
    with pytest.raises(ValueError, match="grid_size must be a positive integer, got 0"):
        resample_pos_embed(torch.zeros(1, 5, 4), 0)


def test_set_image_size_resamples_only_the_position_table():
    model = randomise(EvaViT(TINY))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    model.set_image_size(84)  # 4x4 -> 6x6 patches
    assert model.config.image_size == 84 and model.config.grid_size == 6
    state = model.state_dict()
    assert torch.equal(state["pos_embed"], resample_pos_embed(before["pos_embed"], 6))
    assert all(
        torch.equal(state[key], value) for key, value in before.items() if key != "pos_embed"
    )
    assert model(torch.randn(1, 3, 84, 84)).shape == (1, 1 + 36, TINY.width)
    with pytest.raises(ValueError, match=r"expected 84x84 pixels, got 56x56"):
        model(torch.randn(1, 3, 56, 56))


def test_set_image_size_off_the_patch_grid_fails_and_changes_nothing():
    model = EvaViT(TINY)
    with pytest.raises(ConfigError, match=r"image_size=90 is not divisible by patch_size=14"):
        model.set_image_size(90)
    assert model.config == TINY and model.pos_embed.shape == (1, 1 + 16, TINY.width)
