import io

import pytest
import torch
from PIL import Image

from minigptv2.errors import ImageError
from minigptv2.images import MAX_IMAGE_SIDE, image_to_tensor, load_image


def png_bytes(size=(20, 10), color=(0, 128, 255), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_loads_paths_bytes_and_pil_as_rgb(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(mode="L", color=7))
    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (20, 10)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a picture")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(path)


def test_truncated_image():
    data = png_bytes(size=(64, 64))
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_zero_sized_image():
    with pytest.raises(ImageError, match="at least 1x1"):
        load_image(Image.new("RGB", (0, 5)))


def test_huge_image_is_refused_before_decoding():
    # A 100k-pixel-wide PNG header is refused from its declared size, without decoding it.
    wide = Image.new("1", (100_000, 1))
    buffer = io.BytesIO()
    wide.save(buffer, format="PNG")
    with pytest.raises(ImageError, match=f"{MAX_IMAGE_SIDE}-pixel side"):
        load_image(buffer.getvalue())


def test_tensor_is_a_square_resize_without_crop():
    # Left half red, right half blue: after a non-cropping resize both halves survive.
    image = Image.new("RGB", (200, 50), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 50))
    pixels = image_to_tensor(image, 28)
    assert pixels.shape == (3, 28, 28) and pixels.dtype == torch.float32
    assert pixels[0, 14, 2] > pixels[2, 14, 2]  # red on the left
    assert pixels[2, 14, 25] > pixels[0, 14, 25]  # blue on the right
