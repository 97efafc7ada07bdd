"""Scoring fixed answers by the model's loss instead of generating (IconVQA, Hateful Memes AUROC).

For each (image, prompt) and each candidate answer, the conversation ``prompt -> candidate</s>``
is run teacher-forced and the candidate's mean token cross-entropy is its loss; the lowest loss
wins. The reference (``multi_select``, spec §6.3 and §10.9) divided each candidate's summed loss
by the padded length of its batch, so batch composition changed the ranking; here each candidate
is averaged over its own answer tokens (``</s>`` included), which no batch can change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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
    batch = assistant.processor.training_batch(conversations, pictures, style=assistant.style)
    model = assistant.model
    batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    labels = batch.pop("labels")
    logits = model(**batch).logits.float()  # (N, T, V)
    # Position t predicts token t + 1.
    shifted = labels[:, 1:]  # (N, T - 1)
    token_loss = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (N, T - 1)
    counts = (shifted != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    per_candidate = (token_loss.sum(dim=1) / counts).tolist()
    losses: list[list[float]] = [[] for _ in prompts]
    for owner, loss in zip(owners, per_candidate, strict=True):
        losses[owner].append(loss)
    return losses
