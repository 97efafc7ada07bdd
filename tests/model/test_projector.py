import pytest
import torch

from minigptv2.errors import ImageSlotMismatchError
from minigptv2.model.projector import Projector


def identity_projector(width: int) -> Projector:
    projector = Projector(width, width * 4)
    with torch.no_grad():
        projector.linear.weight.copy_(torch.eye(width * 4))
        projector.linear.bias.zero_()
    return projector


def test_merge_concatenates_four_consecutive_tokens_in_order():
    # 8 patch tokens of width 2; token i = [i, 10 + i].
    tokens = torch.tensor([[[i, 10 + i] for i in range(8)]], dtype=torch.float32)
    merged = identity_projector(2)(tokens)
    assert merged.shape == (1, 2, 8)
    torch.testing.assert_close(merged[0, 0], torch.tensor([0.0, 10, 1, 11, 2, 12, 3, 13]))
    torch.testing.assert_close(merged[0, 1], torch.tensor([4.0, 14, 5, 15, 6, 16, 7, 17]))


def test_on_a_32x32_grid_each_group_is_a_horizontal_strip():
    # Patch (row r, column c) carries the feature [r, c]; raster order as the ViT emits it.
    grid = torch.tensor([[r, c] for r in range(32) for c in range(32)], dtype=torch.float32)
    merged = identity_projector(2)(grid[None])[0]  # (256, 8)
    assert merged.shape == (256, 8)
    for j in (0, 7, 8, 100, 255):
        rows, columns = merged[j, 0::2], merged[j, 1::2]
        assert rows.tolist() == [j // 8] * 4  # one patch row, not a 2x2 square
        assert columns.tolist() == [4 * (j % 8) + k for k in range(4)]


def test_indivisible_patch_count_is_refused():
    with pytest.raises(ImageSlotMismatchError, match="cannot be merged"):
        Projector(2, 8)(torch.zeros(1, 6, 2))
