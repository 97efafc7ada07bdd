"""Packed rows: several single-turn questions about one image in one sequence are trained exactly
as the separate single-turn sequences they stand for."""

import pytest
import torch

from minigptv2.constants import IMAGE_TOKEN_ID
from minigptv2.data.sample import Sample
from minigptv2.data.shapes import CONVERSATION, make_pack
from minigptv2.errors import ConfigError, PromptError
from minigptv2.model.loss import answer_count
from minigptv2.processor import IGNORE_INDEX, Processor
from minigptv2.prompts import Turn
from minigptv2.train.config import DataConfig
from minigptv2.train.data import Collator, build_mixture

MIX = {"refer": 1.0, "vqa": 1.0, "grounding": 1.0, "identify": 1.0, "detection": 1.0}


def _pack(index: int = 0, size: int = 4) -> Sample:
    return make_pack(index, "train", MIX, size)


def _separate(pack: Sample) -> list[Sample]:
    return [Sample(pack.image, (turn,), None, "shapes") for turn in pack.turns]


def test_a_pack_holds_its_questions_about_one_scene():
    pack = _pack(3, size=5)
    assert pack.packed and len(pack.turns) == 5
    assert pack.targets["kind"] == "packed" and len(pack.targets["tasks"]) == 5
    # Deterministic by index; another index is another scene.
    assert _pack(3, size=5).turns == pack.turns
    assert _pack(4, size=5).targets["objects"] != pack.targets["objects"]


def test_the_packed_row_holds_the_image_once_and_every_answer(tokenizer, tiny_config):
    processor = Processor(tokenizer, tiny_config)
    pack = _pack()
    row = processor.encode_packed(pack.turns)
    alone = [processor.encode_packed([turn]) for turn in pack.turns]
    assert row.num_images == 1
    assert row.input_ids.count(IMAGE_TOKEN_ID) == tiny_config.num_image_tokens
    supervised = [label for label in row.labels if label != IGNORE_INDEX]
    assert supervised == [t for one in alone for t in one.labels if t != IGNORE_INDEX]
    assert len(row) < sum(len(one) for one in alone)
    # Positions restart after the shared start: the longest branch decides the last position.
    assert row.last_position == max(len(one) for one in alone) - 1


@pytest.mark.parametrize("average", ["tokens", "samples"])
def test_packed_rows_give_the_losses_of_the_separate_questions(tokenizer, tiny_model, average):
    collate = Collator(Processor(tokenizer, tiny_model.config))
    packs = [_pack(0), _pack(1, size=3)]
    (packed,) = collate(packs)
    (separate,) = collate([sample for pack in packs for sample in _separate(pack)])
    packed.pop("tasks"), separate.pop("tasks")
    assert packed["input_ids"].numel() < separate["input_ids"].numel()
    tiny_model.eval()
    with torch.no_grad():
        one = tiny_model(**packed, loss_average=average)
        many = tiny_model(**separate, loss_average=average)
    # Same answer tokens, same per-token losses: the sums per pack equal the separate rows' sums.
    assert one.row_losses.sum().item() == pytest.approx(many.row_losses.sum().item(), rel=1e-5)
    assert one.row_losses[0].item() == pytest.approx(many.row_losses[:4].sum().item(), rel=1e-5)
    # "samples" counts each packed question once, as it counts each separate row.
    assert one.loss.item() == pytest.approx(many.loss.item(), rel=1e-5)
    counts = [answer_count(b["labels"], average, b.get("segment_ids")) for b in (packed, separate)]
    assert counts[0] == counts[1]


def test_a_wrong_mask_would_change_the_losses(tokenizer, tiny_model):
    """The equality above is not vacuous: letting branches see each other changes the loss."""
    (packed,) = Collator(Processor(tokenizer, tiny_model.config))([_pack(0)])
    packed.pop("tasks")
    tiny_model.eval()
    with torch.no_grad():
        right = tiny_model(**packed).loss
        leaky = tiny_model(**{**packed, "segment_ids": packed["segment_ids"].clamp(max=0)}).loss
    assert abs(right.item() - leaky.item()) > 1e-4


def test_packed_and_ordinary_rows_mix_in_one_batch(tokenizer, tiny_model):
    collate = Collator(Processor(tokenizer, tiny_model.config))
    pack = _pack(2)
    ordinary = Sample(pack.image, (pack.turns[0],), None, "shapes")
    (mixed,) = collate([pack, ordinary])
    assert mixed.pop("tasks") == ["packed", "chat"]
    (alone,) = collate([ordinary])
    alone.pop("tasks")
    tiny_model.eval()
    with torch.no_grad():
        both = tiny_model(**mixed).row_losses
        single = tiny_model(**alone).row_losses
    assert both[1].item() == pytest.approx(single[0].item(), rel=1e-5)


def test_the_shapes_source_packs_on_request():
    mixture = build_mixture(DataConfig(mix={**MIX, CONVERSATION: 1.0}, pack=4))
    assert set(mixture.names) == {"packed", CONVERSATION}
    kinds = {mixture[(mixture.choose(n), n)].packed for n in range(20)}
    assert kinds == {True, False}


def test_packing_is_refused_where_it_does_not_apply():
    with pytest.raises(ConfigError, match=r"data\.pack=4 packs Shapes scenes only"):
        DataConfig(source="custom", path="x.jsonl", pack=4)
    with pytest.raises(ConfigError, match="at least 1"):
        DataConfig(pack=0)
    with pytest.raises(PromptError, match="needs an image"):
        Sample(None, (Turn("hi", "hello"),), None, "x", packed=True)


def test_the_shapes_source_draws_scenes_of_its_world():
    square = build_mixture(DataConfig(mix=MIX, pack=2))
    varied = build_mixture(DataConfig(mix=MIX, pack=2, world="varied"))
    sizes = {varied[(varied.choose(n), n)].image.size for n in range(30)}
    assert {square[(square.choose(n), n)].image.size for n in range(30)} == {(112, 112)}
    assert (112, 112) in sizes and any(width != height for width, height in sizes)
    with pytest.raises(ConfigError, match="unknown Shapes world"):
        DataConfig(world="round")
