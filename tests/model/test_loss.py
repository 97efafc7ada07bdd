import pytest
import torch
import torch.nn.functional as F

from minigptv2.constants import IGNORE_INDEX
from minigptv2.model.loss import answer_count, answer_loss, sample_ids


def _answers(labels):
    """The (targets, rows) of the answer tokens of a (B, T) label batch, as the model picks them."""
    targets = labels[:, 1:]
    kept = targets != IGNORE_INDEX
    return targets[kept], kept.nonzero()[:, 0]


LABELS = torch.tensor(
    [
        [IGNORE_INDEX, IGNORE_INDEX, 3, 4, 1, 2, 0],  # 5 answer tokens
        [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 7, IGNORE_INDEX],
        [IGNORE_INDEX] * 7,  # its answer was cut away
    ]
)


def test_token_average_is_the_mean_over_answer_tokens():
    targets, rows = _answers(LABELS)
    logits = torch.randn(len(targets), 9)
    expected = F.cross_entropy(logits, targets)
    torch.testing.assert_close(answer_loss(logits, targets, rows, "tokens"), expected)
    assert answer_count(LABELS, "tokens") == 6


def test_sample_average_weighs_each_sample_once():
    targets, rows = _answers(LABELS)
    logits = torch.randn(len(targets), 9)
    losses = F.cross_entropy(logits, targets, reduction="none")
    expected = (losses[:5].mean() + losses[5]) / 2  # two rows with answers
    torch.testing.assert_close(answer_loss(logits, targets, rows, "samples"), expected)
    assert answer_count(LABELS, "samples") == 2
    assert not torch.allclose(answer_loss(logits, targets, rows, "tokens"), expected)


def test_no_answer_tokens_is_a_zero_loss_that_still_backpropagates():
    logits = torch.randn(0, 9, requires_grad=True)
    loss = answer_loss(
        logits, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), "samples"
    )
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_an_unknown_average_is_refused():
    with pytest.raises(ValueError, match="tokens"):
        answer_loss(
            torch.randn(1, 3),
            torch.zeros(1, dtype=torch.long),
            torch.zeros(1, dtype=torch.long),
            "mean",
        )


def test_each_question_of_a_packed_row_is_a_sample():
    # Row 0 packs two questions (segments 1 and 2 after the shared start, segment 0); row 1 is
    # an ordinary row (all segment 0); -1 is padding.
    labels = torch.tensor(
        [
            [IGNORE_INDEX, IGNORE_INDEX, 5, 6, IGNORE_INDEX, 7],
            [IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX, IGNORE_INDEX],
        ]
    )
    segments = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, -1, -1]])
    kept = labels[:, 1:] != IGNORE_INDEX
    samples = sample_ids(labels, segments)[kept]
    logits = torch.randn(int(kept.sum()), 9)
    losses = F.cross_entropy(logits, labels[:, 1:][kept], reduction="none")
    expected = (losses[:2].mean() + losses[2] + losses[3:].mean()) / 3
    torch.testing.assert_close(
        answer_loss(logits, labels[:, 1:][kept], samples, "samples"), expected
    )
    assert answer_count(labels, "samples", segments) == 3
    assert answer_count(labels, "samples") == 2  # without segments, rows are the samples
