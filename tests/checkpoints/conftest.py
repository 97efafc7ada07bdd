"""Released-format stand-in files, built by ``scripts/make_released_fixture.py``."""

from __future__ import annotations

import pytest
import torch
from checkpoint_helpers import IMAGE_SIZE, TINY, fixture_script


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """The three released files at tiny size. Read-only: tests that alter a file copy it."""
    return fixture_script.make_released_fixture(tmp_path_factory.mktemp("released"), TINY, seed=0)


@pytest.fixture
def loaded(released):
    """(model, tokenizer) loaded strictly from the released files."""
    from minigptv2.checkpoints.released import load_released

    return load_released(released.eva, released.llama, released.checkpoint, image_size=IMAGE_SIZE)


@pytest.fixture(autouse=True)
def one_thread():
    """Toy-sized matmuls gain nothing from a second thread, and lose a lot when another process
    keeps the second core busy (every op then waits at the thread barrier)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
