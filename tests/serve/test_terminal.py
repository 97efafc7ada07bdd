import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from minigptv2.checkpoints import save_pretrained
from minigptv2.cli import main
from minigptv2.data.shapes import make_sample
from minigptv2.serve.terminal import (
    DEMO_MIN_OBJECTS,
    DEMO_TASKS,
    demo_questions,
    demo_scene,
    expand_shortcut,
    judge,
    printable,
)
from minigptv2.tasks import TASKS

SCRIPT = Path(__file__).parents[2] / "scripts" / "make_released_fixture.py"


@pytest.fixture
def saved_model(tmp_path, tiny_model, tokenizer):
    return save_pretrained(tiny_model, tokenizer, tmp_path / "model", full=True)


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "scene.png"
    Image.new("RGB", (160, 120), (30, 60, 200)).save(path)
    return path


def test_generate_json_one_shot(saved_model, picture, capsys):
    code = main(
        ["generate", "--model", str(saved_model), "--image", str(picture),
         "--prompt", "[refer] the blue square", "--json", "--max-new-tokens", "5"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "grounding"}
    assert isinstance(result["text"], str) and isinstance(result["grounding"], list)


def test_generate_with_int8_weights(saved_model, picture, capsys, monkeypatch):
    from minigptv2.assistant import Assistant

    loads = []
    real_load = Assistant.load.__func__

    def recorded(cls, *args, **kwargs):
        loads.append(kwargs.get("quantize"))
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Assistant, "load", classmethod(recorded))
    args = ["generate", "--model", str(saved_model), "--image", str(picture), "--prompt", "hi"]
    assert main([*args, "--int8", "--json", "--max-new-tokens", "3"]) == 0
    assert loads == ["int8"]
    assert set(json.loads(capsys.readouterr().out)) == {"text", "grounding"}


def test_generate_with_int4_weights_and_a_bad_quantization(saved_model, picture, capsys):
    args = ["generate", "--model", str(saved_model), "--image", str(picture), "--prompt", "hi"]
    assert main([*args, "--quantize", "int4", "--json", "--max-new-tokens", "3"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"text", "grounding"}
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--quantize", "int3"])
    assert exit_info.value.code == 2
    assert "error: argument --quantize: invalid choice: 'int3'" in capsys.readouterr().err
    # --int8 (the old spelling) beside a different --quantize is refused in one line.
    assert main([*args, "--int8", "--quantize", "int4"]) != 0
    assert "error: --int8 and --quantize int4 disagree" in capsys.readouterr().err


def test_generate_draws_boxes(saved_model, picture, tmp_path):
    out = tmp_path / "drawn.png"
    args = ["generate", "--model", str(saved_model), "--image", str(picture), "--prompt", "hi"]
    assert main([*args, "--max-new-tokens", "3", "--draw", str(out)]) == 0
    assert Image.open(out).size == (448, 336)  # small images are enlarged for legibility


def test_bad_image_is_an_error_message_not_a_traceback(saved_model, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = main(["generate", "--model", str(saved_model), "--image", str(broken), "--prompt", "x"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_unknown_task_is_an_error_message(saved_model, picture, capsys):
    args = ["generate", "--model", str(saved_model), "--image", str(picture)]
    assert main([*args, "--prompt", "[segment] the cat"]) == 2
    assert "[refer]" in capsys.readouterr().err


def test_a_model_folder_with_a_broken_tokenizer_is_an_error_message(saved_model, capsys):
    (saved_model / "tokenizer.model").write_bytes(b"<html>not found</html>")
    assert main(["generate", "--model", str(saved_model), "--prompt", "[vqa] hi"]) == 2
    assert "is not a SentencePiece model" in capsys.readouterr().err


def test_prompt_bytes_that_are_not_utf8_are_an_error_message(saved_model, capsys):
    # What Python makes of `--prompt $'[vqa] \xff\xfe?'`: the bytes become lone surrogates.
    prompt = b"[vqa] \xff\xfe?".decode("utf-8", "surrogateescape")
    assert main(["generate", "--model", str(saved_model), "--prompt", prompt]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "UTF-8" in err and "Traceback" not in err


def test_chat_answers_from_the_three_released_files(tmp_path, picture, monkeypatch, capsys):
    # The three files laid out exactly as the released ones, written by the project's script.
    released = tmp_path / "released"
    subprocess.run([sys.executable, str(SCRIPT), str(released)], check=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("/vqa what colour is it?\n/quit\n"))
    code = main(
        ["chat", "--eva", str(released / "eva_vit_g.pth"),
         "--llama", str(released / "Llama-2-7b-chat-hf"),
         "--checkpoint", str(released / "minigptv2_checkpoint.pth"),
         "--image", str(picture), "--max-new-tokens", "4", "--save-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert "assistant: " in capsys.readouterr().out


def test_chat_streams_each_turn_and_keeps_the_history(saved_model, picture, monkeypatch, capsys):
    from minigptv2.assistant import Assistant, GenerationConfig
    from minigptv2.prompts import Turn

    typed = "/vqa what colour is it?\n/refer the blue square\n/reset\n/vqa what colour is it?\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed + "/quit\n"))
    args = ["chat", "--model", str(saved_model), "--image", str(picture)]
    assert main([*args, "--max-new-tokens", "6", "--save-dir", str(picture.parent)]) == 0
    printed = [
        line.removeprefix("assistant: ")
        # A random model's answer may hold "\r" or ESC: the terminal prints them escaped.
        for line in capsys.readouterr().out.split("\n")
        if line.startswith("assistant: ")
    ]
    assistant = Assistant.load(saved_model)
    config = GenerationConfig(6)
    first = assistant.chat(picture, "[vqa] what colour is it?", config=config).text
    second = assistant.chat(
        picture, "[refer] the blue square", [Turn("[vqa] what colour is it?", first)], config
    ).text
    expected = [printable(first), printable(second), printable(first)]
    assert printed == expected  # /reset started the conversation again


def test_printable_escapes_control_characters_but_keeps_text():
    assert printable("a red\tsquare\nnext") == "a red\tsquare\nnext"
    assert printable("é ✓ {<1><2><3><4>}") == "é ✓ {<1><2><3><4>}"
    assert printable("\x1b[2Jgone\rback") == "\\x1b[2Jgone\\rback"


def test_demo_prints_each_answer_beside_the_truth_and_draws_into_the_out_folder(
    saved_model, tmp_path, capsys
):
    out = tmp_path / "new" / "folder"
    assert (
        main(["demo", "--model", str(saved_model), "--out", str(out), "--max-new-tokens", "4"]) == 0
    )
    printed = capsys.readouterr().out
    for task in TASKS:
        assert f"[{task}]" in printed
    index, samples = demo_scene()
    assert f"test-split scene {index}:" in printed
    for sample in samples:  # every question, its true answer and a verdict
        question, truth = sample.turns[0].user, sample.turns[0].assistant
        assert f"{question}\n  model: " in printed
        assert f"\n  truth: {truth}\n  " in printed
    verdicts = [line for line in printed.splitlines() if line.startswith(("  right", "  wrong"))]
    assert len(verdicts) == len(DEMO_TASKS)
    right = sum(line.startswith("  right") for line in verdicts)
    assert f"{right} of {len(DEMO_TASKS)} right" in printed
    scene = samples[0].image
    for name in ("demo.png", "demo_refer.png"):
        with Image.open(out / name) as drawn:  # small images are drawn enlarged, never cropped
            assert (
                drawn.width >= scene.width
                and drawn.width * scene.height == drawn.height * scene.width
            )


def test_demo_scene_is_chosen_by_its_written_rule():
    index, samples = demo_scene()
    assert [sample.task for sample in samples] == list(DEMO_TASKS)
    objects = samples[0].targets["objects"]
    assert len(objects) >= DEMO_MIN_OBJECTS
    assert all(sample.targets["objects"] == objects for sample in samples)
    for earlier in range(index):  # no earlier test scene satisfies the rule
        questions = demo_questions(earlier)
        first = questions[0].targets["objects"]
        same = all(question.targets["objects"] == first for question in questions)
        assert not (same and len(first) >= DEMO_MIN_OBJECTS)


def test_demo_judges_answers_with_the_benchmark_scorers():
    _, samples = demo_scene()
    for sample in samples:  # the true answer is right
        assert judge(sample, sample.turns[0].assistant)[0], sample.task
    by_task = dict(zip(DEMO_TASKS, samples, strict=True))
    assert judge(by_task["refer"], "{<0><0><1><1>}") == (False, "IoU 0.00 < 0.5")
    assert judge(by_task["refer"], "on the left") == (False, "no box in the answer")
    assert not judge(by_task["vqa"], "purple")[0]
    assert not judge(by_task["caption"], "nothing")[0]
    truth = by_task["detection"].turns[0].assistant
    boxes = len(by_task["detection"].targets["boxes"])
    extra = truth + "<delim>{<0><0><2><2>}"  # every box found plus a wrong one: not right
    assert judge(by_task["detection"], extra) == (
        False, f"{boxes} of {boxes} boxes matched at IoU >= 0.5, 1 extra"
    )  # fmt: skip
    grounding = by_task["grounding"]
    assert judge(grounding, grounding.turns[0].assistant + " {<0><0><2><2>}")[0]  # recall


def test_demo_seed_picks_another_test_scene(saved_model, tmp_path, capsys):
    args = ["demo", "--model", str(saved_model), "--out", str(tmp_path), "--seed", "5"]
    assert main([*args, "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("test-split scene 5\n")
    for sample in demo_questions(5):
        assert f"  truth: {sample.turns[0].assistant}\n" in printed


def test_demo_draws_into_its_own_folder_by_default(saved_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--model", str(saved_model), "--max-new-tokens", "2"]) == 0
    assert sorted(path.name for path in (tmp_path / "demo").iterdir()) == [
        "demo.png",
        "demo_refer.png",
    ]
    assert not (tmp_path / "demo.png").exists()
    assert f"grounded caption drawn in {Path('demo', 'demo.png')}" in capsys.readouterr().out


def test_demo_refuses_a_file_as_out_folder(saved_model, tmp_path, capsys):
    afile = tmp_path / "demo.png"
    afile.write_bytes(b"keep me")
    assert main(["demo", "--model", str(saved_model), "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert afile.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("/refer the red circle", "[refer] the red circle"),
        ("/grounding", "[grounding]"),
        ("/unknown x", "/unknown x"),
        ("plain question", "plain question"),
    ],
)
def test_task_shortcuts(typed, sent):
    assert expand_shortcut(typed) == sent


def test_generate_draws_into_a_folder_that_does_not_exist_yet(saved_model, picture, tmp_path):
    out = tmp_path / "new" / "folder" / "drawn.png"
    args = ["generate", "--model", str(saved_model), "--image", str(picture), "--prompt", "hi"]
    assert main([*args, "--max-new-tokens", "3", "--draw", str(out)]) == 0
    assert Image.open(out).size == (448, 336)


def test_chat_saves_into_a_new_folder_and_keeps_the_session(tmp_path, monkeypatch, capsys):
    # The shipped model grounds a Shapes scene, so the first answer has boxes to save.
    scene = tmp_path / "scene.png"
    make_sample(7, "test", task="refer").image.save(scene)
    save_dir = tmp_path / "new" / "folder"
    typed = "/grounding describe this image in detail\n/vqa how many shapes are there?\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    args = ["chat", "--image", str(scene), "--max-new-tokens", "48", "--save-dir", str(save_dir)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"(boxes drawn in {save_dir / 'minigptv2_chat_1.png'})" in printed
    assert Image.open(save_dir / "minigptv2_chat_1.png").size == (448, 448)
    assert printed.count("assistant: ") == 2  # the second question was still answered


def test_chat_that_cannot_save_says_so_and_goes_on(tmp_path, monkeypatch, capsys):
    scene = tmp_path / "scene.png"
    make_sample(7, "test", task="refer").image.save(scene)
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # --save-dir under a file: no folder can be made there
    typed = "/grounding describe this image in detail\n/vqa how many shapes are there?\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    args = ["chat", "--image", str(scene), "--max-new-tokens", "48"]
    assert main([*args, "--save-dir", str(blocker / "drawn")]) == 0
    printed = capsys.readouterr().out
    assert "error: cannot save the drawn answer to" in printed
    assert printed.count("assistant: ") == 2
