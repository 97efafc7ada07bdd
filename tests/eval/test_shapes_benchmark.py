import json

import pytest
from PIL import Image

from minigptv2.assistant import Answer, Assistant
from minigptv2.boxes import box_to_text
from minigptv2.checkpoints import save_pretrained
from minigptv2.cli import main
from minigptv2.errors import ConfigError
from minigptv2.eval import runner, shapes
from minigptv2.eval.benchmark import BenchmarkDataError, Item
from minigptv2.processor import Processor

HEADLINE = ("refer_acc50", "vqa_acc", "identify_acc", "detection_f1", "grounding_recall50")


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
    for key in HEADLINE:
        assert summary[key] == pytest.approx(1.0), key
        for part in ("seen", "unseen"):
            assert summary[f"{key}_{part}"] in (None, pytest.approx(1.0)), (key, part)
    assert summary["n"] == {task: 3 for task in shapes.MAX_NEW_TOKENS}
    for task in ("refer", "vqa", "identify", "detection"):  # per question
        assert summary["n_seen"][task] + summary["n_unseen"][task] == 3
    objects = sum(len(item.target["boxes"]) for item in items if item.task == "grounding")
    assert summary["n_seen"]["grounding"] + summary["n_unseen"]["grounding"] == objects
    assert summary["n_unseen"]["grounding"] >= 3  # every test scene holds a held-out object
    assert all(count == 0 for count in summary["unparsable"].values())


# Hand-made scene: a held-out blue triangle, a red square and a red circle (seen pairs).
OBJECTS = [
    {"shape": "triangle", "color": "blue", "box": (10, 10, 30, 30)},
    {"shape": "square", "color": "red", "box": (50, 10, 70, 30)},
    {"shape": "circle", "color": "red", "box": (50, 60, 70, 80)},
]
IMAGE = Image.new("RGB", (112, 112))


def item(task: str, **target) -> Item:
    target = {"objects": OBJECTS, "answer": "", "language": "en", **target}
    return Item(f"{task}:0", task, IMAGE, "", target)


@pytest.mark.parametrize(
    ("task", "target", "unseen"),
    [
        ("refer", {"object": 0, "boxes": [OBJECTS[0]["box"]]}, True),
        ("refer", {"object": 1, "boxes": [OBJECTS[1]["box"]]}, False),
        ("identify", {"object": 0, "boxes": [OBJECTS[0]["box"]]}, True),
        ("identify", {"object": 2, "boxes": [OBJECTS[2]["box"]]}, False),
        ("vqa", {"question": "what color is the triangle?", "object": 0}, True),
        ("vqa", {"question": "what shape is the red object on the left?", "object": 1}, False),
        # A relation involves both objects: the landmark alone being held out is enough.
        ("vqa", {"question": "is the red square to the right of the blue triangle?",
                 "object": 1, "landmark": 0}, True),
        ("vqa", {"question": "is the red square above the red circle?",
                 "object": 1, "landmark": 2}, False),
        ("vqa", {"question": "how many shapes are there?", "named": [None, None]}, True),
        ("vqa", {"question": "how many red shapes are there?", "named": ["red", None]}, False),
        ("vqa", {"question": "how many blue shapes are there?", "named": ["blue", None]}, True),
        ("vqa", {"question": "how many triangles are there?", "named": [None, "triangle"]}, True),
        ("vqa", {"question": "how many circles are there?", "named": [None, "circle"]}, False),
        ("vqa", {"question": "how many green circles are there?",
                 "named": ["green", "circle"]}, True),
        ("vqa", {"question": "how many yellow squares are there?",
                 "named": ["yellow", "square"]}, False),
        # named, absent: still unseen
        ("vqa", {"question": "is there a green circle?", "named": ["green", "circle"]}, True),
        ("vqa", {"question": "is there a blue square?", "named": ["blue", "square"]}, False),
        ("vqa", {"question": "is there a blue triangle?", "named": ["blue", "triangle"]}, True),
        ("detection", {"boxes": [OBJECTS[1]["box"], OBJECTS[2]["box"]]}, False),
        ("detection", {"boxes": [OBJECTS[0]["box"], OBJECTS[2]["box"]]}, True),
    ],
)  # fmt: skip
def test_unseen_is_decided_by_the_target_objects(task, target, unseen):
    record = shapes.score(item(task, **target), "")
    assert record["unseen"] is unseen


def test_grounding_counts_held_out_objects_one_by_one():
    boxes = [obj["box"] for obj in OBJECTS]
    grounding = item("grounding", boxes=boxes)
    # The answer boxes the held-out triangle and the red circle, misses the red square.
    answer = " ".join(f"<p>x</p> {box_to_text(box, 112, 112)}" for box in (boxes[0], boxes[2]))
    record = shapes.score(grounding, answer)
    assert (record["true_positives"], record["targets"]) == (2, 3)
    assert (record["unseen_true_positives"], record["unseen_targets"]) == (1, 1)
    summary = shapes.summarise([record])
    assert summary["grounding_recall50"] == pytest.approx(2 / 3)
    assert summary["grounding_recall50_unseen"] == pytest.approx(1.0)
    assert summary["grounding_recall50_seen"] == pytest.approx(0.5)
    assert summary["n_unseen"]["grounding"] == 1 and summary["n_seen"]["grounding"] == 2


def test_summary_splits_every_headline_key_by_seen_and_unseen():
    def text(task: str, index: int, correct: bool, unseen: bool) -> dict:
        return {"key": f"{task}:{index}", "task": task, "parsed": True, "correct": correct,
                "unseen": unseen}  # fmt: skip

    def boxes(task: str, index: int, hits: int, predicted: int, targets: int, unseen: int,
              unseen_hits: int) -> dict:  # fmt: skip
        return {"key": f"{task}:{index}", "task": task, "parsed": True, "true_positives": hits,
                "predicted": predicted, "targets": targets, "unseen": unseen > 0,
                "unseen_targets": unseen, "unseen_true_positives": unseen_hits}  # fmt: skip

    records = [
        # refer: seen 1/1 right, unseen 1/3 right
        text("refer", 0, True, False),
        text("refer", 1, True, True),
        text("refer", 2, False, True),
        text("refer", 3, False, True),
        # vqa: seen 1/2, unseen 2/2
        text("vqa", 0, True, False),
        text("vqa", 1, False, False),
        text("vqa", 2, True, True),
        text("vqa", 3, True, True),
        # identify: only unseen questions, all wrong
        text("identify", 0, False, True),
        # detection: seen item 1 hit of 1 predicted, 1 target (F1 1); unseen items 1 hit,
        # 3 predicted, 3 targets (F1 1/3)
        boxes("detection", 0, 1, 1, 1, 0, 0),
        boxes("detection", 1, 1, 2, 2, 1, 1),
        boxes("detection", 2, 0, 1, 1, 1, 0),
        # grounding: 4 objects of which 2 held out; hits 1 held-out, 2 others
        boxes("grounding", 0, 2, 3, 2, 1, 1),
        boxes("grounding", 1, 1, 2, 2, 1, 0),
    ]
    summary = shapes.summarise(records)
    expected = {
        "refer_acc50": (2 / 4, 1.0, 1 / 3),
        "vqa_acc": (3 / 4, 0.5, 1.0),
        "identify_acc": (0.0, None, 0.0),
        "detection_f1": (2 * 2 / 8, 1.0, 2 * 1 / 6),
        "grounding_recall50": (3 / 4, 1.0, 0.5),
    }
    for key, (whole, seen, unseen) in expected.items():
        assert summary[key] == pytest.approx(whole), key
        assert summary[f"{key}_seen"] == (None if seen is None else pytest.approx(seen)), key
        assert summary[f"{key}_unseen"] == pytest.approx(unseen), key
    assert summary["n"] == {"refer": 4, "vqa": 4, "identify": 1, "detection": 3, "grounding": 2}
    assert summary["n_seen"] == {
        "refer": 1, "vqa": 2, "identify": 0, "detection": 1, "grounding": 2
    }  # fmt: skip
    assert summary["n_unseen"] == {
        "refer": 3, "vqa": 2, "identify": 1, "detection": 2, "grounding": 2
    }  # fmt: skip
    with pytest.raises(BenchmarkDataError, match="older minigptv2"):
        shapes.summarise([{"key": "refer:0", "task": "refer", "parsed": True, "correct": True}])


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
    for key in HEADLINE:
        assert 0.0 <= summary[key] <= 1.0
        for part in ("seen", "unseen"):  # None: no question of that task in the subset
            assert summary[f"{key}_{part}"] is None or 0.0 <= summary[f"{key}_{part}"] <= 1.0
    assert summary["n"]["refer"] == 2
    assert set(summary["n_seen"]) == set(summary["n_unseen"]) == set(summary["n"])


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


# -- Korean ---------------------------------------------------------------------------------------


def test_korean_items_ask_the_english_questions_in_korean():
    english, korean = shapes.items("test", 3), shapes.items("test", 3, "ko")
    assert [item.key for item in korean] == [item.key for item in english]
    for en, ko in zip(english, korean, strict=True):
        assert ko.image.tobytes() == en.image.tobytes()
        assert ko.target["language"] == "ko" and en.target["language"] == "en"
        assert ko.prompt.split()[0] == en.prompt.split()[0]  # the task token
        assert ko.prompt != en.prompt
        for key in ("objects", "boxes", "object", "kind", "named", "landmark"):
            assert ko.target.get(key) == en.target.get(key)
    # The same seen/unseen split, and the right answers score 1.
    records = [shapes.score(item, item.target["answer"]) for item in korean]
    assert [r["unseen"] for r in records] == [
        shapes.score(item, item.target["answer"])["unseen"] for item in english
    ]
    summary = shapes.summarise(records)
    for key in HEADLINE:
        assert summary[key] == pytest.approx(1.0), key


def test_korean_answers_are_scored_after_korean_normalisation():
    identify = Item("identify:0", "identify", IMAGE, "", {
        "objects": OBJECTS, "answer": "파란 삼각형", "language": "ko", "object": 0,
        "boxes": [OBJECTS[0]["box"]]})  # fmt: skip
    for answer in ("파란 삼각형", "파란삼각형", "파란 삼각형이에요.", "파란 삼각형입니다"):
        assert shapes.score(identify, answer)["correct"], answer
    for answer in ("빨간 삼각형", "파란 사각형", "blue triangle", ""):
        assert not shapes.score(identify, answer)["correct"], answer


def test_cli_in_korean_prints_the_english_keys(tiny_model, tokenizer, tmp_path, capsys):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    keys = {}
    for language in ("en", "ko"):
        args = ["eval", "--benchmark", "shapes", "--split", "test", "--json", "--limit", "1"]
        assert main([*args, "--language", language, "--model", str(folder)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["language"] == language
        keys[language] = set(summary)
        for key in HEADLINE:
            assert 0.0 <= summary[key] <= 1.0
    assert keys["ko"] == keys["en"]


def test_other_benchmarks_refuse_korean(tiny_model, tokenizer, tmp_path, capsys):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)
    args = ["eval", "--benchmark", "gqa", "--split", "testdev", "--language", "ko"]
    assert main([*args, "--model", str(folder)]) != 0
    assert "gqa is asked in en only, not 'ko'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="shapes is asked in en, ko only"):
        runner.get_benchmark("shapes", "test", "fr")
