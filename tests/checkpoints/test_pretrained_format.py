"""Our own format: round trips, trainable-only saves on a base, crash safety, merge, apply."""

import json
import shutil

import pytest
import safetensors.torch
import torch
from checkpoint_helpers import TINY, fixture_script, greedy, logits_of, sample_inputs
from safetensors.torch import load_file

from minigptv2.checkpoints import pretrained
from minigptv2.checkpoints.merge import merge_lora
from minigptv2.checkpoints.pretrained import (
    apply_released_checkpoint,
    load_pretrained,
    save_pretrained,
)
from minigptv2.config import Trainable, get_preset
from minigptv2.errors import CheckpointError
from minigptv2.model import MiniGPTv2


def assert_same_outputs(model, other, tokenizer):
    inputs = sample_inputs(model, tokenizer)
    torch.testing.assert_close(logits_of(other, inputs), logits_of(model, inputs), atol=0, rtol=0)
    assert torch.equal(greedy(other, inputs), greedy(model, inputs))


def test_trainable_only_round_trip(loaded, tmp_path):
    model, tokenizer = loaded
    folder = save_pretrained(model, tokenizer, tmp_path / "run")
    saved = load_file(folder / "model.safetensors")
    # projector + LoRA + vision_norm + the ViT's position table, with the base files on record.
    overlay = ("projector.", "vision_norm.", "vision.pos_embed")
    assert all(k.startswith(overlay) or "lora_" in k for k in saved)
    assert len(saved) == 2 + 2 + 1 + 4 * TINY.layers
    meta = json.loads((folder / "config.json").read_text())
    assert meta["checkpoint_format"]["contents"] == "trainable"
    assert meta["checkpoint_format"]["base"]["kind"] == "released"
    assert (folder / "tokenizer.model").read_bytes() == tokenizer.path.read_bytes()

    again, tokenizer_again = load_pretrained(folder)
    assert again.config == model.config
    assert tokenizer_again.encode("where is the dog") == tokenizer.encode("where is the dog")
    assert_same_outputs(model, again, tokenizer)


def test_full_round_trip_and_a_trainable_save_on_it(loaded, tmp_path):
    model, tokenizer = loaded
    full = save_pretrained(model, tokenizer, tmp_path / "full", full=True)
    again, _ = load_pretrained(full)
    assert_same_outputs(model, again, tokenizer)
    assert again.load_report.ok and not again.load_report.fresh

    with torch.no_grad():  # "train" a little, then save only what trains, on top of the full one
        again.projector.linear.bias.add_(0.5)
    partial = save_pretrained(again, tokenizer, tmp_path / "partial")
    base = json.loads((partial / "config.json").read_text())["checkpoint_format"]["base"]
    assert base == {"kind": "pretrained", "path": str(full.resolve())}
    third, _ = load_pretrained(partial)
    assert_same_outputs(again, third, tokenizer)
    explicit, _ = load_pretrained(partial, base=full)
    assert_same_outputs(again, explicit, tokenizer)


def test_model_training_everything_is_saved_whole(tokenizer, tmp_path):
    config = get_preset("tiny").replace(
        trainable=Trainable(vision=True, projector=True, lora=True, language_model=True)
    )
    model = MiniGPTv2(config).eval()
    folder = save_pretrained(model, tokenizer, tmp_path / "scratch")
    assert (
        json.loads((folder / "config.json").read_text())["checkpoint_format"]["contents"] == "full"
    )
    again, _ = load_pretrained(folder)
    assert_same_outputs(model, again, tokenizer)


def test_model_without_base_record_needs_full(tokenizer, tmp_path):
    model = MiniGPTv2(get_preset("tiny"))
    with pytest.raises(CheckpointError, match="full=True"):
        save_pretrained(model, tokenizer, tmp_path / "x")


def test_crash_mid_save_keeps_the_previous_save(loaded, tmp_path, monkeypatch):
    model, tokenizer = loaded
    target = save_pretrained(model, tokenizer, tmp_path / "run", full=True)
    before = (target / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pretrained, "save_file", crash)
    with torch.no_grad():
        model.projector.linear.bias.zero_()
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(model, tokenizer, target, full=True)
    with pytest.raises(OSError):
        save_pretrained(model, tokenizer, tmp_path / "fresh", full=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no half-written folder
    assert (target / "model.safetensors").read_bytes() == before
    again, _ = load_pretrained(target)
    assert torch.count_nonzero(again.projector.linear.bias) > 0


def test_crash_while_writing_the_weights_file(loaded, tmp_path, monkeypatch):
    model, tokenizer = loaded

    def half_written(tensors, filename, metadata=None):
        safetensors.torch.save_file(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as file:
            file.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrained, "save_file", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, tokenizer, tmp_path / "run", full=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="not a minigptv2 folder"):
        load_pretrained(tmp_path / "run")


def test_refuses_to_replace_a_folder_that_is_not_ours(loaded, tmp_path):
    model, tokenizer = loaded
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match="not a minigptv2 save"):
        save_pretrained(model, tokenizer, precious, full=True)
    assert (precious / "thesis.tex").exists()


def test_trainable_save_needs_its_base_files(released, tmp_path):
    from minigptv2.checkpoints.released import load_released

    root = tmp_path / "files"
    shutil.copytree(released.eva.parent, root)
    model, tokenizer = load_released(
        root / released.eva.name,
        root / released.llama.name,
        root / released.checkpoint.name,
        image_size=112,
    )
    folder = save_pretrained(model, tokenizer, tmp_path / "run")
    (root / released.eva.name).unlink()
    with pytest.raises(CheckpointError) as error:
        load_pretrained(folder)
    assert "needs its base files" in str(error.value) and "eva_vit_g.pth" in str(error.value)
    assert "base=" in str(error.value)
    eva = fixture_script.eva_state_dict(TINY, seed=0)
    eva["blocks.0.norm1.weight"] = eva["blocks.0.norm1.weight"].float()  # same keys, new size
    torch.save(eva, root / released.eva.name)
    with pytest.raises(CheckpointError, match="has changed since the save"):
        load_pretrained(folder)


def test_base_with_other_sizes_is_refused(loaded, tmp_path):
    model, tokenizer = loaded
    partial = save_pretrained(model, tokenizer, tmp_path / "partial")
    other = MiniGPTv2(get_preset("tiny"))  # ViT width 32, not 176
    full_other = save_pretrained(other, tokenizer, tmp_path / "other", full=True)
    with pytest.raises(CheckpointError, match="does not match it") as error:
        load_pretrained(partial, base=full_other)
    assert "vision: saved with" in str(error.value)


def test_merged_export_gives_the_same_logits(loaded, tmp_path):
    model, tokenizer = loaded
    inputs = sample_inputs(model, tokenizer)
    expected = logits_of(model, inputs)
    merged = merge_lora(model)
    assert merged.config.lora is None and not merged.config.trainable.lora
    folder = save_pretrained(merged, tokenizer, tmp_path / "merged", full=True)
    assert json.loads((folder / "config.json").read_text())["lora"] is None
    assert not any("lora_" in key for key in load_file(folder / "model.safetensors"))
    again, _ = load_pretrained(folder)
    torch.testing.assert_close(logits_of(again, inputs), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(CheckpointError, match="full=True"):
        save_pretrained(merged, tokenizer, tmp_path / "partial")


def test_apply_released_checkpoint_to_our_folder(released, tmp_path):
    from minigptv2.checkpoints.released import load_released

    # A folder without the checkpoint (fresh projector, rank-64 LoRA) ...
    base, tokenizer = load_released(released.eva, released.llama, image_size=112)
    base_dir = save_pretrained(base, tokenizer, tmp_path / "base", full=True)
    # ... gets the released projector + rank-8 LoRA: same as loading all three files.
    model, _ = apply_released_checkpoint(base_dir, released.checkpoint)
    direct, _ = load_released(released.eva, released.llama, released.checkpoint, image_size=112)
    assert model.config == direct.config
    assert_same_outputs(direct, model, tokenizer)


def test_apply_checkpoint_for_another_llm_is_refused(loaded, tmp_path):
    model, tokenizer = loaded
    base_dir = save_pretrained(model, tokenizer, tmp_path / "base", full=True)
    wrong = fixture_script.checkpoint_state_dict(TINY.__class__(hidden=96, heads=4), seed=2)
    torch.save({"model": wrong}, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match="LLM hidden size: expected 96") as error:
        apply_released_checkpoint(base_dir, tmp_path / "ckpt.pth")
    assert f"the folder {base_dir}" in str(error.value)


def test_trainable_save_may_not_replace_its_own_base(loaded, tmp_path):
    model, tokenizer = loaded
    full = save_pretrained(model, tokenizer, tmp_path / "full", full=True)
    again, _ = load_pretrained(full)
    with pytest.raises(CheckpointError, match="would replace the full folder it builds on"):
        save_pretrained(again, tokenizer, full)
    save_pretrained(again, tokenizer, full, full=True)  # a full save there is fine
    assert load_pretrained(full)[0].load_report.ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 99}, "uses checkpoint format 99"),
        ({"contents": "half"}, "contents must be 'full' or 'trainable'"),
    ],
)
def test_config_json_format_block_is_checked(loaded, tmp_path, change, message):
    model, tokenizer = loaded
    folder = save_pretrained(model, tokenizer, tmp_path / "run", full=True)
    meta = json.loads((folder / "config.json").read_text())
    meta["checkpoint_format"] |= change
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(folder)


def test_the_folder_names_its_model_type_and_older_folders_without_it_still_load(
    tiny_model, tokenizer, tmp_path
):
    # transformers' AutoConfig dispatches on "model_type"; our loader tolerates it and its absence.
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "new", full=True)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model_type"] == "minigptv2"
    older = tmp_path / "older"
    shutil.copytree(folder, older)
    del meta["model_type"]
    (older / "config.json").write_text(json.dumps(meta))
    new_model, _ = load_pretrained(folder)
    old_model, _ = load_pretrained(older)
    for (name, tensor), (_, other) in zip(
        new_model.state_dict().items(), old_model.state_dict().items(), strict=True
    ):
        assert torch.equal(tensor, other), name
    assert new_model.config == old_model.config == tiny_model.config


def test_a_config_of_another_model_type_is_refused(tiny_model, tokenizer, tmp_path):
    folder = save_pretrained(tiny_model, tokenizer, tmp_path / "run", full=True)
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "model_type": "llava"}))
    with pytest.raises(CheckpointError, match="model_type 'llava'"):
        load_pretrained(folder)
