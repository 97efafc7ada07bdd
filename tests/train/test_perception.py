import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from minigptv2.cli import main
from minigptv2.data.shapes import PALETTE, Scene, ShapeObject, object_map
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.train import loop
from minigptv2.train.config import TrainConfig
from minigptv2.train.distributed import World
from minigptv2.train.optim import OptimConfig
from minigptv2.train.perception import (
    FAR,
    IGNORE,
    VISION_FILE,
    PatchTargets,
    PerceptionConfig,
    far_colour,
    losses,
    make_batch,
    patch_targets,
    pretrain_vision,
)

CONFIGS = Path(__file__).parents[2] / "configs" / "shapes"


def scene(*objects: ShapeObject, width: int = 112, height: int = 112) -> Scene:
    return Scene(width=width, height=height, objects=objects, background=(200, 200, 200))


def test_a_patch_is_labelled_with_the_object_covering_it():
    # A red square over patches (row 1-2, column 2-3) of the 8x8 grid, a blue circle far away.
    square = ShapeObject("square", "red", (28, 14, 56, 42))
    circle = ShapeObject("circle", "blue", (84, 84, 112, 112))
    targets = patch_targets(scene(square, circle), image_size=112, patch_size=14)
    shape = targets.shape.view(8, 8)
    assert shape[1:3, 2:4].eq(2).all()  # 1 + SHAPES.index("square")
    assert targets.color.view(8, 8)[1:3, 2:4].eq(1).all()  # 1 + COLORS.index("red")
    assert shape[6:8, 6:8].eq(1).all() and targets.color.view(8, 8)[6, 6] == 3  # blue circle
    assert int((shape > 0).sum()) == 8
    torch.testing.assert_close(
        targets.box.view(8, 8, 4)[1, 2], torch.tensor([0.25, 0.125, 0.5, 0.375])
    )
    assert not targets.unseen.any()
    assert targets.owner.view(8, 8)[1, 2] == 0 and targets.owner.view(8, 8)[7, 7] == 1
    assert targets.owner.view(8, 8)[0, 0] == -1


def test_a_wide_scene_is_labelled_as_the_model_sees_it_squashed():
    # 224 x 112: the square's left half of the image becomes the left half of the 8x8 grid.
    left = ShapeObject("triangle", "blue", (0, 0, 112, 112))  # a held-out pair
    targets = patch_targets(scene(left, width=224), image_size=112, patch_size=14)
    covered = targets.shape.view(8, 8) > 0
    assert covered[:, :4].sum() > 10 and not covered[:, 4:].any()
    assert targets.unseen.view(8, 8)[covered].all()
    torch.testing.assert_close(
        targets.box[targets.shape > 0][0], torch.tensor([0.0, 0.0, 0.5, 1.0])
    )


def test_the_top_layer_owns_the_pixels_it_covers():
    under = ShapeObject("square", "green", (10, 10, 60, 60), layer=0)
    over = ShapeObject("square", "yellow", (30, 30, 80, 80), layer=1)
    owners = object_map(scene(under, over))
    assert owners[40, 40] == 2 and owners[15, 15] == 1 and owners[100, 100] == 0


def test_shape_is_taught_on_recoloured_images_and_colour_on_palette_ones():
    objects = (ShapeObject("circle", "red", (20, 20, 60, 60)),)
    batch = [scene(*objects), scene(*objects)]
    pixels, targets = make_batch(batch, [False, True], 112, 14, random.Random(0))
    assert pixels.shape == (2, 3, 112, 112)
    on_object = patch_targets(batch[0], 112, 14).shape > 0
    assert (targets.color[1] == IGNORE).all() and (targets.color[0][on_object] == 1).all()
    assert (targets.shape[0][on_object] == IGNORE).all() and (
        targets.shape[1][on_object] == 1
    ).all()
    assert (targets.shape[0][~on_object] == 0).all()
    # The recoloured circle is in no palette colour: its centre pixel is far from every ink.
    centre = pixels[1, :, 40, 40]
    assert not torch.allclose(centre, pixels[0, :, 40, 40], atol=0.1)


def test_object_and_background_patches_weigh_alike_in_the_cross_entropy():
    # One image of 4 patches: one triangle patch, three background, one of them ignored.
    shape_logits = torch.tensor([[[0.0, 0.0, 2.0, 0.0], [3.0, 0, 0, 0], [1.0, 0, 0, 0],
                                  [0.0, 5.0, 0, 0]]])  # fmt: skip
    labels = torch.tensor([[3, 0, 0, IGNORE]])
    targets = PatchTargets(
        shape=labels,
        color=torch.tensor([[IGNORE] * 4]),
        box=torch.zeros(1, 4, 4),
        unseen=torch.zeros(1, 4, dtype=torch.bool),
        owner=torch.tensor([[0, -1, -1, -1]]),
    )
    parts = losses((shape_logits, torch.zeros(1, 4, 6), torch.zeros(1, 4, 4)), targets)
    per_patch = F.cross_entropy(shape_logits[0, :3], labels[0, :3], reduction="none")
    # The one object patch counts as much as the two background ones together.
    assert parts["shape"].item() == pytest.approx(
        per_patch[0].item() + per_patch[1:].mean().item(), rel=1e-6
    )
    assert parts["color"].item() == 0.0  # nothing to learn: every colour target ignored


def test_random_colours_stay_far_from_the_palette():
    rng = random.Random(1)
    for _ in range(200):
        colour = far_colour(rng)
        assert all(math.dist(colour, ink) >= FAR for ink in PALETTE.values())


def test_stage_0_writes_an_eva_file_a_from_scratch_stage_1_starts_from(tmp_path):
    path = pretrain_vision(
        PerceptionConfig(
            model="tiny", out_dir=str(tmp_path / "s0"), steps=2, batch_size=2, eval_scenes=4
        )
    )
    assert path.name == VISION_FILE and not path.with_suffix(".partial").exists()
    eva = load_file(path)
    # One block more than the preset keeps: EVA's last block, dropped on loading.
    assert {key.split(".")[1] for key in eva if key.startswith("blocks.")} == {"0", "1", "2"}
    run = TrainConfig(
        model="tiny",
        eva=str(path),
        steps=1,
        batch_size=2,
        tokenizer_vocab=480,
        tokenizer_samples=300,
        optim=OptimConfig(lr=1e-4, warmup_steps=1, warmup_lr=1e-5, min_lr=1e-5),
        out_dir=str(tmp_path / "s1"),
    )
    model, _ = loop._build_model(run, tmp_path / "s1", World())
    assert len(model.vision.blocks) == 2
    torch.testing.assert_close(
        model.vision.blocks[1].mlp.fc1.weight, eva["blocks.1.mlp.fc1.weight"]
    )
    torch.testing.assert_close(model.vision.pos_embed, eva["pos_embed"])


def test_an_encoder_of_another_preset_is_refused_with_the_sizes(tmp_path):
    path = pretrain_vision(
        PerceptionConfig(model="tiny", out_dir=str(tmp_path), steps=1, batch_size=1, eval_scenes=2)
    )
    run = TrainConfig(
        model="shapes", eva=str(path), tokenizer_samples=300, out_dir=str(tmp_path / "s1")
    )
    with pytest.raises(CheckpointError, match=r"width 32.*needs.*width 192"):
        loop._build_model(run, tmp_path / "s1", World())


def test_the_command_trains_and_says_how_to_use_the_file(tmp_path, capsys):
    command = ["pretrain-vision", "--model", "tiny", "--out", str(tmp_path), "--steps", "1"]
    assert main([*command, "--batch-size", "1"]) == 0
    assert f"eva={tmp_path / VISION_FILE}" in capsys.readouterr().out


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match=r"recolour=1\.5"):
        PerceptionConfig(recolour=1.5)
    with pytest.raises(ConfigError, match="unknown Shapes world"):
        PerceptionConfig(world="round")


def test_stage_1_without_stage_0_says_to_run_it_before_writing_anything(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no runs/shapes/stage0 here
    out = tmp_path / "run"
    assert main(["train", "--config", str(CONFIGS / "stage1.yaml"), f"out_dir={out}"]) == 2
    error = capsys.readouterr().err
    assert "eva=runs/shapes/stage0/eva_vit.safetensors: no such file" in error
    assert "minigptv2 pretrain-vision --out runs/shapes/stage0" in error
    assert not out.exists()
