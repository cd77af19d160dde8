"""Reading images into RGB uint8 arrays, with errors that name the file and the problem."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mask2former.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def to_rgb(image: Image.Image, source: str = "image") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB from a PIL image, applying its EXIF orientation.

    Grayscale and palette images are expanded to RGB and alpha is dropped (both lossless for the
    colours); 16-bit, 32-bit integer and float images are rejected, because any mapping to 8 bits
    (full range, min-max, a window) is a choice the user has to make for their data.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raise ImageError(
            f"{source}: {'16-bit' if image.mode.startswith('I;16') else image.mode + '-mode (32-bit)'} image "
            "is not supported; convert it to 8-bit RGB first (choosing the intensity window for your data)"
        )
    with contextlib.suppress(Exception):  # a broken EXIF block should not make the pixels unusable
        image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB from an image file."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image, str(path))
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (Pillow cannot identify the file format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"{path}: cannot decode image ({e})") from None


def list_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and directories (their image files, sorted, not recursive) into image paths."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise ImageError(f"{p}: directory holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif not p.exists():
            raise ImageError(f"{p}: file not found")
        else:
            paths.append(p)
    return paths
