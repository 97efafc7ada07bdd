"""The recipe throughput benchmark on this checkout's stage configs (one timed step each)."""

from pathlib import Path

from benchmarks import recipe
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


def test_the_recipe_rate_weighs_each_stage_by_its_steps(monkeypatch):
    # Two stages at 100 and 400 tokens/s; the first runs three times as many steps.
    stages = {
        1: {"steps": 3000, "answer_tokens_per_step": 100.0, "step_s": 1.0},
        2: {"steps": 1000, "answer_tokens_per_step": 400.0, "step_s": 1.0},
    }
    monkeypatch.setattr(recipe, "STAGES", (1, 2))
    monkeypatch.setattr(recipe, "measure_stage", lambda root, stage, steps: stages[stage])
    result = recipe.measure(ROOT, steps=1)
    assert result["train_answer_tokens_per_s"] == (3000 * 100 + 1000 * 400) / 4000


def test_a_checkout_without_a_stage_config_skips_that_stage(tmp_path, monkeypatch):
    (tmp_path / "configs/shapes").mkdir(parents=True)
    (tmp_path / "configs/shapes/stage1.yaml").write_text("")
    measured = []

    def fake(root, stage, steps):
        measured.append(stage)
        return {"steps": 10, "answer_tokens_per_step": 50.0, "step_s": 0.5}

    monkeypatch.setattr(recipe, "measure_stage", fake)
    assert list(recipe.measure(tmp_path, steps=1)["stages"]) == ["stage1"]
    assert measured == [1]


def test_stage_4_trains_at_its_own_image_size(monkeypatch):
    from minigptv2.model import MiniGPTv2

    sizes = []
    original = MiniGPTv2.set_image_size

    def spy(self, size):
        sizes.append(size)
        return original(self, size)

    monkeypatch.setattr(MiniGPTv2, "set_image_size", spy)
    result = measure_stage(ROOT, 4, steps=1)
    assert sizes == [168]
    assert result["answer_tokens_per_step"] > 0


def test_a_stage_the_old_recipe_lacks_shows_a_dash():
    old = {"stages": {"stage1": {"train_answer_tokens_per_s": 100.0}}}
    new = {
        "stages": {
            "stage1": {"train_answer_tokens_per_s": 150.0},
            "stage4": {"train_answer_tokens_per_s": 80.0},
        }
    }
    result = {
        "old": {**old, "train_answer_tokens_per_s": 100.0},
        "new": {**new, "train_answer_tokens_per_s": 120.0},
        "new_over_old": 1.2,
    }
    table = _table(result)
    assert "| stage4 | - | 80.0 | - |" in table
    assert "| stage1 | 100.0 | 150.0 | 1.50 |" in table
