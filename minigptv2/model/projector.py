"""The projector: four consecutive ViT tokens -> one language-model token (spec §1.5, §1.6).

MiniGPT-v2 reshapes the 1024 patch tokens (raster order) into 256 groups of 4 *consecutive*
tokens. Since the 32-wide grid is a multiple of 4, each group is a 1x4 horizontal strip of one
patch row, not a 2x2 square; the released ``llama_proj`` weights were trained on exactly that
layout, so the merge is a plain memory view with no transpose. One linear layer then maps
4x1408 = 5632 features to 4096.
"""

from __future__ import annotations

import torch
from torch import nn

from minigptv2.errors import ImageSlotMismatchError


class Projector(nn.Module):
    def __init__(self, vision_width: int, language_width: int, tokens_merged: int = 4) -> None:
        super().__init__()
        self.tokens_merged = tokens_merged
        self.linear = nn.Linear(vision_width * tokens_merged, language_width)

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """(B, P, C) patch tokens without CLS -> (B, P / 4, language_width)."""
        batch, patches, width = patch_tokens.shape
        if patches % self.tokens_merged:
            raise ImageSlotMismatchError(
                f"{patches} patch tokens cannot be merged {self.tokens_merged} at a time"
            )
        # (B, 1024, 1408) -> (B, 256, 5632): token j = [t(4j) | t(4j+1) | t(4j+2) | t(4j+3)]
        merged = patch_tokens.reshape(
            batch, patches // self.tokens_merged, width * self.tokens_merged
        )
        return self.linear(merged.to(self.linear.weight.dtype))
