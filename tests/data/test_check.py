"""The ``minigptv2 data`` contract: ``check`` reports every bad row by line; ``shapes`` writes
a dataset that ``check`` accepts and that the ``custom`` source reads back."""

import json

import numpy as np
from PIL import Image

from minigptv2.boxes import parse_box
from minigptv2.cli import main
from minigptv2.data.check import check_file
from minigptv2.data.custom import CustomDataset
from minigptv2.data.export import write_shapes
from minigptv2.data.shapes import make_sample


def good(image="img.png", answer="{<1><2><3><4>}"):
    return json.dumps(
        {"image": image, "conversation": [{"user": "[refer] the cat", "assistant": answer}]}
    )


def test_check_reports_every_bad_row_with_its_line_number(tmp_path, capsys):
    Image.new("RGB", (64, 32)).save(tmp_path / "img.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    rows = [
        good(),  # 1 ok
        good(image="missing.png"),  # 2 missing image
        "{not json",  # 3 malformed JSON
        "",  # 4 blank: ignored
        good(image="broken.png"),  # 5 unreadable image
        good(answer="{<1><2><300><4>}"),  # 6 box outside the image
        json.dumps({"image": "img.png", "conversation": [{"user": "[find] x", "assistant": "y"}]}),
        good(),  # 8 ok
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + "\n")

    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [f"line {n}" for n in (2, 3, 5, 6, 7)]
    assert "image not found" in out[0]
    assert "not valid JSON" in out[1]
    assert "unreadable image" in out[2]
    assert "outside" in out[3]
    assert "unknown task identifier '[find]'" in out[4]

    report = check_file(path)
    assert report.rows == 7 and len(report.bad) == 5


def test_check_exits_0_on_a_valid_file_and_2_on_a_missing_one(tmp_path, capsys):
    Image.new("RGB", (64, 32)).save(tmp_path / "img.png")
    (tmp_path / "data.jsonl").write_text(good() + "\n" + good() + "\n")
    assert main(["data", "check", str(tmp_path / "data.jsonl")]) == 0
    assert "2 rows, all valid" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "other.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_shapes_writes_a_valid_custom_dataset_matching_the_generator(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert main(["data", "shapes", "--out", str(out), "--n", "12", "--seed", "3"]) == 0
    path = out / "data.jsonl"
    assert len(list((out / "images").glob("*.png"))) == 12
    assert main(["data", "check", str(path)]) == 0

    dataset = CustomDataset(path)
    assert len(dataset) == 12
    checked_boxes = 0
    for number in range(12):
        expected = make_sample(3 * 10**9 + number, "train")
        sample = dataset[number]
        assert sample.turns == expected.turns and sample.task == expected.task
        # PNG is lossless: the written image is the rendered one, pixel for pixel.
        assert np.array_equal(np.asarray(sample.image), np.asarray(expected.image))
        if expected.task in ("refer", "identify"):  # the box decodes to the object's, to a bin
            turn = sample.turns[0]
            width, height = sample.image.size
            box = parse_box(
                turn.assistant if expected.task == "refer" else turn.user, width, height
            )
            true_box = expected.targets["boxes"][0]
            for value, true, size in zip(box, true_box, (width, height) * 2, strict=True):
                assert true - size / 100 <= value <= true
            checked_boxes += 1
    assert checked_boxes > 0


def test_shapes_is_deterministic_and_seeds_differ(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert (
            main(["data", "shapes", "--out", str(tmp_path / name), "--n", "4", "--seed", str(seed)])
            == 0
        )
    text = {name: (tmp_path / name / "data.jsonl").read_text() for name in "abc"}
    assert text["a"] == text["b"] != text["c"]


def test_the_command_keeps_the_contract_in_a_fresh_process(tmp_path):
    """``python -m minigptv2 data check``: exit code 1 and only ``line N:`` lines on stdout."""
    import subprocess
    import sys
    from pathlib import Path

    path = write_shapes(tmp_path, 3, seed=0)
    with path.open("a") as handle:
        handle.write('{"image": "images/none.png", "conversation": []}\n{oops\n')
    result = subprocess.run(
        [sys.executable, "-m", "minigptv2", "data", "check", str(path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["line 4", "line 5"]


def test_check_reports_rows_training_would_skip_as_too_long(tmp_path, capsys):
    Image.new("RGB", (64, 32)).save(tmp_path / "img.png")
    essay = " ".join(["word"] * 2000)  # far over the shipped model's max_txt_len of 256 tokens
    rows = [good(), good(answer=essay), good(), json.dumps({"image": None, "conversation": [
        {"user": essay, "assistant": "ok"}]})]  # fmt: skip
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + "\n")
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["line 2", "line 4"]
    assert "training would skip this row: the answers take" in out[0]
    assert "over max_txt_len 256" in out[0]
    assert "-token context limit" in out[1]  # a prompt too long for the context


def test_check_measures_rows_with_the_model_named(tmp_path, capsys, tokenizer, tiny_config):
    from minigptv2.checkpoints import save_pretrained
    from minigptv2.model import MiniGPTv2

    # A model whose answers may be at most 8 tokens: a row the shipped model takes is too long.
    model = save_pretrained(
        MiniGPTv2(tiny_config.replace(max_txt_len=8)), tokenizer, tmp_path / "model", full=True
    )
    Image.new("RGB", (64, 32)).save(tmp_path / "img.png")
    path = tmp_path / "data.jsonl"
    path.write_text(good(answer="a red circle to the left of the blue square") + "\n")
    assert main(["data", "check", str(path)]) == 0
    assert main(["data", "check", str(path), "--model", str(model)]) == 1
    assert "line 1: training would skip this row" in capsys.readouterr().out
