import json

import numpy as np
import pytest
from PIL import Image

from minigptv2.train.plot import NothingToPlot, plot_curves, read_curves, smooth

ORANGE = (255, 127, 14)  # matplotlib's tab:orange, the learning-rate line


def write_log(path, records, torn_tail: bool = False):
    text = "".join(json.dumps(record) + "\n" for record in records)
    path.write_text(text + ('{"step": 9, "lo' if torn_tail else ""))
    return path


def training_records(steps):
    return [{"step": s, "loss": 5.0 / s, "lr": 1e-3 * s / len(steps)} for s in steps]


def pixels_near(image: Image.Image, colour, tolerance: int = 30) -> int:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= tolerance).sum())


def test_the_plot_is_a_png_of_the_stated_size_with_both_curves(tmp_path):
    log = write_log(tmp_path / "metrics.jsonl", training_records(range(1, 21)))
    target = plot_curves(log, tmp_path / "curves.png")
    with Image.open(target) as image:
        assert image.format == "PNG"
        assert image.size == (800, 600)
        assert pixels_near(image, ORANGE) > 200  # the learning-rate line was drawn
    assert not list(tmp_path.glob(".*partial"))


def test_skipped_steps_resumed_duplicates_and_a_torn_line_are_handled(tmp_path):
    records = training_records(range(1, 7))
    records[2] = {"step": 3, "lr": 1e-4, "skipped": "loss is nan"}
    # A resumed run re-logs steps 5 and 6; its records replace the first attempt's.
    records += [{"step": 5, "loss": 0.25, "lr": 1e-4}, {"step": 6, "loss": 0.125, "lr": 1e-4}]
    records.append({"step": 6, "eval": {"vqa_acc": 0.5, "n": {"vqa": 4}}})
    log = write_log(tmp_path / "metrics.jsonl", records, torn_tail=True)
    curves = read_curves(log)
    assert curves.steps == [1, 2, 4, 5, 6]
    assert curves.skipped == [3]
    assert curves.losses[-2:] == [0.25, 0.125]
    assert curves.evals == {"vqa_acc": [(6, 0.5)]}  # nested counts are not curves
    with Image.open(plot_curves(log, tmp_path / "curves.png")) as image:
        assert image.size == (800, 600)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "logged no step yet"),
        ([{"step": 1, "lr": 1e-3, "skipped": "loss is nan"}], "1 step\\(s\\) skipped"),
    ],
)
def test_a_log_without_losses_says_why_there_is_no_plot(tmp_path, records, message):
    log = write_log(tmp_path / "metrics.jsonl", records)
    with pytest.raises(NothingToPlot, match=message):
        plot_curves(log, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_a_missing_log_names_the_file(tmp_path):
    with pytest.raises(NothingToPlot, match=r"no metrics log at .*metrics\.jsonl"):
        plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png")


def test_smoothing_is_bias_corrected_and_follows_the_data():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    smoothed = smooth([4.0] * 5 + [0.0] * 50)
    assert smoothed[4] == pytest.approx(4.0)
    assert 0.0 < smoothed[10] < 4.0 and smoothed[-1] < 0.05
