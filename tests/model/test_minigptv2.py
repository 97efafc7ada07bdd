import itertools
import json

import pytest
import torch
from PIL import Image

from minigptv2.cli import main
from minigptv2.config import Trainable
from minigptv2.errors import ImageSlotMismatchError
from minigptv2.model import MiniGPTv2
from minigptv2.processor import Processor
from minigptv2.prompts import Turn


@pytest.fixture
def processor(tokenizer, tiny_config):
    return Processor(tokenizer, tiny_config)


def shapes_image(seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(60, 80, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


def training_batch(processor):
    return processor.training_batch(
        [
            [Turn("[refer] where is the red square ?", "{<10><20><30><40>}")],
            [Turn("[vqa] how many shapes are there?", "two"), Turn("[vqa] colour?", "blue")],
            [Turn("say yes", "yes")],
        ],
        [shapes_image(0), shapes_image(1), None],
    )


def test_only_projector_and_lora_receive_gradients(tiny_model, processor):
    tiny_model.train()
    loss = tiny_model(**training_batch(processor)).loss
    loss.backward()
    groups = tiny_model.parameter_groups()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["projector"])
    # LoRA B starts at zero, so A gets no gradient on the first step; B must.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["lora"])
    assert all(p.grad is None for p in groups["vision"] + groups["language_model"])
    assert not tiny_model.vision.training  # frozen encoder stays in eval mode


def test_trainable_flags_switch_components(tiny_model):
    tiny_model.set_trainable(
        Trainable(vision=True, projector=True, lora=False, language_model=True)
    )
    groups = tiny_model.parameter_groups()
    assert all(p.requires_grad for p in groups["vision"] + groups["language_model"])
    assert not any(p.requires_grad for p in groups["lora"])
    tiny_model.train()
    assert tiny_model.vision.training


def test_loss_is_finite_and_decreases_on_a_repeated_batch(tiny_model, processor):
    batch = training_batch(processor)
    tiny_model.train()
    parameters = [p for p in tiny_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=2e-2)
    losses = []
    for _ in range(20):
        loss = tiny_model(**batch).loss
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Only the projector and a rank-8 LoRA learn here, so the drop is steady rather than steep.
    assert losses[-1] < losses[0] - 0.4, losses
    assert sum(after < before for before, after in itertools.pairwise(losses)) >= 17, losses


def test_loss_is_the_token_mean_over_answer_positions(tiny_model, processor):
    batch = training_batch(processor)
    tiny_model.eval()
    with torch.no_grad():
        loss = tiny_model(**batch).loss
        logits = tiny_model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    # Next-token prediction: the logit at t scores the label at t + 1.
    targets = batch["labels"][:, 1:]
    kept = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][kept].float(), targets[kept])
    torch.testing.assert_close(loss, expected)
    answers = ["{<10><20><30><40>}</s>", "two</s>", "blue</s>", "yes</s>"]
    assert kept.sum() == sum(len(processor.tokenizer.encode(answer)) for answer in answers)


def test_image_slot_mismatch_is_a_specific_error(tiny_model, processor):
    batch = processor.generation_batch(["[vqa] what?"], [shapes_image(0)])
    with pytest.raises(ImageSlotMismatchError, match="16 per image"):
        tiny_model.generate(batch["input_ids"], batch["attention_mask"], None)
    two_images = torch.cat([batch["pixel_values"]] * 2)
    with pytest.raises(ImageSlotMismatchError, match="2 image"):
        tiny_model(batch["input_ids"], batch["attention_mask"], pixel_values=two_images)


def test_batched_greedy_generation_equals_one_by_one(tiny_model, processor):
    tiny_model.eval()
    prompts = ["[vqa] how many shapes?", "[refer] the small blue circle on the left", "hello"]
    images = [shapes_image(3), shapes_image(4), None]
    batch = processor.generation_batch(prompts, images)
    batched = tiny_model.generate(**batch, max_new_tokens=8, eos_token_id=-1)
    assert batched.shape == (3, 8)
    for row, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
        single = processor.generation_batch([prompt], [image])
        alone = tiny_model.generate(**single, max_new_tokens=8, eos_token_id=-1)
        assert alone[0].tolist() == batched[row].tolist(), prompt


def test_sampling_generation_runs(tiny_model, processor):
    tiny_model.eval()
    batch = processor.generation_batch(
        ["[caption] Briefly describe this image."], [shapes_image(5)]
    )
    torch.manual_seed(0)
    ids = tiny_model.generate(**batch, max_new_tokens=5, do_sample=True, temperature=0.6, top_p=0.9)
    assert ids.shape[0] == 1 and 1 <= ids.shape[1] <= 5
    assert isinstance(processor.decode(ids[0]), str)


def test_full_size_model_on_meta_device_has_the_true_counts(capsys):
    assert main(["info", "--preset", "minigptv2-7b", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vision"] == {"params": 986_975_872 + 2 * 1408, "trainable": False}
    assert summary["projector"] == {"params": 5632 * 4096 + 4096, "trainable": True}
    assert summary["language_model"] == {"params": 6_738_415_616, "trainable": False}
    assert summary["lora"] == {"params": 32 * 2 * (64 * 4096 + 4096 * 64), "trainable": True}


def test_info_prints_the_total_parameter_count(capsys):
    assert main(["info", "--preset", "shapes"]) == 0
    # The shipped model's 5.6M (README): vision + projector + language model, all trained.
    assert "total                  5,573,312  (5,573,312 trainable)" in capsys.readouterr().out
    assert main(["info", "--preset", "minigptv2-7b"]) == 0
    total = 986_975_872 + 2 * 1408 + 5632 * 4096 + 4096 + 6_738_415_616 + 32 * 2 * 2 * 64 * 4096
    trainable = 5632 * 4096 + 4096 + 32 * 2 * 2 * 64 * 4096
    assert f"total{total:>27,}  ({trainable:,} trainable)" in capsys.readouterr().out


def test_bf16_keeps_trainable_parts_in_fp32(tiny_config):
    model = MiniGPTv2(tiny_config.replace(dtype="bfloat16"))
    groups = model.parameter_groups()
    assert all(p.dtype == torch.float32 for p in groups["projector"] + groups["lora"])
    assert all(p.dtype == torch.bfloat16 for p in groups["language_model"])
    assert model.vision.patch_embed.proj.weight.dtype == torch.bfloat16


def test_set_image_size_gives_more_image_tokens_and_keeps_what_trains(tiny_config):
    model = MiniGPTv2(tiny_config)  # 112 px: 8x8 patches -> 16 image tokens
    frozen = [p.requires_grad for p in model.vision.parameters()]
    model.set_image_size(168)
    assert model.config.vision.image_size == 168 and model.config.num_image_tokens == 36
    assert [p.requires_grad for p in model.vision.parameters()] == frozen
    with torch.no_grad():
        tokens = model.encode_images(torch.zeros(2, 3, 168, 168))
    assert tokens.shape == (2, 36, tiny_config.language.hidden_size)


def test_set_image_size_whose_patches_do_not_merge_evenly_changes_nothing(tiny_config):
    model = MiniGPTv2(tiny_config)
    with pytest.raises(ValueError, match=r"81 patches cannot be merged 4 at a time"):
        model.set_image_size(126)  # 9x9 patches
    assert model.config == tiny_config and model.vision.config.image_size == 112
    assert model.vision.pos_embed.shape[1] == 1 + 64
