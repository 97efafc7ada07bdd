from __future__ import annotations

from importlib.resources import files

import torch
import torch.nn.functional as F

from minigptv2.config import get_preset
from minigptv2.model import MiniGPTv2
from minigptv2.tokenizer import Tokenizer
from minigptv2.train.scratch import COORDINATES, order_coordinate_tokens, smooth_rows


def _shapes_model_and_tokenizer() -> tuple[MiniGPTv2, Tokenizer]:
    tokenizer = Tokenizer(files("minigptv2") / "assets" / "shapes")
    torch.manual_seed(0)
    return MiniGPTv2(get_preset("shapes")), tokenizer


def _neighbour_similarity(rows: torch.Tensor, gap: int) -> float:
    return F.cosine_similarity(rows[:-gap], rows[gap:], dim=-1).mean().item()


def test_smooth_rows_make_near_values_similar_and_keep_scale():
    random_rows = torch.randn(101, 256) * 0.02
    rows = smooth_rows(random_rows, torch.Generator().manual_seed(0))
    assert abs(_neighbour_similarity(random_rows, 1)) < 0.05
    assert _neighbour_similarity(rows, 1) > 0.4
    # Similarity falls with distance: half shared next door, none half the range apart.
    by_gap = [_neighbour_similarity(rows, gap) for gap in (1, 10, 20, 30)]
    assert by_gap == sorted(by_gap, reverse=True) and by_gap[0] - by_gap[-1] > 0.25
    assert abs(_neighbour_similarity(rows, 50)) < 0.15
    assert abs(rows.std().item() - random_rows.std().item()) < 0.002
    # Each token keeps its own direction: no two rows coincide.
    assert torch.cdist(rows, rows).add(torch.eye(101)).min() > 0.05


def test_coordinate_rows_of_both_matrices_change_and_nothing_else():
    model, tokenizer = _shapes_model_and_tokenizer()
    ids = torch.tensor([tokenizer.sp.piece_to_id(piece) for piece in COORDINATES])
    matrices = (
        model.language_model.get_input_embeddings().weight,
        model.language_model.get_output_embeddings().weight,
    )
    before = [matrix.detach().clone() for matrix in matrices]
    assert order_coordinate_tokens(model, tokenizer, seed=3) == 101
    others = torch.ones(before[0].shape[0], dtype=torch.bool)
    others[ids] = False
    for old, matrix in zip(before, matrices, strict=True):
        assert torch.equal(old[others], matrix[others])
        assert not torch.equal(old[ids], matrix[ids])
        assert _neighbour_similarity(matrix[ids].detach(), 1) > 0.4


def test_same_seed_same_start():
    first, tokenizer = _shapes_model_and_tokenizer()
    second, _ = _shapes_model_and_tokenizer()
    order_coordinate_tokens(first, tokenizer, seed=1)
    order_coordinate_tokens(second, tokenizer, seed=1)
    assert torch.equal(first.language_model.lm_head.weight, second.language_model.lm_head.weight)


def test_tokenizer_without_coordinate_pieces_changes_nothing(tokenizer, tiny_model):
    before = tiny_model.language_model.get_input_embeddings().weight.detach().clone()
    assert order_coordinate_tokens(tiny_model, tokenizer) == 0
    assert torch.equal(before, tiny_model.language_model.get_input_embeddings().weight)
