"""EVA-CLIP ViT-g/14, the frozen image encoder of MiniGPT-v2 (spec §1.1-1.3, §8.3).

MiniGPT-v2 (arXiv 2310.09478) encodes a 448x448 image with the vision tower of EVA-CLIP
(Fang et al., "EVA: Exploring the Limits of Masked Visual Representation Learning at Scale",
arXiv 2211.07636; Sun et al., "EVA-CLIP", arXiv 2303.15389) in the form BLIP-2 (Li et al.,
arXiv 2301.12597) released as ``eva_vit_g.pth``:

* patch 14, width 1408, 16 heads of dim 88, MLP hidden 6144 with exact (erf) GELU;
* 39 pre-norm blocks -- EVA-CLIP-g has 40; BLIP-2 drops the last one, so the features are the
  original network's penultimate layer;
* one bias-free ``qkv`` projection plus separate ``q_bias`` and ``v_bias``; the key bias is zero;
* absolute learned position embeddings, no relative position bias, no RoPE, no layer-scale;
* no final norm: the output is the last block's raw output, CLS token included,
  ``(B, 1 + 32 * 32, 1408)`` for a 448x448 image.

Parameter names match ``eva_vit_g.pth`` exactly, so the released file loads without renaming once
its 16x16 ``pos_embed`` has been resampled to the 32x32 grid with :func:`resample_pos_embed`
(bicubic, ``align_corners=False``, no antialias -- as MiniGPT-v2 does it). The checkpoint's
``blocks.39.*`` belong to the dropped 40th block and are deliberately not loaded.

This module holds tensors only: reading checkpoints, fp16 casting and freezing live elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from minigptv2.config import VisionConfig
from minigptv2.errors import CheckpointError, ConfigError, ImageError

__all__ = [
    "EvaAttention",
    "EvaBlock",
    "EvaMlp",
    "EvaPatchEmbed",
    "EvaViT",
    "VisionConfig",
    "resample_pos_embed",
    "sincos_2d",
]

_INIT_STD = 0.02


def _trunc_normal_(tensor: Tensor) -> Tensor:
    # nn.init.trunc_normal_ cuts at absolute +-2 by default, i.e. not at all for std 0.02.
    return nn.init.trunc_normal_(tensor, std=_INIT_STD, a=-2 * _INIT_STD, b=2 * _INIT_STD)


class EvaPatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens with one strided convolution (``patch_embed.proj``)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            3, config.width, kernel_size=config.patch_size, stride=config.patch_size, bias=True
        )

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.proj(pixel_values)  # (B, 3, H, W) -> (B, W, G, G)
        return x.flatten(2).transpose(1, 2)  # (B, W, G, G) -> (B, G*G, W), raster order


class EvaAttention(nn.Module):
    """Multi-head self-attention with EVA's split bias: ``q_bias``, zero key bias, ``v_bias``.

    The zero key bias is built on the fly, so it is neither a parameter nor a buffer and never
    appears in ``state_dict`` (``eva_vit_g.pth`` has no ``k_bias`` either).
    """

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(config.width))
        self.v_bias = nn.Parameter(torch.zeros(config.width))
        self.proj = nn.Linear(config.width, config.width, bias=True)

    def project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Project tokens ``(B, N, W)`` to ``q, k, v``, each ``(B, heads, N, head_dim)``."""
        batch, tokens, _ = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))  # (3W,)
        # The biases may stay fp32 next to fp16 weights (reference loading); follow the weight.
        qkv = F.linear(x, self.qkv.weight, bias.to(self.qkv.weight.dtype))  # (B, N, 3W)
        # (B, N, 3W) -> (B, N, 3, heads, head_dim) -> (3, B, heads, N, head_dim)
        qkv = qkv.reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        return q, k, v

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.project_qkv(x)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, heads, N, head_dim)
        out = out.transpose(1, 2).reshape(batch, tokens, width)  # -> (B, N, heads, hd) -> (B, N, W)
        return self.proj(out)


class EvaMlp(nn.Module):
    """``fc1`` -> exact (erf) GELU -> ``fc2``."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.width, config.mlp_hidden)
        self.act = nn.GELU(approximate="none")
        self.fc2 = nn.Linear(config.mlp_hidden, config.width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EvaBlock(nn.Module):
    """Pre-norm transformer block without layer-scale, dropout or drop-path."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.attn = EvaAttention(config)
        self.norm2 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.mlp = EvaMlp(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EvaViT(nn.Module):
    """EVA ViT-g/14 encoder: pixels ``(B, 3, H, W)`` -> tokens ``(B, 1 + G*G, width)``.

    Token 0 is CLS, tokens 1.. are patches in raster order (row-major, ``1 + G*r + c``). There is no
    final norm; MiniGPT-v2 applies its own ``ln_vision`` afterwards (spec §1.4).

    Building on the meta device is cheap, e.g. to count parameters; after ``to_empty(device=...)``
    call :meth:`reset_parameters` (or load a state dict) to get real values.
    """

    def __init__(self, config: VisionConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else VisionConfig()
        width = self.config.width
        self.patch_embed = EvaPatchEmbed(self.config)
        self.cls_token = nn.Parameter(torch.empty(1, 1, width))
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + self.config.num_patches, width))
        self.blocks = nn.ModuleList(EvaBlock(self.config) for _ in range(self.config.depth))
        # Recompute block activations in backward to save memory; only used while training.
        self.gradient_checkpointing = False
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise for training from scratch (valid on the meta device, where it is a no-op).

        The position embedding starts as MAE's fixed 2-D sine-cosine table (zero for CLS), so a
        model trained from scratch knows where each patch is from its first step: with EVA's
        std-0.02 normal start it was ~30x weaker than the patch content and boxes were learned
        late (see the issue-5 note). Released weights replace it.
        Normal with std 0.02 truncated at 2 std for CLS, patch projection and
        linear weights; zero biases (including ``q_bias``/``v_bias``); LayerNorm weight 1, bias 0.
        As in EVA, each block's output projections (``attn.proj``, ``mlp.fc2``) are further divided
        by ``sqrt(2 * layer)`` so the residual stream does not grow with depth.
        """
        _trunc_normal_(self.cls_token)
        grid = sincos_2d(self.config.image_size // self.config.patch_size, self.config.width)
        self.pos_embed.copy_(F.pad(grid, (0, 0, 1, 0)).unsqueeze(0))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                _trunc_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, EvaAttention):
                nn.init.zeros_(module.q_bias)
                nn.init.zeros_(module.v_bias)
        for layer, block in enumerate(self.blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))

    @torch.no_grad()
    def set_image_size(self, image_size: int) -> None:
        """Take ``image_size`` px images from now on: the position table is resampled to the new
        grid (:func:`resample_pos_embed`), as MiniGPT-v2 runs EVA's 224-px ViT at 448 px. No
        other weight depends on the size."""
        config = replace(self.config, image_size=image_size)
        table = resample_pos_embed(self.pos_embed.data, config.grid_size).contiguous()
        self.pos_embed = nn.Parameter(table, requires_grad=self.pos_embed.requires_grad)
        self.config = config

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Encode normalised pixels ``(B, 3, S, S)``, ``S = config.image_size``.

        Returns:
            ``(B, 1 + G*G, width)``: CLS then the G*G patch tokens, raw output of the last block.
        """
        size = self.config.image_size
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ImageError(
                f"expected pixel values of shape (batch, 3, {size}, {size}), got"
                f" {tuple(pixel_values.shape)}: prepare images with the processor"
            )
        height, width = pixel_values.shape[-2:]
        if (height, width) != (size, size):
            raise ImageError(
                f"expected {size}x{size} pixels, got {height}x{width}: resize images with the"
                " processor (the position embedding is fixed to the configured image_size)"
            )
        x = self.patch_embed(pixel_values)  # (B, G*G, W)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (1, 1, W) -> (B, 1, W)
        x = torch.cat((cls, x), dim=1) + self.pos_embed  # (B, 1 + G*G, W)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def sincos_2d(grid_size: int, width: int) -> Tensor:
    """``(grid_size**2, width)`` sine-cosine position codes, rows in raster order (as in MAE).

    Half the channels encode the row, half the column, each as sines then cosines of the index
    at ``width / 4`` geometric frequencies from 1 to 1/10000.
    """
    if width % 4:
        raise ConfigError(f"a 2-D sine-cosine table needs a width divisible by 4, got {width}")
    quarter = width // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    index = torch.arange(grid_size, dtype=torch.float64)
    angles = index[:, None] * frequencies[None, :]  # (G, W/4)
    axis = torch.cat((angles.sin(), angles.cos()), dim=1)  # (G, W/2)
    rows = axis[:, None, :].expand(grid_size, grid_size, -1)
    cols = axis[None, :, :].expand(grid_size, grid_size, -1)
    return torch.cat((rows, cols), dim=-1).reshape(grid_size * grid_size, width).float()


def resample_pos_embed(pos_embed: Tensor, grid_size: int) -> Tensor:
    """Resample a checkpoint's ``(1, 1 + g*g, W)`` position embedding to a ``grid_size`` grid.

    Exactly MiniGPT-v2's loading step (spec §1.3): the first (CLS) row is kept; the g*g patch rows
    are viewed as a ``(1, W, g, g)`` image, resized with ``F.interpolate(mode="bicubic",
    align_corners=False)`` *without* antialias (timm's resampler uses antialias and differs by
    up to 6.5 % relative), and flattened back row-major. Computed in float32, returned in the
    input dtype. ``eva_vit_g.pth``: ``(1, 257, 1408)`` with ``grid_size=32`` -> ``(1, 1025, 1408)``.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size <= 0:
        raise ConfigError(f"grid_size must be a positive integer, got {grid_size!r}")
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or pos_embed.shape[1] < 2:
        raise CheckpointError(
            "pos_embed must have shape (1, 1 + g*g, width) with a CLS row first, got"
            f" {tuple(pos_embed.shape)}"
        )
    num_patches = pos_embed.shape[1] - 1
    old_grid = math.isqrt(num_patches)
    if old_grid * old_grid != num_patches:
        raise CheckpointError(
            f"pos_embed has {num_patches} patch rows (after the CLS row), which is not a square"
            f" grid: expected 1 + g*g rows, e.g. 257 for the 16x16 grid of eva_vit_g.pth, got"
            f" shape {tuple(pos_embed.shape)}"
        )
    if old_grid == grid_size:
        return pos_embed
    width = pos_embed.shape[2]
    cls_row = pos_embed[:, :1]  # (1, 1, W)
    grid = pos_embed[:, 1:].float()  # (1, g*g, W)
    grid = grid.reshape(1, old_grid, old_grid, width).permute(0, 3, 1, 2)  # -> (1, W, g, g)
    grid = F.interpolate(
        grid, size=(grid_size, grid_size), mode="bicubic", align_corners=False, antialias=False
    )  # (1, W, grid, grid)
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_size * grid_size, width)  # -> (1, grid², W)
    return torch.cat((cls_row, grid.to(pos_embed.dtype)), dim=1)  # (1, 1 + grid², W)
