"""Two CPU processes under torchrun (gloo): the same train command runs data-parallel."""

import json
import os
import subprocess
import sys

CONFIG = """
model: tiny
steps: 3
batch_size: 2
save_every: 10
log_every: 1
tokenizer_vocab: 480
tokenizer_samples: 300
optim: {lr: 1.0e-3, warmup_steps: 1}
"""


def test_two_ranks_train_in_sync(tmp_path):
    config = tmp_path / "ddp.yaml"
    out = tmp_path / "run"
    config.write_text(CONFIG + f"out_dir: {out}\n")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "minigptv2", "train", "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 0 compared every rank's weight checksum after the last step.
    assert "2 ranks in sync" in result.stdout + result.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 3]  # one log, written by rank 0
    assert (out / "model" / "config.json").is_file()
