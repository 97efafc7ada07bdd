import itertools
from pathlib import Path

import pytest

from minigptv2.errors import ConfigError
from minigptv2.train import config as train_config
from minigptv2.train.config import TrainConfig, load_train_config, resolve_precision


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_uses_bf16_only_where_the_hardware_has_it(monkeypatch, native, expected):
    monkeypatch.setattr(train_config, "native_bf16", lambda: native)
    assert resolve_precision("auto") == expected
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


def test_new_training_keys_load_from_yaml_with_overrides(tmp_path):
    path = tmp_path / "stage.yaml"
    path.write_text("model: tiny\neval_every: 100\nparallel: fsdp\n")
    config = load_train_config(path, ["eval_items=7", "eval_split=test"])
    assert (config.eval_every, config.eval_items, config.eval_split) == (100, 7, "test")
    assert config.parallel == "fsdp"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precision": "fp16"}, "precision 'fp16' is not one of"),
        ({"grad_accum": 0}, "grad_accum must be at least 1"),
        ({"eval_items": 0}, "eval_items must be at least 1"),
    ],
)
def test_invalid_values_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_shipped_config_loads(path):
    load_train_config(path)  # unknown keys and invalid values raise ConfigError


@pytest.mark.parametrize("folder", sorted({path.parent for path in CONFIGS}), ids=lambda p: p.name)
def test_each_numbered_stage_starts_from_the_previous_stages_export(folder):
    stages = sorted(folder.glob("stage*.yaml"), key=lambda path: int(path.stem[len("stage") :]))
    configs = [load_train_config(path) for path in stages]
    for previous, stage in itertools.pairwise(configs):
        assert stage.init_from == f"{previous.out_dir}/model"
