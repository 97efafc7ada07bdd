"""The shipped model and a held-out Shapes scene, shared by the server and UI tests."""

import pytest
from PIL import Image

from minigptv2.assistant import Assistant
from minigptv2.data.shapes import make_sample


@pytest.fixture(scope="module")
def shipped() -> Assistant:
    return Assistant.load()


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return make_sample(7, "test", task="refer").image
