import json
from types import SimpleNamespace

import pytest

from minigptv2.errors import ConfigError
from minigptv2.eval import runner
from minigptv2.train import evaluation, loop
from minigptv2.train.config import DataConfig, TrainConfig
from minigptv2.train.optim import OptimConfig

HEADLINE = {"refer_acc50", "vqa_acc", "identify_acc", "detection_f1", "grounding_recall50"}


def tiny_run(tmp_path, **changes) -> TrainConfig:
    settings = dict(
        model="tiny",
        steps=3,
        batch_size=2,
        save_every=10,
        log_every=1,
        tokenizer_vocab=480,
        tokenizer_samples=300,
        optim=OptimConfig(lr=1e-3, warmup_steps=1),
        out_dir=str(tmp_path / "run"),
        eval_items=1,
    )
    settings.update(changes)
    return TrainConfig(**settings)


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_periodic_evaluation_is_logged_and_does_not_change_training(tmp_path, monkeypatch, capsys):
    real_evaluate = evaluation.evaluate_model
    modes = []

    def evaluate_and_record_modes(model, *args):
        summary = real_evaluate(model, *args)
        modes.append((model.training, model.projector.training, model.vision.training))
        return summary

    monkeypatch.setattr(evaluation, "evaluate_model", evaluate_and_record_modes)
    loop.train(tiny_run(tmp_path / "plain"))
    loop.train(tiny_run(tmp_path / "evaluated", eval_every=3))
    plain = records(tmp_path / "plain" / "run")
    evaluated = records(tmp_path / "evaluated" / "run")
    evals = [record for record in evaluated if "eval" in record]
    # One real evaluation (generation is the slow part): after step 3, on the validation split.
    assert [(record["step"], record["eval_split"]) for record in evals] == [(3, "val")]
    assert set(evals[0]["eval"]) >= HEADLINE
    assert all(0.0 <= value <= 1.0 for value in evals[0]["eval"].values())
    # Back to training afterwards, with the frozen encoder (tiny preset) still in eval mode.
    assert modes == [(True, True, False)]
    # Greedy generation with a forked RNG: the losses are those of the run without evaluation.
    train_losses = [(r["step"], r["loss"]) for r in evaluated if "loss" in r]
    assert train_losses == [(r["step"], r["loss"]) for r in plain]
    assert "step 3: val {" in capsys.readouterr().out


def test_evaluation_runs_every_n_steps_and_at_the_end(tmp_path, monkeypatch, capsys):
    steps_seen = []

    def fake(model, processor, config):
        steps_seen.append(len(steps_seen))
        return {"vqa_acc": 0.25 * len(steps_seen), "n": {"vqa": 1}, "benchmark": "shapes"}

    monkeypatch.setattr(evaluation, "evaluate_model", fake)
    loop.train(tiny_run(tmp_path, steps=5, eval_every=2))
    evals = [record for record in records(tmp_path / "run") if "eval" in record]
    assert [(record["step"], record["eval"]) for record in evals] == [
        (2, {"vqa_acc": 0.25}),
        (4, {"vqa_acc": 0.5}),
        (5, {"vqa_acc": 0.75}),
    ]
    # The finished progress bar shows the last evaluation's scores, not the one before.
    final_bar = capsys.readouterr().err.rstrip().rsplit("\r", 1)[-1]
    assert "5/5" in final_bar and "vqa=0.75" in final_bar


def test_a_failing_evaluation_does_not_end_the_run(tmp_path, monkeypatch, capsys):
    def broken(*args):
        raise ConfigError("benchmark data unreadable")

    monkeypatch.setattr(evaluation, "evaluate_model", broken)
    exported = loop.train(tiny_run(tmp_path, steps=2, eval_every=1))
    assert (exported / "config.json").is_file()
    assert "step 1: evaluation failed: benchmark data unreadable" in capsys.readouterr().out
    assert not [record for record in records(tmp_path / "run") if "eval" in record]


def test_bad_evaluation_settings_fail_before_training(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="eval_every must be at least 1"):
        tiny_run(tmp_path, eval_every=0)
    with pytest.raises(ConfigError, match="eval_benchmark 'nope' is unknown"):
        loop.train(tiny_run(tmp_path, eval_every=1, eval_benchmark="nope"))
    monkeypatch.setitem(runner.BENCHMARKS, "split-aware", SimpleNamespace(splits=("val",)))
    with pytest.raises(ConfigError, match="no split 'train'; set eval_split to one of val"):
        loop.train(
            tiny_run(tmp_path, eval_every=1, eval_benchmark="split-aware", eval_split="train")
        )
    with pytest.raises(ConfigError, match="shapes is asked in en, ko only; set eval_language"):
        loop.train(tiny_run(tmp_path, eval_every=1, eval_language="fr"))
    assert not (tmp_path / "run").exists()  # nothing was started


def test_due_every_n_steps_and_at_the_end(tmp_path):
    config = tiny_run(tmp_path, steps=7, eval_every=3)
    assert [step for step in range(1, 8) if evaluation.due(step, config)] == [3, 6, 7]
    assert not any(evaluation.due(step, tiny_run(tmp_path)) for step in range(1, 4))


def test_the_progress_bar_shows_the_headline_not_its_breakdowns():
    from minigptv2.train.evaluation import short_names

    scores = {"refer_acc50": 0.9, "refer_acc50_unseen": 0.1, "vqa_acc": 0.5, "vqa_acc_seen": 0.7}
    assert short_names(scores, "shapes") == {"refer": "0.90", "vqa": "0.50"}


def test_a_korean_stage_trains_a_hangul_tokenizer_and_evaluates_in_korean(tmp_path):
    # 108 Hangul syllables, the ASCII of the template and the 115 symbols need ~500 pieces.
    korean = DataConfig(language="ko")
    run = tiny_run(tmp_path, data=korean, eval_every=3, eval_language="ko", tokenizer_vocab=600)
    folder = loop.train(run)
    (evaluated,) = [record for record in records(tmp_path / "run") if "eval" in record]
    assert set(evaluated["eval"]) >= HEADLINE
    from minigptv2.tokenizer import Tokenizer

    tokenizer = Tokenizer(folder)
    pieces = tokenizer.pieces(tokenizer.encode("[vqa] 빨간 원은 어디에 있나요?"))
    assert "<unk>" not in pieces and not any(p.startswith("<0x") for p in pieces), pieces
