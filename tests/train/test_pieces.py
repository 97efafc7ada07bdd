import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from minigptv2.data.shapes import make_sample
from minigptv2.processor import IGNORE_INDEX, Processor
from minigptv2.train import loop
from minigptv2.train.config import TrainConfig
from minigptv2.train.data import Collator, split_by_length
from minigptv2.train.distributed import World

TASKS = ("refer", "vqa", "grounding", "identify", "detection", "conversation", "caption")


@pytest.fixture
def samples():
    # Answers from 1 token (VQA) to dozens (grounding, conversation): lengths that differ.
    return [make_sample(n, "train", task=TASKS[n % len(TASKS)]) for n in range(10)]


def test_the_model_averages_its_loss_over_samples_on_request(tokenizer, tiny_model, samples):
    (batch,) = Collator(Processor(tokenizer, tiny_model.config))(samples)
    # Multi-task conversations have no single task; they are logged as "chat".
    expected = [TASKS[n % len(TASKS)] for n in range(len(samples))]
    assert batch.pop("tasks") == [{"conversation": "chat"}.get(task, task) for task in expected]
    tiny_model.eval()
    with torch.no_grad():
        output = tiny_model(**batch)
        tokens = output.loss
        by_sample = tiny_model(**batch, loss_average="samples").loss
        logits = tiny_model(
            batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"]
        ).logits
    per_sample, sums = [], []
    for row in range(len(samples)):
        labels = batch["labels"][row, 1:]
        keep = labels != IGNORE_INDEX
        per_sample.append(F.cross_entropy(logits[row, :-1][keep], labels[keep]).item())
        sums.append(F.cross_entropy(logits[row, :-1][keep], labels[keep], reduction="sum"))
    assert by_sample.item() == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-5)
    torch.testing.assert_close(output.row_losses, torch.stack(sums), rtol=1e-5, atol=1e-5)
    assert tokens.item() != by_sample.item()


class GradientRecorder(torch.optim.Optimizer):
    """Keeps the gradients a step is given (the loop clears them right after ``step``)."""

    def __init__(self, parameters) -> None:
        super().__init__(parameters, {})
        self.gradients: list[torch.Tensor] = []

    def step(self, closure=None) -> None:
        self.gradients = [p.grad.clone() for group in self.param_groups for p in group["params"]]


def _step_gradients(tokenizer, config, samples, pieces: int, average: str):
    """The loss and the gradients of one optimisation step through the loop's own code, with
    two micro-batches of ``samples``, each run in ``pieces`` forward passes."""
    from minigptv2.model import MiniGPTv2

    torch.manual_seed(0)
    model = MiniGPTv2(config).eval()  # no dropout: the passes must be comparable
    recorder = GradientRecorder([p for p in model.parameters() if p.requires_grad])
    # fp32 pinned: "auto" is bf16 autocast on CPUs with AVX512-BF16, whose rounding (not the
    # pieces) then decides the comparison; that is what failed on AMD EPYC machines.
    train = TrainConfig(
        model="tiny", pieces=pieces, loss_average=average, grad_accum=2, precision="fp32"
    )
    collate = Collator(Processor(tokenizer, config), pieces=pieces)
    batches = [collate(samples[:6]), collate(samples[6:])]
    loss = loop._optimisation_step(model, model, recorder, iter(batches), train, World())
    positions = sum(piece["input_ids"].numel() for batch in batches for piece in batch)
    return loss, recorder.gradients, positions


@pytest.mark.parametrize("average", ["tokens", "samples"])
def test_pieces_give_the_gradient_of_the_whole_micro_batch(
    tokenizer, tiny_config, samples, average
):
    """One optimisation step with the micro-batch in 1 or 3 forward passes: the same loss and the
    same gradients, up to the rounding float32 can differ by."""
    loss_one, one_pass, positions = _step_gradients(tokenizer, tiny_config, samples, 1, average)
    loss_three, three_passes, _ = _step_gradients(tokenizer, tiny_config, samples, 3, average)
    # Each gradient entry is a float32 sum over the step's token positions (a different order and
    # grouping with pieces), off by at most n·eps·sum|terms| for n terms (Higham's bound, with
    # eps for the rounding of each product too); the tensor's largest entry stands in for the
    # size of the terms. Here that allows ~2e-4 of the largest entry (1e-6 is measured on AVX2);
    # a wrong piece weighting moves gradients by a sizeable fraction of themselves.
    relative = positions * torch.finfo(torch.float32).eps
    assert loss_three == pytest.approx(loss_one, rel=relative)
    assert len(one_pass) == len(three_passes) > 0
    for one, three in zip(one_pass, three_passes, strict=True):
        torch.testing.assert_close(three, one, rtol=0, atol=relative * float(one.abs().max()))


def _padded(lengths, ranges):
    return sum((end - start) * lengths[end - 1] for start, end in ranges)


def test_split_by_length_finds_the_least_padding():
    rng = random.Random(0)
    for _ in range(50):
        lengths = sorted(rng.randint(5, 120) for _ in range(rng.randint(1, 9)))
        pieces = rng.randint(1, 4)
        ranges = split_by_length(lengths, pieces)
        assert len(ranges) == min(pieces, len(lengths))
        assert ranges[0][0] == 0 and ranges[-1][1] == len(lengths)
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(ranges))
        # Brute force over every way to cut the sorted list into that many ranges.
        best = min(
            _padded(lengths, list(zip((0, *cuts), (*cuts, len(lengths)), strict=True)))
            for cuts in itertools.combinations(range(1, len(lengths)), len(ranges) - 1)
        )
        assert _padded(lengths, ranges) == best


def test_collator_pieces_hold_every_sample_once_with_less_padding(tokenizer, tiny_config, samples):
    processor = Processor(tokenizer, tiny_config)
    (whole,) = Collator(processor)(samples)
    pieces = Collator(processor, pieces=3)(samples)
    assert len(pieces) == 3
    assert sum(piece["input_ids"].shape[0] for piece in pieces) == len(samples)
    assert sum(piece["pixel_values"].shape[0] for piece in pieces) == len(samples)
    assert sum(piece["input_ids"].numel() for piece in pieces) < whole["input_ids"].numel()

    def rows(batch):
        return sorted(
            tuple(ids[mask.bool()].tolist())
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        )

    assert sorted(r for piece in pieces for r in rows(piece)) == rows(whole)
