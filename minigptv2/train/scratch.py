"""How a model trained from scratch starts: ordered coordinate tokens.

The box coordinates ``<0>`` ... ``<100>`` are 101 single tokens. Drawn independently at random,
their embeddings say nothing about order, and a from-scratch model first spends thousands of
steps answering every question with the same few "prototype" boxes. Starting each coordinate's
input and output row as a smooth function of its value, half of it shared with its neighbours,
gives "<41>" a head start towards "<40>" and "<42>" while leaving every token its own direction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minigptv2.model.minigptv2 import MiniGPTv2
from minigptv2.tokenizer import Tokenizer

COORDINATES = tuple(f"<{value}>" for value in range(101))
# Frequencies (half-periods over the 0-100 range) of the shared, smooth part of each row.
SMOOTH_FREQUENCIES = 8


def smooth_rows(random_rows: Tensor, generator: torch.Generator) -> Tensor:
    """``random_rows`` (one per coordinate, in value order) mixed 50/50 with a smooth curve.

    The curve is a sum of cosines and sines of the value with random vector coefficients whose
    scale falls as 1/frequency, so nearby values get nearby rows. The result keeps the rows'
    overall standard deviation.
    """
    count, width = random_rows.shape
    value = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
    frequency = torch.arange(1, SMOOTH_FREQUENCIES + 1, dtype=torch.float64)
    angles = math.pi * value[:, None] * frequency[None, :]
    basis = torch.cat((angles.cos(), angles.sin()), dim=1) / frequency.repeat(2)
    weights = torch.randn(basis.shape[1], width, generator=generator, dtype=torch.float64)
    curve = basis @ weights
    curve = curve - curve.mean()
    std = random_rows.double().std()
    curve = curve * (std / curve.std())
    mixed = math.sqrt(0.5) * random_rows.double() + math.sqrt(0.5) * curve
    return mixed.to(random_rows.dtype)


@torch.no_grad()
def order_coordinate_tokens(model: MiniGPTv2, tokenizer: Tokenizer, seed: int = 0) -> int:
    """Give the coordinate tokens' embedding and output rows a smooth start; returns how many.

    Only for a freshly initialised model whose tokenizer holds every coordinate as one piece
    (the Shapes tokenizer does); otherwise nothing changes and 0 is returned.
    """
    ids = [tokenizer.sp.piece_to_id(piece) for piece in COORDINATES]
    if tokenizer.unk_id in ids:
        return 0
    generator = torch.Generator().manual_seed(seed)
    index = torch.tensor(ids)
    for matrix in (
        model.language_model.get_input_embeddings().weight,
        model.language_model.get_output_embeddings().weight,
    ):
        matrix[index] = smooth_rows(matrix[index], generator)
    return len(ids)
