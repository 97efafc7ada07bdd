import pathlib
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from minigptv2.checkpoints.pretrained import recover_interrupted_writes
from minigptv2.train import checkpoint
from minigptv2.train.checkpoint import (
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
)


def model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_weights_optimizer_and_step(tmp_path):
    model, optimizer = model_and_optimizer(0)
    save_training_checkpoint(tmp_path, 7, model, optimizer)
    other, other_optimizer = model_and_optimizer(1)
    assert load_training_checkpoint(tmp_path / "step_0000007", other, other_optimizer) == 7
    torch.testing.assert_close(other.weight, model.weight)
    state = other_optimizer.state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(state, optimizer.state_dict()["state"][0]["exp_avg"])


def test_a_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = model_and_optimizer(0)
    save_training_checkpoint(tmp_path, 1, model, optimizer)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError):
        save_training_checkpoint(tmp_path, 2, model, optimizer)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step_0000001"]
    assert [path.name for path in tmp_path.iterdir()] == ["step_0000001"]  # no staging left


def test_only_the_newest_are_kept(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for step in (1, 2, 3):
        save_training_checkpoint(tmp_path, step, model, optimizer, keep=2)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["step_0000002", "step_0000003"]


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    model, optimizer = model_and_optimizer(0)
    save_training_checkpoint(tmp_path, 1, model, optimizer)
    bigger = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        load_training_checkpoint(
            tmp_path / "step_0000001", bigger, torch.optim.AdamW(bigger.parameters())
        )


def test_each_rank_gets_its_own_rng_state_back(tmp_path):
    model, optimizer = model_and_optimizer(0)
    states = [torch.manual_seed(seed).get_state() for seed in (10, 11)]
    weights, optimizer_state = checkpoint.trainable_state(model), optimizer.state_dict()
    checkpoint.write_training_checkpoint(tmp_path, 5, weights, optimizer_state, states)
    path = tmp_path / "step_0000005"
    load_training_checkpoint(path, model, optimizer, rank=1, world_size=2)
    assert torch.equal(torch.get_rng_state(), states[1])
    # Another number of ranks than the run that wrote it: all continue from rank 0's state.
    load_training_checkpoint(path, model, optimizer, rank=2, world_size=3)
    assert torch.equal(torch.get_rng_state(), states[0])


def test_a_state_file_that_would_run_code_is_refused_without_torchs_advice(tmp_path):
    model, optimizer = model_and_optimizer(0)
    path = save_training_checkpoint(tmp_path, 1, model, optimizer)
    # A pickle naming a global outside torch's safe list (it could as well be os.system).
    torch.save({"step": 1, "note": pathlib.PurePosixPath("x")}, path / checkpoint.STATE)
    with pytest.raises(checkpoint.CheckpointError, match="refused") as error:
        load_training_checkpoint(path, model, optimizer)
    assert "weights_only" not in str(error.value)  # torch's "load it with weights_only=False"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (checkpoint.WEIGHTS, b"garbage, not safetensors"),
        (checkpoint.STATE, b"garbage, not a torch file"),
    ],
)
def test_a_corrupt_checkpoint_file_is_a_clear_error(tmp_path, name, content):
    model, optimizer = model_and_optimizer(0)
    path = save_training_checkpoint(tmp_path, 1, model, optimizer)
    (path / name).write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match=f"{name}.*corrupted"):
        load_training_checkpoint(path, model, optimizer)


def test_a_state_file_of_the_wrong_shape_is_a_clear_error(tmp_path):
    model, optimizer = model_and_optimizer(0)
    path = save_training_checkpoint(tmp_path, 1, model, optimizer)
    torch.save({"weights": torch.zeros(2)}, path / checkpoint.STATE)
    with pytest.raises(checkpoint.CheckpointError, match="lacks step, optimizer, rng"):
        load_training_checkpoint(path, model, optimizer)


KILLED_MID_WRITE = """
import os, sys
from pathlib import Path
from minigptv2.checkpoints.pretrained import atomic_directory
with atomic_directory(Path(sys.argv[1])) as staging:
    (staging / "trainable.safetensors").write_bytes(bytes(1000))
    os.kill(os.getpid(), 9)  # as a SIGKILL mid-save: no clean-up code runs
"""


def test_writes_killed_mid_save_are_cleaned_up_and_complete_checkpoints_kept(tmp_path):
    model, optimizer = model_and_optimizer(0)
    for step in (1, 2):
        save_training_checkpoint(tmp_path, step, model, optimizer)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path / "step_0000003")]
    )
    assert killed.returncode == -9
    (partial,) = [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]
    assert partial.startswith(".step_0000003.partial-")
    # Killed between the two renames of a replacement: the previous save of step 4 is set aside
    # and nothing took its place; a previous save of step 2 set aside, with step 2 in place.
    shutil.copytree(tmp_path / "step_0000002", tmp_path / ".step_0000004.old-0123abcd")
    shutil.copytree(tmp_path / "step_0000001", tmp_path / ".step_0000002.old-89abcdef")
    (tmp_path / ".not-ours").mkdir()

    changes = recover_interrupted_writes(tmp_path)
    assert len(changes) == 3
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [".not-ours", "step_0000001", "step_0000002", "step_0000004"]
    other, other_optimizer = model_and_optimizer(1)
    assert load_training_checkpoint(tmp_path / "step_0000004", other, other_optimizer) == 2
    assert load_training_checkpoint(tmp_path / "step_0000002", other, other_optimizer) == 2
    assert recover_interrupted_writes(tmp_path) == []
