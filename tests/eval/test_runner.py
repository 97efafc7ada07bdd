import json

import pytest
from eval_helpers import ScriptedAssistant, write_image, write_jsonl

from minigptv2.cli import main
from minigptv2.errors import ConfigError
from minigptv2.eval import runner


@pytest.fixture
def vsr_split(tmp_path):
    rows = [
        {"image": f"{i:012d}.jpg", "caption": f"Statement {i}.", "label": i % 2} for i in range(7)
    ]
    write_jsonl(tmp_path / "data" / "test.jsonl", rows)
    for row in rows:
        write_image(tmp_path / "data" / row["image"], 8, 8)
    return tmp_path / "data"


def reply(prompt: str) -> str:
    number = int(prompt.rsplit(" ", 1)[1].rstrip("."))
    return ["false", "true", "no idea"][number % 3]


def test_a_killed_run_resumes_to_the_same_scores(vsr_split, tmp_path, monkeypatch):
    straight = runner.evaluate(ScriptedAssistant(reply), "vsr", "test", data_root=vsr_split)
    assert straight["n"] == 7 and straight["unparsable"] == 2

    out = tmp_path / "run"
    dying = ScriptedAssistant(reply)
    real = dying.generate

    def generate(*args, **kwargs):
        if len(dying.calls) == 2:
            raise KeyboardInterrupt  # killed during the third batch
        return real(*args, **kwargs)

    monkeypatch.setattr(dying, "generate", generate)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(dying, "vsr", "test", data_root=vsr_split, batch_size=3, out=out)
    assert len((out / runner.PREDICTIONS).read_text().splitlines()) == 6
    # A line cut short by the kill is asked again, not trusted.
    with (out / runner.PREDICTIONS).open("a") as file:
        file.write('{"key": "6", "answ')

    again = ScriptedAssistant(reply)
    resumed = runner.evaluate(again, "vsr", "test", data_root=vsr_split, batch_size=3, out=out)
    assert resumed == straight
    assert [len(prompts) for _, prompts, _ in again.calls] == [1]  # only the unfinished item
    assert json.loads((out / "scores.json").read_text()) == resumed
    table = (out / "scores.md").read_text()
    # Right: items 0, 1 and 6 (replies cycle false/true/unparsable, labels alternate).
    assert "| accuracy (%) | 42.86 | 60.60 | 63.30 |" in table
    assert "unparsable answers: 2" in table


def test_an_out_folder_of_another_benchmark_is_refused(vsr_split, tmp_path):
    out = tmp_path / "run"
    runner.evaluate(ScriptedAssistant(reply), "vsr", "test", data_root=vsr_split, out=out)
    (vsr_split / "dev.jsonl").write_text((vsr_split / "test.jsonl").read_text())
    with pytest.raises(ConfigError, match="another run"):
        runner.evaluate(ScriptedAssistant(reply), "vsr", "dev", data_root=vsr_split, out=out)


def test_unknown_names_fail_before_the_model_loads(capsys):
    assert main(["eval", "--benchmark", "refcoco", "--split", "test"]) == 2
    assert "refcoco has no split 'test'; use --split with one of val, testA, testB" in (
        capsys.readouterr().err
    )
    assert main(["eval", "--benchmark", "imagenet"]) == 2
    assert "unknown benchmark 'imagenet'" in capsys.readouterr().err


def test_missing_data_is_a_clear_cli_error(tmp_path, capsys):
    args = ["eval", "--benchmark", "pope", "--split", "random", "--data-root", str(tmp_path)]
    assert main(args) == 2
    assert "coco_pope_random.json" in capsys.readouterr().err


def test_predictions_hold_the_question_and_the_expected_answer(vsr_split, tmp_path):
    out = tmp_path / "run"
    runner.evaluate(ScriptedAssistant(reply), "vsr", "test", data_root=vsr_split, out=out)
    records = [json.loads(line) for line in (out / runner.PREDICTIONS).read_text().splitlines()]
    assert len(records) == 7
    first = records[0]
    assert first["question"].endswith("Statement 0.") and first["expected"] == {"label": False}
    assert first["answer"] == "false" and first["image"] == str(vsr_split / "000000000000.jpg")
