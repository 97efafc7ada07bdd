"""Scoring fixed answers by the model's loss instead of generating (IconVQA, Hateful Memes AUROC).

For each (image, prompt) and each candidate answer, the conversation ``prompt -> candidate</s>``
is run teacher-forced and the candidate's mean token cross-entropy is its loss; the lowest loss
wins. The reference (``multi_select``, spec §6.3 and §10.9) divided each candidate's summed loss
by the padded length of its batch, so batch composition changed the ranking; here each candidate
is averaged over its own answer tokens (``</s>`` included), which no batch can change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from minigptv2.constants import IGNORE_INDEX
from minigptv2.prompts import Turn

if TYPE_CHECKING:
    from minigptv2.assistant import Assistant
    from minigptv2.images import ImageSource


@torch.no_grad()
def candidate_losses(
    assistant: Assistant,
    images: Sequence[ImageSource],
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
) -> list[list[float]]:
    """Per item, the mean answer-token loss of each of its candidates (lower = more likely)."""
    conversations, pictures, owners = [], [], []
    for index, (image, prompt, options) in enumerate(zip(images, prompts, candidates, strict=True)):
        for option in options:
            conversations.append([Turn(prompt, option)])
            pictures.append(image)
            owners.append(index)
    token_loss, answer, _ = _answer_tokens(assistant, conversations, pictures)
    counts = answer.sum(dim=1).clamp(min=1)
    per_candidate = (token_loss.sum(dim=1) / counts).tolist()
    losses: list[list[float]] = [[] for _ in prompts]
    for owner, loss in zip(owners, per_candidate, strict=True):
        losses[owner].append(loss)
    return losses


@torch.no_grad()
def answer_log_likelihoods(
    assistant: Assistant,
    images: Sequence[ImageSource | None],
    prompts: Sequence[str],
    answers: Sequence[str],
) -> list[tuple[float, bool]]:
    """Per (image, prompt, answer): the summed log-probability of the answer's tokens, ``</s>``
    included (the answer is the whole reply), and whether greedy decoding would produce them."""
    conversations = [
        [Turn(prompt, answer)] for prompt, answer in zip(prompts, answers, strict=True)
    ]
    token_loss, answer, greedy = _answer_tokens(assistant, conversations, list(images))
    log_likelihood = (-token_loss.sum(dim=1)).tolist()
    all_greedy = (greedy | ~answer).all(dim=1).tolist()
    return list(zip(log_likelihood, all_greedy, strict=True))


def _answer_tokens(
    assistant: Assistant, conversations: list[list[Turn]], images: list[Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced answers: each (N, T - 1) position's token loss (0 off the answer), which
    positions are answer tokens, and where the most likely token is the answer's."""
    batch = assistant.processor.training_batch(conversations, images, style=assistant.style)
    model = assistant.model
    batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    labels = batch.pop("labels")
    logits = model(**batch).logits.float()  # (N, T, V)
    # Position t predicts token t + 1.
    shifted = labels[:, 1:]  # (N, T - 1)
    token_loss = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (N, T - 1)
    greedy = logits[:, :-1].argmax(dim=-1) == shifted  # (N, T - 1)
    return token_loss, shifted != IGNORE_INDEX, greedy
