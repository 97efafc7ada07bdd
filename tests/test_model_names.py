"""Shipped models by name (``config.SHIPPED_MODELS``, ``resolve_model``): ``Assistant.load``,
every ``--model`` and ``init_from`` read the same registry. ``shapes-ko`` is not built yet, so the
``shapes_ko`` fixture registers a tiny stand-in with an English + Korean tokenizer."""

from __future__ import annotations

import argparse

import pytest
import torch

from minigptv2.assistant import Assistant
from minigptv2.cli import build_parser, main
from minigptv2.config import (
    DEFAULT_MODEL,
    SHIPPED_ALIAS,
    SHIPPED_MODEL,
    SHIPPED_MODELS,
    ShippedModel,
    resolve_model,
)
from minigptv2.data.check import model_processor
from minigptv2.errors import CheckpointError, ConfigError
from minigptv2.train.config import init_folder


@pytest.fixture
def not_installed(tmp_path, monkeypatch):
    """``shapes-ko`` pointing at a folder that does not exist, as on a fresh install today."""
    entry = ShippedModel(tmp_path / "assets" / "shapes-ko", "stand-in", "train it: HOW")
    monkeypatch.setitem(SHIPPED_MODELS, "shapes-ko", entry)
    return entry


def test_names_resolve_to_folders_inside_the_package(shapes_ko):
    assert resolve_model(None) == SHIPPED_MODEL == SHIPPED_MODELS[DEFAULT_MODEL].folder
    assert resolve_model("shapes") == resolve_model(SHIPPED_ALIAS) == SHIPPED_MODEL
    assert SHIPPED_MODEL.parts[-2:] == ("assets", "shapes")
    assert resolve_model("shapes-ko") == shapes_ko


def test_the_real_registry_names_the_korean_asset_folder():
    assert SHIPPED_MODELS["shapes-ko"].folder == SHIPPED_MODEL.parent / "shapes-ko"
    assert "scripts/train_shapes.sh shapes-ko" in SHIPPED_MODELS["shapes-ko"].if_missing


def test_an_existing_path_wins_over_a_name_and_paths_work_as_before(
    shapes_ko, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes-ko").mkdir()
    assert resolve_model("shapes-ko") == tmp_path.joinpath("shapes-ko").relative_to(tmp_path)
    assert resolve_model(tmp_path / "elsewhere" / "model") == tmp_path / "elsewhere" / "model"
    assert resolve_model(str(shapes_ko)) == shapes_ko


def test_a_missing_shipped_model_says_it_is_not_installed_and_how_to_train_it(not_installed):
    with pytest.raises(CheckpointError) as caught:
        resolve_model("shapes-ko")
    message = str(caught.value)
    assert f"'shapes-ko' is missing from {not_installed.folder}: train it: HOW" in message
    assert "Known names: shapes (" in message and "shapes-ko (stand-in; not installed)" in message
    with pytest.raises(CheckpointError, match="is not the name of a shipped model; known names"):
        resolve_model("shapes-kr")


def test_the_cli_error_for_the_real_missing_asset_names_the_training_script(capsys):
    if (SHIPPED_MODELS["shapes-ko"].folder / "config.json").is_file():
        pytest.skip("shapes-ko is installed")
    assert main(["generate", "--model", "shapes-ko", "--prompt", "[vqa] 몇 개?"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: the shipped model 'shapes-ko' is missing from")
    assert "scripts/train_shapes.sh shapes-ko" in error and "Traceback" not in error


def test_assistant_loads_a_shipped_model_by_name(shapes_ko):
    by_name, by_path = Assistant.load("shapes-ko"), Assistant.load(shapes_ko)
    mine, theirs = by_name.model.state_dict(), by_path.model.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key])
    assert by_name.processor.tokenizer.vocab_size == by_path.processor.tokenizer.vocab_size


def test_every_command_that_takes_a_model_takes_a_name(shapes_ko, monkeypatch, capsys):
    loaded = []
    real_load = Assistant.load.__func__

    def recorded(cls, model=None, **kwargs):
        loaded.append(model)
        return real_load(cls, model, **kwargs)

    monkeypatch.setattr(Assistant, "load", classmethod(recorded))
    args = ["--model", "shapes-ko", "--max-new-tokens", "2"]
    assert main(["generate", "--prompt", "[vqa] 몇 개?", *args]) == 0
    assert main(["eval", "--limit", "1", "--batch-size", "8", "--json", *args]) == 0
    assert loaded == ["shapes-ko", "shapes-ko"]
    # serve --api / --ui load through the same load_assistant; check they accept the name.
    for command in (["serve", "--api"], ["serve", "--ui"], ["chat"], ["demo"]):
        assert build_parser().parse_args([*command, "--model", "shapes-ko"]).model == "shapes-ko"
    capsys.readouterr()
    # The API names the served model after it.
    from minigptv2.serve.api import model_id

    parse = build_parser().parse_args
    assert model_id(parse(["serve", "--api", "--model", "shapes-ko"])) == "minigptv2-shapes-ko"
    assert model_id(parse(["serve", "--api", "--model", "shipped"])) == "minigptv2-shapes"
    assert model_id(parse(["serve", "--api"])) == "minigptv2-shapes"


def test_help_states_the_name_rule():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for command in ("generate", "chat", "demo", "eval", "serve"):
        text = " ".join(commands.choices[command].format_help().split())
        assert "shapes, shapes-ko (shipped = shapes)" in text, command
        assert "an existing folder of that name wins over the name" in text, command


def test_init_from_takes_names_and_says_when_one_is_not_installed(not_installed):
    assert init_folder("shipped") == init_folder("shapes") == SHIPPED_MODEL
    with pytest.raises(ConfigError, match=r"init_from shapes-ko: .* train it: HOW"):
        init_folder("shapes-ko")
    with pytest.raises(ConfigError, match="is not a model folder"):  # a path: as before
        init_folder("runs/no-such-stage/model")


def test_init_from_and_data_check_find_a_registered_model(shapes_ko):
    assert init_folder("shapes-ko") == shapes_ko
    assert model_processor("shapes-ko").tokenizer.path.parent == shapes_ko
