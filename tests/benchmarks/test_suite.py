"""The benchmark command end to end on toy sizes (``--smoke``), and the issue-8 targets."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.report import table, targets

CONTRACT = (
    "batch8_over_batch1_tokens_per_s",
    "second_turn_ttft_over_first",
    "train_mfu",
    "matmul_gflops",
    "memory_gbps",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One in-process ``--smoke --json`` run: (exit code, stdout, the file it wrote)."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    stdout = io.StringIO()
    threads = torch.get_num_threads()
    # One thread: on a machine shared with other jobs, two OpenMP threads can be 20x slower.
    argv = ["--smoke", "--json", "--in-process", "--threads", "1", "--models", "issue-tiny"]
    try:
        with contextlib.redirect_stdout(stdout):
            code = main([*argv, "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("OMP_NUM_THREADS", None)
    return code, stdout.getvalue(), out


def test_json_mode_prints_one_object_with_the_contract_keys(smoke_run):
    code, stdout, out = smoke_run
    assert code == 0
    document = json.loads(stdout)  # fails if anything else reached stdout
    for key in CONTRACT:
        assert isinstance(document[key], float), key
        assert document[key] > 0, key
    assert json.loads(out.read_text()) == document


def test_every_model_section_measures_everything(smoke_run):
    model = json.loads(smoke_run[1])["models"]["issue-tiny"]
    for key in (
        "train_samples_per_s",
        "ttft_s_batch1",
        "ttft_s_batch8",
        "tokens_per_s_batch1",
        "tokens_per_s_batch8",
        "first_turn_ttft_s",
        "second_turn_ttft_s",
        "eval_items_per_s",
        "peak_rss_mb",
    ):
        assert model[key] > 0, key
    assert 0 < model["train_mfu"] < 1
    # A chat session's second turn reads only its new tokens: no image, no first prompt.
    assert 0 < model["second_turn_gflop"] < model["first_turn_gflop"]
    assert 0 < model["second_turn_flops_over_first"] < 1
    # The step's FLOPs are counted on the real tokens of the training batch.
    assert model["train_tokens"] > model["train_batch"] * 16  # 16 image tokens per sample


def test_fast_paths_are_timed_before_and_after(smoke_run):
    fast = json.loads(smoke_run[1])["fast_paths"]
    for key in (
        "no_cache_tokens_per_s",
        "hf_generate_tokens_per_s",
        "cached_tokens_per_s",
        "vision_sdpa_s",
        "vision_eager_s",
        "prefill_sdpa_s",
        "prefill_eager_s",
        "bf16_tokens_per_s",
    ):
        assert fast[key] > 0, key


def test_table_shows_each_model_and_the_targets(smoke_run):
    document = json.loads(smoke_run[1])
    text = table(document)
    assert "| metric | issue-tiny |" in text
    assert "| train MFU (fp32 peak) |" in text
    assert "tiny train step s" in text  # the targets follow the table


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["--smoke", "--json", "--in-process", "--models", "gpt-5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown benchmark model(s) ['gpt-5']" in captured.err


def _result(train_step_s: float, ratio: float, turn: float) -> dict:
    tiny = {
        "train_step_s": train_step_s,
        "generate_10_tokens_s_batch1": 0.02,
        "generate_10_tokens_s_batch8": 0.2,
    }
    shapes = {"batch8_over_batch1_tokens_per_s": ratio, "second_turn_ttft_over_first": turn}
    return {"models": {"issue-tiny": tiny, "shapes": shapes}}


def test_targets_say_whether_and_by_how_much_each_goal_is_met():
    rows = {
        row["target"].split(" (")[0].split(" <=")[0].split(" >=")[0]: row
        for row in targets(_result(train_step_s=0.2, ratio=5.0, turn=0.5))
    }
    assert rows["tiny train step s"]["met"] is False
    assert rows["tiny train step s"]["fraction_of_goal"] == pytest.approx(0.5)  # 0.1 / 0.2
    assert rows["tiny 10-token generation s, batch 1"]["met"] is True
    assert rows["tiny 10-token generation s, batch 8"]["met"] is False
    assert rows["shapes batch-8 / batch-1 tokens/s"]["met"] is True
    assert rows["shapes batch-8 / batch-1 tokens/s"]["fraction_of_goal"] == pytest.approx(1.25)
    assert rows["shapes second-turn TTFT / first"]["met"] is False
