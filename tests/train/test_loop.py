import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from minigptv2.checkpoints import load_pretrained
from minigptv2.cli import main
from minigptv2.config import SHIPPED_MODEL, Trainable
from minigptv2.model.vision import resample_pos_embed
from minigptv2.tasks import TASKS
from minigptv2.train import loop
from minigptv2.train.checkpoint import list_checkpoints
from minigptv2.train.config import DataConfig, TrainConfig, load_train_config
from minigptv2.train.optim import OptimConfig


def tiny_run(tmp_path, **changes) -> TrainConfig:
    settings = dict(
        model="tiny",
        steps=6,
        batch_size=2,
        save_every=3,
        log_every=1,
        tokenizer_vocab=480,
        tokenizer_samples=300,
        optim=OptimConfig(lr=1e-3, warmup_steps=2, warmup_lr=1e-4, min_lr=1e-4),
        out_dir=str(tmp_path / "run"),
    )
    settings.update(changes)
    return TrainConfig(**settings)


def losses(run_dir) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record["loss"] for record in map(json.loads, lines)}


def test_a_run_logs_checkpoints_and_exports_a_loadable_model(tmp_path):
    exported = loop.train(tiny_run(tmp_path))
    run = tmp_path / "run"
    assert sorted(losses(run)) == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(v)) for v in losses(run).values())
    assert [path.name for path in list_checkpoints(run / "checkpoints")] == [
        "step_0000003",
        "step_0000006",
    ]
    model, tokenizer = load_pretrained(exported)
    assert model.config.language.vocab_size == tokenizer.vocab_size
    with Image.open(run / "curves.png") as curves:
        assert curves.format == "PNG" and curves.size == (800, 600)


def test_the_log_has_each_tasks_loss_and_one_task_has_the_whole_loss(tmp_path):
    loop.train(tiny_run(tmp_path / "mixed", steps=3, save_every=3))
    records = [json.loads(line) for line in (tmp_path / "mixed/run/metrics.jsonl").open()]
    for record in records:
        assert set(record["task_loss"]) <= {*TASKS, "chat"} and record["task_loss"]
        assert all(0 < value < 20 for value in record["task_loss"].values())
    # With a single task, the task's token-mean loss is the logged (token-mean) loss.
    only_vqa = tiny_run(tmp_path / "vqa", steps=2, save_every=2, data=DataConfig(mix={"vqa": 1}))
    loop.train(only_vqa)
    for record in map(json.loads, (tmp_path / "vqa/run/metrics.jsonl").open()):
        assert list(record["task_loss"]) == ["vqa"]
        assert record["task_loss"]["vqa"] == pytest.approx(record["loss"], rel=1e-5)


def test_resumed_run_matches_an_uninterrupted_one_step_for_step(tmp_path, monkeypatch):
    straight = tiny_run(tmp_path / "a", grad_accum=2)
    loop.train(straight)

    # Kill the second run during step 5 (after the step-3 checkpoint), then resume it.
    interrupted = tiny_run(tmp_path / "b", grad_accum=2)
    real_step = loop._optimisation_step
    calls = {"n": 0}

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_optimisation_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        loop.train(interrupted)
    monkeypatch.setattr(loop, "_optimisation_step", real_step)
    # Ctrl-C saved a checkpoint at the step it was on; resume from there.
    assert list_checkpoints(tmp_path / "b" / "run" / "checkpoints")[-1].name == "step_0000004"
    loop.train(interrupted, resume=True)

    first, second = losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")
    assert sorted(second) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert second[step] == pytest.approx(first[step], abs=1e-6), step


def test_non_finite_loss_skips_the_step_without_touching_weights(tmp_path, monkeypatch, capsys):
    config = tiny_run(tmp_path, steps=2, save_every=10)
    seen = {}

    def poisoned_step(network, model, optimizer, batches, *args):
        seen.setdefault("before", {k: v.clone() for k, v in model.projector.state_dict().items()})
        next(batches)
        raise loop.NonFiniteLoss("loss is nan")

    monkeypatch.setattr(loop, "_optimisation_step", poisoned_step)
    exported = loop.train(config)
    model, _ = load_pretrained(exported)
    for key, value in seen["before"].items():
        torch.testing.assert_close(model.projector.state_dict()[key], value)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records == [
        {"step": 1, "lr": pytest.approx(1e-4), "skipped": "loss is nan"},
        {"step": 2, "lr": pytest.approx(5.5e-4), "skipped": "loss is nan"},
    ]
    # Nothing finite to draw: the run still ends normally and says why there is no plot.
    assert not (tmp_path / "run" / "curves.png").exists()
    assert "no curves.png" in capsys.readouterr().out


def test_cli_train_with_overrides(tmp_path):
    config_file = tmp_path / "stage.yaml"
    config_file.write_text(
        "model: tiny\nsteps: 50\nbatch_size: 2\ntokenizer_vocab: 480\ntokenizer_samples: 300\n"
        "optim: {lr: 1.0e-3, warmup_steps: 1}\n"
    )
    out = tmp_path / "out"
    assert main(["train", "--config", str(config_file), "steps=2", f"out_dir={out}"]) == 0
    assert (out / "model" / "config.json").is_file()
    assert load_train_config(config_file, ["optim.lr=0.5"]).optim.lr == 0.5


def test_a_stage_continues_from_the_previous_stage_export(tmp_path):
    first = loop.train(tiny_run(tmp_path / "one", steps=2))
    before, _ = load_pretrained(first)
    second = loop.train(tiny_run(tmp_path / "two", steps=2, init_from=str(first)))
    after, _ = load_pretrained(second)
    # Same architecture and tokenizer, trained further: the projector moved.
    assert after.config == before.config
    moved = after.projector.linear.weight - before.projector.linear.weight
    assert moved.abs().max() > 0


def test_a_stage_can_continue_at_a_larger_image_size(tmp_path):
    first = loop.train(tiny_run(tmp_path / "one", steps=1))
    before, _ = load_pretrained(first)
    frozen_vision = Trainable(vision=False, projector=True, lora=True, language_model=False)
    changes = dict(steps=2, init_from=str(first), image_size=168, trainable=frozen_vision)
    second = loop.train(tiny_run(tmp_path / "two", **changes))
    after, _ = load_pretrained(second)
    # 112 -> 168 px: 16 -> 36 image tokens; the frozen ViT differs only by its resampled table.
    assert after.config.vision.image_size == 168 and after.config.num_image_tokens == 36
    table = resample_pos_embed(before.vision.pos_embed.detach(), 12)
    assert torch.equal(after.vision.pos_embed.detach(), table)
    # The export is a model folder like any other: the next stage continues at 168 px.
    third = loop.train(tiny_run(tmp_path / "three", steps=1, init_from=str(second)))
    assert load_pretrained(third)[0].config.vision.image_size == 168


def test_gradient_checkpointing_trains_exactly_like_plain_backward(tmp_path, monkeypatch):
    plain = loop.train(tiny_run(tmp_path / "plain", steps=2, precision="fp32"))
    real_build = loop._build_model
    built = []
    monkeypatch.setattr(loop, "_build_model", lambda *a: built.append(real_build(*a)) or built[-1])
    checkpointed = tiny_run(
        tmp_path / "ckpt", steps=2, precision="fp32", gradient_checkpointing=True
    )
    loop.train(checkpointed)
    model = built[0][0]
    layers = [m for m in model.language_model.modules() if type(m).__name__ == "LlamaDecoderLayer"]
    assert layers and all(layer.gradient_checkpointing for layer in layers)
    assert model.vision.gradient_checkpointing
    first, second = losses(tmp_path / "plain" / "run"), losses(tmp_path / "ckpt" / "run")
    assert second == pytest.approx(first, abs=1e-6)
    before, _ = load_pretrained(plain)
    after, _ = load_pretrained(tmp_path / "ckpt" / "run" / "model")
    torch.testing.assert_close(after.projector.linear.weight, before.projector.linear.weight)


CONFIGS = Path(__file__).parents[2] / "configs" / "shapes"


def test_finetune_config_trains_the_shipped_model_from_any_folder(tmp_path, monkeypatch, capsys):
    # A fresh install has no runs/; the config names the model inside the package.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    overrides = ["steps=2", "batch_size=4", "pieces=1", f"out_dir={out}"]
    assert main(["train", "--config", str(CONFIGS / "finetune.yaml"), *overrides]) == 0
    assert "steps=2 is shorter than optim.warmup_steps=20" in capsys.readouterr().out
    tuned, _ = load_pretrained(out / "model")
    shipped, _ = load_pretrained(SHIPPED_MODEL)
    assert tuned.config == shipped.config
    moved = tuned.projector.linear.weight - shipped.projector.linear.weight
    assert moved.abs().max() > 0


def test_a_missing_init_from_names_the_earlier_stage_and_the_shipped_model(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no runs/shapes/stage2 here
    out = tmp_path / "run"
    assert main(["train", "--config", str(CONFIGS / "stage3.yaml"), f"out_dir={out}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: init_from runs/shapes/stage2/model is not a model folder")
    assert "out_dir is runs/shapes/stage2" in error and "init_from=shipped" in error
    assert "configs/shapes/finetune.yaml" in error
    assert not out.exists()  # it failed before writing anything


def test_a_run_starts_by_tidying_writes_an_earlier_kill_left(tmp_path, capsys):
    folder = tmp_path / "run" / "checkpoints"
    (folder / ".step_0000003.partial-0123abcd").mkdir(parents=True)
    (folder / ".step_0000003.partial-0123abcd" / "state.pt").write_bytes(bytes(100))
    (tmp_path / "run" / ".model.partial-89abcdef").mkdir()
    loop.train(tiny_run(tmp_path, steps=1), resume=True)
    assert "removed .step_0000003.partial-0123abcd" in capsys.readouterr().out
    assert [path.name for path in folder.iterdir()] == ["step_0000001"]
    assert not any(path.name.startswith(".model") for path in (tmp_path / "run").iterdir())
