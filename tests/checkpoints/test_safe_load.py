"""Weight files are read without running code from them; damaged files give actionable errors."""

import os
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from minigptv2.checkpoints.released import load_released
from minigptv2.checkpoints.safe_load import read_sharded, read_state_dict, read_torch_file
from minigptv2.errors import CheckpointError


class _RunsCode:
    """Unpickling this would call os.system and create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_torch_file(path, marker):
    torch.save({"model": {"llama_proj.bias": torch.zeros(2)}, "hook": _RunsCode(marker)}, path)
    return path


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    path = _evil_torch_file(tmp_path / "evil.pth", marker)
    with pytest.raises(CheckpointError) as error:
        read_torch_file(path)
    message = str(error.value)
    assert "refused" in message and "would run arbitrary code" in message
    assert "posix.system" in message  # the global torch's unpickler named
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_plain_pickle_is_refused_too(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"x": _RunsCode(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError, match=r"refused.*posix\.system.*would run arbitrary code"):
        read_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("which", ["eva", "checkpoint", "llama"])
def test_each_released_input_refuses_code(released, tmp_path, which):
    marker = tmp_path / "MARKER"
    eva, llama, checkpoint = released.eva, released.llama, released.checkpoint
    if which == "eva":
        eva = _evil_torch_file(tmp_path / "eva_vit_g.pth", marker)
    elif which == "checkpoint":
        checkpoint = _evil_torch_file(tmp_path / "minigptv2_checkpoint.pth", marker)
    else:
        llama = tmp_path / "llama"
        shutil.copytree(released.llama, llama)
        (llama / "model.safetensors").unlink()
        _evil_torch_file(llama / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError, match="would run arbitrary code"):
        load_released(eva, llama, checkpoint, image_size=112)
    assert not marker.exists()


def test_truncated_and_garbage_files(released, tmp_path):
    data = released.checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError) as error:
            read_torch_file(path)
        assert str(path) in str(error.value)
        assert "truncated or corrupted" in str(error.value)
        assert "again" in str(error.value)  # the fix: download or copy it again


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.ones(4, 4)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_state_dict(path)


def test_missing_file_and_folder_given_for_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such file: .*nope\.pth"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_state_dict(tmp_path)


def test_state_dict_must_be_a_flat_dict_of_tensors(tmp_path):
    path = tmp_path / "nested.pth"
    torch.save({"model": {"a": torch.ones(1)}}, path)
    with pytest.raises(CheckpointError, match="not a flat dict of tensors"):
        read_state_dict(path)
    torch.save(torch.ones(3), path)
    with pytest.raises(CheckpointError, match="holds a Tensor, not a dict"):
        read_state_dict(path)


def test_sharded_index_with_missing_shard(released, tmp_path):
    folder = tmp_path / "llama"
    fixture_script_write(folder, weights="sharded")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    assert len(read_sharded(folder / "model.safetensors.index.json")) > 0
    shards[-1].unlink()
    with pytest.raises(CheckpointError, match="download is incomplete"):
        read_sharded(folder / "model.safetensors.index.json")


def fixture_script_write(folder, **kwargs):
    from checkpoint_helpers import TINY, fixture_script

    return fixture_script.write_llama_folder(folder, TINY, seed=1, **kwargs)
