"""A training process killed outright (SIGKILL: no handler runs, no final save) loses nothing.

``--resume`` continues from the last checkpoint written before the kill, whatever the kill hit
(a step, a checkpoint being written, the log), and the run ends with the loss curve and weights
of one that was never interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

CONFIG = """
model: tiny
steps: 12
batch_size: 2
save_every: 3
log_every: 1
precision: fp32
tokenizer_vocab: 480
tokenizer_samples: 300
optim: {lr: 1.0e-3, warmup_steps: 2}
"""


def command(config_text: str, folder) -> list[str]:
    config = folder / "stage.yaml"
    config.write_text(config_text + f"out_dir: {folder / 'run'}\n")
    return [sys.executable, "-m", "minigptv2", "train", "--config", str(config)]


def one_thread() -> dict[str, str]:
    """The environment every run gets: the same thread count, so the same arithmetic."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=one_thread(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def logged_steps(run_dir) -> int:
    log = run_dir / "metrics.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def losses(run_dir) -> dict[int, float]:
    """Each step's loss; a step logged twice (before a kill and after the resume) keeps the last."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {record["step"]: record["loss"] for record in records if "loss" in record}


def kill_after(argv: list[str], run_dir, steps: int) -> None:
    """Start ``argv`` and SIGKILL it as soon as it has logged ``steps`` steps."""
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=one_thread()
    )
    deadline = time.monotonic() + 300
    while logged_steps(run_dir) < steps and process.poll() is None:
        assert time.monotonic() < deadline, "the run to kill never got going"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.fail(f"the run finished (exit {process.returncode}) before it could be killed")


def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    run(command(CONFIG, straight))

    argv = command(CONFIG, killed)
    kill_after(argv, killed / "run", steps=7)  # two checkpoints are written by then
    before = logged_steps(killed / "run")
    assert before < 12
    run([*argv, "--resume"])
    # It went on from a checkpoint (step 6 or later), not from the start: with deterministic
    # training a restart would end with the same curve and weights, having lost the work.
    lines = (killed / "run" / "metrics.jsonl").read_text().splitlines()
    redone = [json.loads(line)["step"] for line in lines[before:]]
    assert 6 < redone[0] <= before + 1 and redone == list(range(redone[0], 13))

    expected, resumed = losses(straight / "run"), losses(killed / "run")
    assert sorted(resumed) == list(range(1, 13))
    for step in range(1, 13):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step
    weights = load_file(straight / "run" / "model" / "model.safetensors")
    again = load_file(killed / "run" / "model" / "model.safetensors")
    assert weights.keys() == again.keys()
    for name, tensor in weights.items():
        assert (tensor - again[name]).abs().max() <= 1e-6, name
