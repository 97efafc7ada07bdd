import json

import pytest

from minigptv2.assistant import Answer, Assistant
from minigptv2.boxes import box_to_text
from minigptv2.checkpoints import save_pretrained
from minigptv2.cli import main
from minigptv2.eval import runner, shapes
from minigptv2.processor import Processor


def test_scoring_uses_the_ground_truth():
    by_task = {item.task: item for item in shapes.items("test", 1)}
    refer = by_task["refer"]
    width, height = refer.image.size
    right = box_to_text(refer.target["boxes"][0], width, height)
    assert shapes.score(refer, right)["correct"]
    assert not shapes.score(refer, "{<0><0><1><1>}")["correct"]
    unparsable = shapes.score(refer, "somewhere on the left")
    assert not unparsable["correct"] and not unparsable["parsed"]

    vqa = by_task["vqa"]
    assert shapes.score(vqa, vqa.target["answer"].upper() + ".")["correct"]

    grounding = by_task["grounding"]
    record = shapes.score(grounding, grounding.target["answer"])
    assert record["true_positives"] == record["targets"] == len(grounding.target["boxes"])


def test_summary_is_fractions_with_counts():
    items = shapes.items("test", 3)
    summary = shapes.summarise([shapes.score(item, item.target["answer"]) for item in items])
    for key in ("refer_acc50", "vqa_acc", "identify_acc", "detection_f1", "grounding_recall50"):
        assert summary[key] == pytest.approx(1.0), key
    assert summary["n"] == {task: 3 for task in shapes.MAX_NEW_TOKENS}
    assert all(count == 0 for count in summary["unparsable"].values())


@pytest.fixture
def assistant(tiny_model, tokenizer, tiny_config):
    return Assistant(tiny_model, Processor(tokenizer, tiny_config))


def test_a_killed_run_resumes_and_scores_the_same(assistant, tmp_path, monkeypatch):
    straight = runner.evaluate(assistant, per_task=3, batch_size=2)

    real = assistant.generate
    calls = {"n": 0}

    def dying(*args, **kwargs) -> list[Answer]:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(assistant, "generate", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(assistant, per_task=3, batch_size=2, out=tmp_path)
    assert len((tmp_path / runner.PREDICTIONS).read_text().splitlines()) == 5  # 3 batches done
    monkeypatch.setattr(assistant, "generate", real)
    resumed = runner.evaluate(assistant, per_task=3, batch_size=2, out=tmp_path)
    assert resumed == straight
    assert len((tmp_path / runner.PREDICTIONS).read_text().splitlines()) == 15
    assert json.loads((tmp_path / "scores.json").read_text()) == resumed


def test_cli_contract_prints_fractions(tiny_model, tokenizer, tmp_path, capsys):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    args = ["eval", "--benchmark", "shapes", "--split", "test", "--json", "--limit", "2"]
    assert main([*args, "--model", str(folder)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("refer_acc50", "vqa_acc", "detection_f1", "grounding_recall50"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["n"]["refer"] == 2


def test_wide_split_prints_the_same_keys_as_test(tiny_model, tokenizer, tmp_path, capsys):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    keys = {}
    for split in ("test", "test-wide"):
        args = ["eval", "--benchmark", "shapes", "--split", split, "--json", "--limit", "1"]
        assert main([*args, "--model", str(folder)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["split"] == split
        keys[split] = set(summary)
    assert keys["test-wide"] == keys["test"]
    wide = shapes.items("test-wide", 2)
    assert all(item.image.size != (112, 112) for item in wide)
