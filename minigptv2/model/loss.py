"""The training loss: next-token cross-entropy on answer tokens, averaged one of two ways.

``"tokens"`` is the reference's (and ``transformers``'): the mean over every answer token of the
batch, so a 30-token grounded caption weighs 30 times a one-word VQA answer. ``"samples"`` first
averages each sample's answer tokens, then the samples, so every sample weighs the same — on
Shapes the short-answer tasks (VQA, identify) otherwise get ~2-5% of the gradient. A packed row
(``processor.encode_packed``) holds several samples, one per segment, and each counts once.

A batch split into several forward passes ("pieces") has the loss of the whole when each piece's
loss is weighted by ``answer_count(piece) / answer_count(whole)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minigptv2.constants import IGNORE_INDEX

LOSS_AVERAGES = ("tokens", "samples")


def answer_loss(
    logits: torch.Tensor, targets: torch.Tensor, samples: torch.Tensor, average: str
) -> torch.Tensor:
    """Mean cross-entropy of K answer tokens: ``logits`` (K, vocab), ``targets`` (K,), and the
    sample each token belongs to, ``samples`` (K,) (``sample_ids``)."""
    return average_losses(token_losses(logits, targets), samples, average)


def sample_ids(labels: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T - 1): which sample the label each position predicts belongs to. A row is one sample,
    unless it is packed: then each of its segments (``segment_ids``, -1 for padding) is one."""
    rows = torch.arange(len(labels), device=labels.device)[:, None].expand(-1, labels.shape[1] - 1)
    if segment_ids is None:
        return rows
    return rows * (int(segment_ids.max()) + 2) + segment_ids[:, 1:] + 1


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K,) cross-entropy of each answer token, computed in fp32."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def average_losses(losses: torch.Tensor, samples: torch.Tensor, average: str) -> torch.Tensor:
    """The training loss from per-token ``losses`` (K,) of the samples ``samples`` (K,)."""
    if average not in LOSS_AVERAGES:
        raise ValueError(f"loss average {average!r} is not one of {LOSS_AVERAGES}")
    if not len(losses):
        # Answers cut away entirely (max_txt_len): nothing to learn, rather than a 0/0 NaN.
        return losses.sum() * 0.0
    if average == "tokens":
        return losses.mean()
    _, sample_of, per_sample = torch.unique(samples, return_inverse=True, return_counts=True)
    # Token t of sample s weighs 1 / (tokens of s); the samples then count once each.
    return (losses / per_sample[sample_of]).sum() / len(per_sample)


def answer_count(
    labels: torch.Tensor, average: str, segment_ids: torch.Tensor | None = None
) -> int:
    """What ``average`` divides by in a (B, T) label batch: answer tokens, or samples with any."""
    supervised = labels[:, 1:] != IGNORE_INDEX
    if average == "tokens":
        return int(supervised.sum())
    return len(torch.unique(sample_ids(labels, segment_ids)[supervised]))
