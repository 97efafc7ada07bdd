"""The ``paper`` source: the stage configs' datasets under one data root."""

import re
from collections import Counter

import pytest
from data_fixtures import image_bytes, write_image, write_json, write_tar

from minigptv2.data.paper import DATASETS, paper_mixture
from minigptv2.errors import ConfigError, DataError
from minigptv2.train.config import DataConfig, load_train_config
from minigptv2.train.data import build_mixture


@pytest.fixture
def root(tmp_path):
    write_json(
        tmp_path / "gqa/train_balanced_questions.json",
        [{"image": "1.jpg", "question": "Is it red?", "answer": "yes"}],
    )
    write_image(tmp_path / "gqa/images/1.jpg", (10, 10))
    write_json(
        tmp_path / "unnatural_instructions/filtered_unnatural_instruction.json",
        [
            {
                "instances": [
                    {"instruction_with_input": "Say hi", "constraints": None, "output": "hi"}
                ]
            }
        ],
    )
    write_tar(tmp_path / "cc3m/0.tar", {"0.jpg": image_bytes((8, 8)), "0.txt": b"a cat"})
    return tmp_path


def test_a_mixture_reads_each_named_dataset_from_its_folder(root):
    config = DataConfig(
        source="paper", path=str(root), mix={"gqa": 2, "unnatural_instruction": 1, "cc3m": 1}
    )
    mixture = build_mixture(config, seed=4)
    sources = Counter(mixture[(mixture.choose(n), n)].source for n in range(400))
    assert set(sources) == {"gqa", "unnatural_instruction", "cc3m"}
    assert sources["gqa"] > sources["cc3m"]  # ratio 2 against 1


def test_bad_configs_are_clear_errors(root):
    with pytest.raises(ConfigError, match=r"needs data\.path"):
        paper_mixture(None, {"gqa": 1}, 0)
    with pytest.raises(ConfigError, match="unknown datasets"):
        paper_mixture(root, {"gqa": 1, "refcoco_typo": 1}, 0)
    with pytest.raises(ConfigError, match="data root not found"):
        paper_mixture(root / "nope", {"gqa": 1}, 0)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_missing_dataset_names_the_file_it_looked_for(tmp_path, name):
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        DATASETS[name](tmp_path)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_paper_stage_configs_load_and_name_known_datasets(stage):
    config = load_train_config(f"configs/paper/stage{stage}.yaml")
    assert config.data.source == "paper"
    assert set(config.data.mix) <= set(DATASETS)
    global_batch = {1: 96, 2: 64, 3: 24}[stage]
    processes = {1: 8, 2: 4, 3: 4}[stage]
    assert config.batch_size * config.grad_accum * processes == global_batch
    if stage == 3:  # the released config's ratios (spec §5.2)
        assert sum(config.data.mix.values()) == 730 and config.data.mix["llava_reason"] == 80
        assert config.steps == 35000 and config.optim.lr == 1e-5


def test_inspect_reports_each_dataset_and_which_cannot_be_read(root, tmp_path, capsys):
    from minigptv2.cli import main

    config = tmp_path / "stage.yaml"
    mix = "{gqa: 3, ocrvqa: 1, unnatural_instruction: 1}"
    config.write_text(f"data: {{source: paper, path: {root}, mix: {mix}}}\n")
    assert main(["data", "inspect", "--config", str(config), "--samples", "1"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gqa: 1 records, 60.0% of draws"
    assert out[1].startswith("  [INST] <Img><ImageHere></Img> [vqa]") and out[1].endswith("yes</s>")
    assert out[2].startswith("ocrvqa: cannot be read: dataset file not found")
    assert out[3] == "unnatural_instruction: 1 records, 20.0% of draws"
