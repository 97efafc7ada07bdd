"""``minigptv2 convert`` end to end, through the real CLI entry point."""

import json
import os
import shutil

import pytest
import torch
from checkpoint_helpers import logits_of, sample_inputs
from PIL import Image

from minigptv2.assistant import Assistant
from minigptv2.checkpoints.pretrained import load_pretrained
from minigptv2.cli import main


def released_args(released, *extra):
    return [
        "convert",
        "--eva",
        str(released.eva),
        "--llama",
        str(released.llama),
        "--checkpoint",
        str(released.checkpoint),
        "--image-size",
        "112",
        *extra,
    ]


def test_convert_writes_a_full_folder(released, loaded, tmp_path, capsys):
    out = tmp_path / "minigptv2"
    assert main([*released_args(released), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "deliberately dropped" in printed and "blocks.2.*" in printed and f"wrote {out}" in printed
    )
    meta = json.loads((out / "config.json").read_text())
    assert (
        meta["checkpoint_format"]["contents"] == "full"
        and meta["checkpoint_format"]["base"] is None
    )
    model, tokenizer = loaded
    converted, _ = load_pretrained(out)
    inputs = sample_inputs(model, tokenizer)
    assert torch.equal(logits_of(converted, inputs), logits_of(model, inputs))


def test_convert_merge_lora(released, loaded, tmp_path):
    out = tmp_path / "merged"
    assert main([*released_args(released), "--out", str(out), "--merge-lora"]) == 0
    assert json.loads((out / "config.json").read_text())["lora"] is None
    model, tokenizer = loaded
    merged, _ = load_pretrained(out)
    inputs = sample_inputs(model, tokenizer)
    torch.testing.assert_close(
        logits_of(merged, inputs), logits_of(model, inputs), atol=1e-4, rtol=1e-4
    )


def test_convert_checkpoint_onto_base_folder(released, loaded, tmp_path):
    base = tmp_path / "base"
    args = ["convert", "--eva", str(released.eva), "--llama", str(released.llama)]
    assert main([*args, "--image-size", "112", "--out", str(base)]) == 0
    out = tmp_path / "applied"
    command = ["convert", "--checkpoint", str(released.checkpoint), "--base", str(base)]
    assert main([*command, "--out", str(out)]) == 0
    model, tokenizer = loaded
    applied, _ = load_pretrained(out)
    inputs = sample_inputs(model, tokenizer)
    assert torch.equal(logits_of(applied, inputs), logits_of(model, inputs))


@pytest.mark.parametrize("where", ["checkpoint", "eva", "base"])
def test_convert_refuses_a_pickle_that_runs_code(released, tmp_path, capsys, where):
    marker = tmp_path / "MARKER"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {"llama_proj.bias": torch.zeros(1)}, "x": RunsCode()}, evil)
    if where == "base":
        base = tmp_path / "base"
        assert main([*released_args(released), "--out", str(base)]) == 0
        args = ["convert", "--checkpoint", str(evil), "--base", str(base)]
    else:
        args = released_args(released)
        args[args.index(f"--{where}") + 1] = str(evil)
    code = main([*args, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code != 0
    assert error.startswith("error: refused to load") and "would run arbitrary code" in error
    assert "Traceback" not in error
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_no_strict_prints_the_report(released, tmp_path, capsys):
    files = tmp_path / "files"
    shutil.copytree(released.eva.parent, files)
    checkpoint = files / released.checkpoint.name
    state = torch.load(checkpoint, weights_only=True)
    del state["model"]["llama_proj.bias"]
    torch.save(state, checkpoint)
    args = released_args(released)
    args[args.index("--checkpoint") + 1] = str(checkpoint)

    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    error = capsys.readouterr().err
    assert "error: cannot load the released files" in error and "projector.linear.bias" in error
    assert "--no-strict" in error and not (tmp_path / "strict").exists()

    assert main([*args, "--out", str(tmp_path / "relaxed"), "--no-strict"]) == 0
    error = capsys.readouterr().err
    assert "missing" in error and "projector.linear.bias" in error
    assert "no llama_proj weights" in error
    assert (tmp_path / "relaxed" / "model.safetensors").exists()


def test_convert_argument_combinations(released, tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    assert main(["convert", "--eva", str(released.eva), *out]) == 2
    assert "pass --eva FILE --llama DIR" in capsys.readouterr().err
    assert main(["convert", "--base", str(tmp_path), *out]) == 2
    assert "--base needs --checkpoint" in capsys.readouterr().err
    assert main([*released_args(released), "--merge-lora", "--trainable-only", *out]) == 2
    assert "drop --trainable-only" in capsys.readouterr().err


def test_generate_takes_converts_image_size_and_answers_as_the_converted_folder(
    released, tmp_path, capsys
):
    # The stand-in EVA is pretrained at 56 px; at 112 px the model reads 16 image tokens, not
    # the 256 of the 448-px default, so ignoring --image-size would change every answer.
    out = tmp_path / "converted"
    assert main([*released_args(released), "--out", str(out)]) == 0
    picture = tmp_path / "scene.png"
    Image.new("RGB", (160, 120), (30, 60, 200)).save(picture)
    ask = ["--image", str(picture), "--prompt", "[vqa] what is it?", "--max-new-tokens", "6"]
    capsys.readouterr()
    assert main(["generate", "--model", str(out), *ask, "--json"]) == 0
    from_folder = capsys.readouterr().out
    files = released_args(released)[1:]  # --eva … --image-size 112, without "convert"
    assert main(["generate", *files, *ask, "--json"]) == 0
    assert capsys.readouterr().out == from_folder
    assistant = Assistant.load(
        eva=released.eva, llama=released.llama, checkpoint=released.checkpoint, image_size=112
    )
    assert assistant.model.config.vision.image_size == 112


def test_image_size_is_refused_for_a_saved_folder(released, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main([*released_args(released), "--out", str(out)]) == 0
    picture = tmp_path / "scene.png"
    Image.new("RGB", (160, 120)).save(picture)
    command = ["generate", "--model", str(out), "--image", str(picture), "--prompt", "hi"]
    assert main([*command, "--image-size", "224"]) == 2
    assert "--image-size and --vision-heads apply to the released files" in capsys.readouterr().err
