"""Two CPU processes under torchrun (gloo): the same train command runs DDP or FSDP."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from minigptv2.checkpoints import load_pretrained
from minigptv2.train.checkpoint import STATE, WEIGHTS, load_training_checkpoint
from minigptv2.train.optim import OptimConfig, build_optimizer

# tiny: LoRA adapters train inside a frozen LLaMA (plus the projector); the ViT is frozen.
CONFIG = """
model: tiny
steps: 4
batch_size: 2
save_every: 2
log_every: 1
precision: fp32
tokenizer_vocab: 480
tokenizer_samples: 300
optim: {lr: 1.0e-3, warmup_steps: 1}
"""


def torchrun(config_text: str, tmp_path, *args: str) -> str:
    config = tmp_path / "stage.yaml"
    config.write_text(config_text)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "minigptv2", "train", "--config", str(config), *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def losses(run) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {record["step"]: record["loss"] for record in records}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    output = torchrun(CONFIG + f"parallel: ddp\nout_dir: {folder / 'run'}\n", folder)
    return folder / "run", output


def test_two_ranks_train_in_sync(ddp_run):
    run, output = ddp_run
    assert "2 ranks, DDP" in output
    # Rank 0 compared every rank's weight checksum after the last step.
    assert "2 ranks in sync" in output
    assert sorted(losses(run)) == [1, 2, 3, 4]  # one log, written by rank 0
    assert (run / "model" / "config.json").is_file()
    state = torch.load(run / "checkpoints" / "step_0000004" / STATE, weights_only=True)
    per_rank = state["rng"]["torch_per_rank"]
    assert len(per_rank) == 2 and not torch.equal(per_rank[0], per_rank[1])  # own dropout masks


def test_fsdp_resumes_a_ddp_checkpoint_and_ends_where_ddp_did(ddp_run, tmp_path):
    ddp, _ = ddp_run
    # The FSDP run starts from the DDP run's step-2 checkpoint (and its tokenizer): loading
    # shards full tensors, saving gathers them, so steps 3-4 must land on DDP's weights.
    run = tmp_path / "run"
    shutil.copytree(ddp / "tokenizer", run / "tokenizer")
    shutil.copytree(ddp / "checkpoints" / "step_0000002", run / "checkpoints" / "step_0000002")
    output = torchrun(CONFIG + f"parallel: fsdp\nout_dir: {run}\n", tmp_path, "--resume")
    assert "2 ranks, FSDP" in output and "at step 2" in output

    fsdp_losses, ddp_losses = losses(run), losses(ddp)
    assert sorted(fsdp_losses) == [3, 4]
    for step in (3, 4):
        assert fsdp_losses[step] == pytest.approx(ddp_losses[step], abs=1e-5)

    ours, theirs = run / "checkpoints" / "step_0000004", ddp / "checkpoints" / "step_0000004"
    weights, expected = load_file(ours / WEIGHTS), load_file(theirs / WEIGHTS)
    assert set(weights) == set(expected) and any("lora_" in name for name in weights)
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-5, atol=1e-6)
    state = torch.load(ours / STATE, weights_only=True)["optimizer"]
    reference = torch.load(theirs / STATE, weights_only=True)["optimizer"]
    assert state["param_groups"] == reference["param_groups"]
    for index, moments in reference["state"].items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(
                state["state"][index][key], moments[key], rtol=1e-5, atol=1e-8
            )

    # The export and the checkpoint are the single-process formats.
    model, _ = load_pretrained(run / "model")
    reference_model, _ = load_pretrained(ddp / "model")
    for (name, value), other in zip(
        model.state_dict().items(), reference_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(value, other, rtol=1e-5, atol=1e-6, msg=name)
    optimizer = build_optimizer(model, OptimConfig())
    assert load_training_checkpoint(ours, model, optimizer) == 4


def test_fsdp_with_gradient_checkpointing_takes_ddps_steps(ddp_run, tmp_path):
    # Recomputing activations in backward (same dropout masks: the RNG state is replayed) must
    # not change what FSDP computes: steps 3-4 from DDP's step-2 checkpoint give DDP's losses.
    ddp, _ = ddp_run
    run = tmp_path / "run"
    shutil.copytree(ddp / "tokenizer", run / "tokenizer")
    shutil.copytree(ddp / "checkpoints" / "step_0000002", run / "checkpoints" / "step_0000002")
    config = CONFIG + f"parallel: fsdp\ngradient_checkpointing: true\nout_dir: {run}\n"
    output = torchrun(config, tmp_path, "--resume")
    assert "2 ranks, FSDP" in output and "at step 2" in output
    fsdp_losses, ddp_losses = losses(run), losses(ddp)
    assert sorted(fsdp_losses) == [3, 4]
    for step in (3, 4):
        assert fsdp_losses[step] == pytest.approx(ddp_losses[step], abs=1e-5)
