"""Images of every common mode become RGB uint8, 16-bit / float / multi-band ones keep their values,
or they fail with the file name and the problem."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from mask2former.data import image as image_module
from mask2former.data.datasets import read_label_map, read_rgb_png
from mask2former.data.image import (
    ImageError,
    list_images,
    max_image_pixels,
    open_image,
    read_image,
    set_max_image_pixels,
    to_rgb,
)
from mask2former.errors import ConfigError, DatasetError, Mask2FormerError


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


def test_sixteen_bit_and_float_images_keep_their_values(tmp_path):
    """Read as float32 raw values for the model's intensity rule, never squeezed into 8 bits here."""
    deep = np.random.default_rng(0).integers(0, 65536, (9, 11)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.float32 and out.shape == (9, 11, 1) and np.array_equal(out[..., 0], deep)
    floats = np.random.default_rng(1).normal(0, 1000, (9, 11)).astype(np.float32)
    Image.fromarray(floats).save(tmp_path / "pillow_float.tif")
    tifffile.imwrite(tmp_path / "float.tif", floats)
    for name in ("pillow_float.tif", "float.tif"):
        assert np.array_equal(read_image(tmp_path / name)[..., 0], floats), name
    with Image.open(tmp_path / "deep.png") as image, pytest.raises(ImageError, match="16-bit image has no 8-bit"):
        to_rgb(image, "deep.png")


def test_multi_band_tiff_stacks_are_read_band_last(tmp_path):
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 65536, (20, 30, 5)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "contig.tif", bands, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "pages.tiff", np.moveaxis(bands, 2, 0))  # one band per page
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(bands[..., :3], 2, 0), photometric="rgb",
                     planarconfig="separate")
    for name, expected in (("contig.tif", bands), ("pages.tiff", bands), ("planar.tif", bands[..., :3])):
        out = read_image(tmp_path / name)
        assert out.dtype == np.float32 and np.array_equal(out, expected), name
    rgbn = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)  # 8-bit RGB + NIR: four bands, not RGBA
    tifffile.imwrite(tmp_path / "rgbn.tif", rgbn, photometric="rgb", extrasamples=["unspecified"])
    out = read_image(tmp_path / "rgbn.tif")
    assert out.dtype == np.uint8 and np.array_equal(out, rgbn)
    tifffile.imwrite(tmp_path / "cube.tif", rng.integers(0, 9, (2, 3, 20, 30)).astype(np.uint16))
    with pytest.raises(ImageError, match=r"cube\.tif: TIFF of axes .* holds more than one stack of bands"):
        read_image(tmp_path / "cube.tif")


def test_eight_bit_tiffs_read_as_pillow_always_read_them(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.tif")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.tif")
    Image.fromarray(rgba[..., 0]).convert("P").save(tmp_path / "palette.tif")
    assert np.array_equal(read_image(tmp_path / "rgba.tif"), rgba[..., :3])  # alpha dropped, as before
    assert np.array_equal(read_image(tmp_path / "rgb.tif"), rgba[..., :3])
    with Image.open(tmp_path / "palette.tif") as image:
        assert np.array_equal(read_image(tmp_path / "palette.tif"), np.asarray(image.convert("RGB")))


def test_tiff_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((4, 100, 60), dtype=np.uint16))
    monkeypatch.setenv("MASK2FORMER_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(ImageError, match=r"big\.tif: image has 6,000 pixels \(100x60, HxW\), more than the limit"):
        read_image(tmp_path / "big.tif")


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


# --------------------------------------------------------------------------- hostile files

def png_bytes(width: int, height: int, idat: bytes | None = None, *, idat_length: int | None = None) -> bytes:
    """A PNG built by hand: an RGB header claiming ``width x height`` and one IDAT chunk (its
    length field may lie with ``idat_length``)."""
    def chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data) if length is None else length) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 10) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body, idat_length)
            + chunk(b"IEND", b""))


def _measure(run):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(Mask2FormerError) as caught:
            run()
    finally:
        elapsed, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return caught.value, elapsed, peak


@pytest.mark.parametrize("reader, error", [(read_image, ImageError), (read_label_map, DatasetError),
                                           (read_rgb_png, DatasetError)])
def test_pixel_bomb_is_refused_from_the_header(tmp_path, reader, error):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(100_000, 100_000))
    assert path.stat().st_size < 100
    caught, elapsed, peak = _measure(lambda: reader(path))
    assert isinstance(caught, error)
    message = str(caught)
    assert str(path) in message and "image has 10,000,000,000 pixels" in message
    assert "limit of 178,956,970" in message and "MASK2FORMER_MAX_IMAGE_PIXELS" in message
    assert "--max-image-pixels" in message
    assert elapsed < 1.0 and peak < 4 * 2**20, (elapsed, peak)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setattr(image_module, "_max_pixels", image_module._UNSET)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "x.png")
    assert max_image_pixels() == 178_956_970
    monkeypatch.setenv("MASK2FORMER_MAX_IMAGE_PIXELS", "599")
    with pytest.raises(ImageError, match=r"x\.png: image has 600 pixels \(20x30, HxW\), more than the limit of 599"):
        read_image(tmp_path / "x.png")
    monkeypatch.setenv("MASK2FORMER_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="MASK2FORMER_MAX_IMAGE_PIXELS='lots': expected a positive integer"):
        read_image(tmp_path / "x.png")
    set_max_image_pixels(600)  # the function wins over the environment
    assert read_image(tmp_path / "x.png").shape == (20, 30, 3)
    with pytest.raises(ConfigError):
        set_max_image_pixels(0)
    set_max_image_pixels(None)
    assert max_image_pixels() is None


def test_raising_the_limit_past_pillows_own_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(image_module, "_max_pixels", image_module._UNSET)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(15_000, 15_000))  # 225 M pixels: Pillow alone refuses it at open
    with pytest.raises(ImageError, match="more than the limit of 178,956,970"):
        read_image(path)
    set_max_image_pixels(300_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        with open_image(path) as image:  # header only: no 675 MB decode in a test
            assert image.size == (15_000, 15_000)


def test_png_chunk_claiming_gigabytes_is_not_allocated(tmp_path):
    """Found by the byte fuzzer: Pillow skips the rest of an IDAT chunk with ``read(length)``,
    and Python allocates ``length`` bytes before reading; the file is 70 bytes."""
    path = tmp_path / "chunk.png"
    path.write_bytes(png_bytes(4, 4, b"\x78\x9c\x00", idat_length=0x80000000))
    caught, elapsed, peak = _measure(lambda: read_image(path))
    assert isinstance(caught, ImageError) and str(path) in str(caught)
    assert peak < 16 * 2**20, peak


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
def test_decoder_failures_name_the_file(tmp_path):
    good = png_bytes(4, 4, zlib.compress(b"\x00" + b"\x10" * 12) * 1)
    cases = {
        "header.png": good[:20],                                            # truncated IHDR
        "zlib.png": png_bytes(4, 4, b"\x78\x9c\xff\xff\xff garbage"),     # broken deflate stream
        "short.png": png_bytes(40, 40),                                     # too little pixel data
        "gif.gif": b"GIF89a\x10\x00\x10\x00\xf7\x00\x00" + b"\x00" * 20,  # palette cut short
        "tiff.tif": b"II*\x00\x08\x00\x00\x00\xff\xff",                    # IFD with 65535 entries, no data
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        for reader, error in ((read_image, ImageError), (read_label_map, DatasetError), (read_rgb_png, DatasetError)):
            with pytest.raises(error) as caught:
                reader(tmp_path / name)
            assert str(caught.value).startswith(f"{tmp_path / name}: "), (name, reader, caught.value)


def test_folders_devices_and_odd_names_where_files_should_be(tmp_path):
    (tmp_path / "mask.png").mkdir()
    with pytest.raises(DatasetError, match=r"mask\.png: is a directory, expected a mask file"):
        read_label_map(tmp_path / "mask.png")
    with pytest.raises(ImageError, match=r"mask\.png: is a directory, expected an image file"):
        read_image(tmp_path / "mask.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block forever
    with pytest.raises(DatasetError, match=r"pipe\.png: is not a regular file"):
        read_rgb_png(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match=r"unusable path \(name too long\)"):
        read_image(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(DatasetError, match=r"gone\.png: mask file not found"):
        read_label_map(tmp_path / "gone.png")
