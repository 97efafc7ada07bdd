"""The training loss: next-token cross-entropy on answer tokens, averaged one of two ways.

``"tokens"`` is the reference's (and ``transformers``'): the mean over every answer token of the
batch, so a 30-token grounded caption weighs 30 times a one-word VQA answer. ``"samples"`` first
averages each sample's answer tokens, then the samples, so every sample weighs the same — on
Shapes the short-answer tasks (VQA, identify) otherwise get ~2% of the gradient.

A batch split into several forward passes ("pieces") has the loss of the whole when each piece's
loss is weighted by ``answer_count(piece) / answer_count(whole)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minigptv2.constants import IGNORE_INDEX

LOSS_AVERAGES = ("tokens", "samples")


def answer_loss(
    logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, average: str
) -> torch.Tensor:
    """Mean cross-entropy of K answer tokens: ``logits`` (K, vocab), ``targets`` (K,), and the
    batch row each token belongs to, ``rows`` (K,)."""
    return average_losses(token_losses(logits, targets), rows, average)


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K,) cross-entropy of each answer token, computed in fp32."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def average_losses(losses: torch.Tensor, rows: torch.Tensor, average: str) -> torch.Tensor:
    """The training loss from per-token ``losses`` (K,) of batch rows ``rows`` (K,)."""
    if average not in LOSS_AVERAGES:
        raise ValueError(f"loss average {average!r} is not one of {LOSS_AVERAGES}")
    if not len(losses):
        # Answers cut away entirely (max_txt_len): nothing to learn, rather than a 0/0 NaN.
        return losses.sum() * 0.0
    if average == "tokens":
        return losses.mean()
    _, row_of, per_row = torch.unique(rows, return_inverse=True, return_counts=True)
    # Token t of row r weighs 1 / (tokens of r); the rows then count once each.
    return (losses / per_row[row_of]).sum() / len(per_row)


def answer_count(labels: torch.Tensor, average: str) -> int:
    """What ``average`` divides by in a (B, T) label batch: answer tokens, or rows with any."""
    supervised = labels[:, 1:] != IGNORE_INDEX
    return int(supervised.sum() if average == "tokens" else supervised.any(dim=1).sum())
