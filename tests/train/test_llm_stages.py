"""The new-LM recipe (configs/llm/) through the real ``minigptv2 train`` command, at toy size."""

import json
from pathlib import Path

import pytest
import torch
from llm_helpers import tiny_lm_folder
from safetensors.torch import load_file

from minigptv2.checkpoints import load_pretrained
from minigptv2.cli import main
from minigptv2.errors import ConfigError
from minigptv2.train.config import TrainConfig

CONFIGS = Path(__file__).parents[2] / "configs" / "llm"
# The shipped stage configs at toy size: the tiny preset, Shapes data, a few steps.
TOY = [
    "model=tiny", "steps=3", "batch_size=2", "save_every=3", "log_every=1", "pieces=1",
    "data.source=shapes", "data.path=null", "data.mix=null", "data.num_workers=0",
    "optim.warmup_steps=1", "eval_every=null",
]  # fmt: skip


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["qwen2", "phi3"])
def test_stage_1_trains_the_projector_on_the_folder_lm_then_stage_2_adds_lora(family, tmp_path):
    folder = tiny_lm_folder(family, tmp_path / family)
    first, second = tmp_path / "stage1", tmp_path / "stage2"
    command = ["train", "--config", str(CONFIGS / "stage1.yaml"), f"llm={folder}", "eva=null"]
    assert main([*command, *TOY, f"out_dir={first}"]) == 0
    assert all(torch.isfinite(torch.tensor(losses(first))))
    model, _ = load_pretrained(first / "model")
    assert model.config.language.family == family and model.config.chat_format == "native"
    # Stage 1 leaves the language model (and LoRA B) exactly as the folder has it.
    original = load_file(folder / "model.safetensors")
    prefix = "language_model.base_model.model."
    for key, tensor in model.state_dict().items():
        name = key.removeprefix(prefix).replace(".base_layer", "")
        if key.startswith(prefix) and name in original:
            torch.testing.assert_close(tensor, original[name], msg=key)
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if "lora_B" in n)

    command = ["train", "--config", str(CONFIGS / "stage2.yaml"), f"init_from={first / 'model'}"]
    assert main([*command, *TOY, f"out_dir={second}"]) == 0
    trained, _ = load_pretrained(second / "model")  # trainable-only, on stage 1's export
    lora_b = [p for n, p in trained.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) > 0 for p in lora_b)
    meta = json.loads((second / "model" / "config.json").read_text())["checkpoint_format"]
    assert meta["contents"] == "trainable" and meta["base"]["kind"] == "pretrained"


def test_llm_and_init_from_exclude_each_other():
    with pytest.raises(ConfigError, match="set only one"):
        TrainConfig(llm="some/folder", init_from="runs/x/model")
    with pytest.raises(ConfigError, match="already holds"):
        TrainConfig(eva="eva_vit_g.pth", init_from="runs/x/model")


def test_the_prepared_shapes_qwen2_run_parses_and_builds_on_qwen2():
    from minigptv2.config import get_preset
    from minigptv2.model.summary import build_on_meta
    from minigptv2.train.config import load_train_config

    config = load_train_config(CONFIGS / "shapes_qwen2.yaml")
    preset = get_preset(config.model)
    assert preset.language.family == "qwen2" and preset.lora is None
    layer = build_on_meta(preset).language_model.model.layers[0]
    assert type(layer).__name__ == "Qwen2DecoderLayer" and layer.self_attn.q_proj.bias is not None
