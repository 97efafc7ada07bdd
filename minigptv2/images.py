"""Reading images safely and turning them into the pixels MiniGPT-v2 expects (spec §5.3).

The reference resizes every image to a square (bicubic, no crop, aspect ratio not kept) and applies
CLIP normalisation; training and evaluation use the same transform. Box coordinates are relative to
the original size, so that distortion does not move them.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from minigptv2.constants import IMAGE_MEAN, IMAGE_STD
from minigptv2.errors import ImageError

# Larger sides are refused rather than decoded: a 100k-pixel side is a decompression bomb or a
# mistake, and nothing is gained above this since every image is resized to a few hundred pixels.
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 16384 * 16384 // 4

ImageSource = str | Path | bytes | Image.Image


def load_image(source: ImageSource) -> Image.Image:
    """Open a path, raw bytes or a PIL image as an RGB image, with a clear error for bad input."""
    if isinstance(source, Image.Image):
        _check_size(source.size, "the image")
        return source.convert("RGB")
    name = "the uploaded bytes" if isinstance(source, bytes) else str(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ImageError(f"image file not found: {source}")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                _check_size(image.size, name)  # before decoding, so a bomb is never decoded
                image.load()
                return image.convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name} is not a readable image (or is too large to decode safely); "
            "use a PNG, JPEG, WebP, GIF or BMP file"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name} is corrupt or truncated ({error}); re-export the image") from None


def _check_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name} is {width}x{height} pixels; an image needs at least 1x1 pixels")
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{name} is {width}x{height} pixels, larger than the {MAX_IMAGE_SIDE}-pixel side or "
            f"{MAX_IMAGE_PIXELS:,}-pixel limit; downscale it first (the model resizes it anyway)"
        )


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """(3, size, size) float32: bicubic resize to a square, scale to [0, 1], CLIP-normalise."""
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0  # (H, W, 3)
    pixels = (pixels - np.asarray(IMAGE_MEAN, np.float32)) / np.asarray(IMAGE_STD, np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)
