"""Images of every common mode become RGB uint8, or fail with the file name and the problem."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mask2former.data.image import ImageError, list_images, read_image


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "RGB"])
def test_modes_convert_to_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    out = read_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode in ("RGB", "RGBA"):
        assert np.array_equal(out, rgb)  # alpha dropped, colours untouched
    if mode == "L":
        assert np.array_equal(out[..., 0], out[..., 2])


def test_exif_orientation_applied(tmp_path):
    image = Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    image.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (20, 10, 3)


def test_sixteen_bit_is_rejected_clearly(tmp_path):
    Image.fromarray(np.full((8, 8), 4000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ImageError, match=r"deep\.png: 16-bit image is not supported"):
        read_image(tmp_path / "deep.png")


def test_missing_and_non_images(tmp_path):
    with pytest.raises(ImageError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        read_image(tmp_path / "notes.png")
    Image.fromarray(np.zeros((50, 50, 3), dtype=np.uint8)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:60])
    with pytest.raises(ImageError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_list_images_expands_folders(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images([tmp_path])] == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="holds no image files"):
        list_images([tmp_path / "empty"])
