"""The recipe throughput benchmark on this checkout's stage configs (one timed step each)."""

from pathlib import Path

from benchmarks.recipe import _table, measure_stage

ROOT = Path(__file__).resolve().parents[2]


def test_a_stage_reports_its_answer_tokens_per_second():
    result = measure_stage(ROOT, 1, steps=1)
    # Stage 1 packs 6 box-answer questions per row, 12 rows: hundreds of answer tokens a step.
    assert result["answer_tokens_per_step"] > 12 * 6 * 4
    rate = result["answer_tokens_per_step"] / result["step_s"]
    assert abs(rate - result["train_answer_tokens_per_s"]) <= 0.01 * rate


def test_the_comparison_table_names_the_ratio():
    side = {"stages": {"stage1": {"train_answer_tokens_per_s": 100.0}}}
    result = {
        "old": {**side, "train_answer_tokens_per_s": 100.0},
        "new": {
            "stages": {"stage1": {"train_answer_tokens_per_s": 250.0}},
            "train_answer_tokens_per_s": 250.0,
        },
        "new_over_old": 2.5,
    }
    assert "| stage1 | 100.0 | 250.0 | 2.50 |" in _table(result)
