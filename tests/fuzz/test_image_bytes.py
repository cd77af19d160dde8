"""Mutated image and mask files (PNG RGB / palette / 16-bit / grayscale, JPEG, TIFF, BMP, GIF, WEBP)
through every reader: the project's error naming the file, or a well-formed array."""

from __future__ import annotations

import io
import json
from functools import partial

import numpy as np
import pytest
from PIL import Image

from mask2former.data.datasets import read_label_map, read_rgb_png
from mask2former.data.image import read_image
from mask2former.data.panoptic import read_coco_panoptic
from mask2former.data.semantic import read_semantic
from tests.fuzz.conftest import examples, within_contract
from tests.fuzz.mutate import mutations

H, W = 12, 16
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow's notes on the broken files it reads


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def seed_files() -> dict[str, tuple[str, bytes]]:
    """Valid tiny files by name: (suffix, bytes)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    labels = Image.fromarray(rng.integers(0, 3, (H, W), dtype=np.uint8))
    return {
        "png_rgb": (".png", _encode(rgb, "PNG")),
        "png_palette": (".png", _encode(rgb.convert("P"), "PNG")),
        "png_16bit": (".png", _encode(Image.fromarray(rng.integers(0, 3, (H, W), dtype=np.uint16)), "PNG")),
        "png_gray": (".png", _encode(labels, "PNG")),
        "jpeg": (".jpg", _encode(rgb, "JPEG", quality=90)),
        "tiff": (".tif", _encode(rgb, "TIFF")),
        "bmp": (".bmp", _encode(rgb, "BMP")),
        "gif": (".gif", _encode(labels.convert("P"), "GIF")),
        "webp": (".webp", _encode(rgb, "WEBP", quality=80)),
        "png_1bit": (".png", _encode(labels.convert("1"), "PNG")),
        "png_la": (".png", _encode(labels.convert("LA"), "PNG")),
        "jpeg_cmyk_progressive": (".jpg", _encode(rgb.convert("CMYK"), "JPEG", progressive=True)),
        "tiff_lzw_float": (".tif", _encode(Image.fromarray(rng.random((H, W), dtype=np.float32)), "TIFF",
                                           compression="tiff_lzw")),
        "tiff_deflate_16bit": (".tif", _encode(Image.fromarray(rng.integers(0, 3, (H, W), dtype=np.uint16)), "TIFF",
                                               compression="tiff_adobe_deflate")),
        "gif_animated": (".gif", _encode(labels.convert("P"), "GIF", save_all=True,
                                         append_images=[rgb.convert("P")], duration=10, loop=0)),
        "webp_lossless_alpha": (".webp", _encode(rgb.convert("RGBA"), "WEBP", lossless=True)),
        "tiff_bands_uint16": (".tif", _tifffile(rng.integers(0, 65535, (H, W, 5)).astype(np.uint16),
                                               photometric="minisblack", planarconfig="contig")),
        "tiff_pages_float_deflate": (".tiff", _tifffile(rng.random((4, H, W), dtype=np.float32),
                                                        compression="zlib")),
    }


def _tifffile(array: np.ndarray, **options) -> bytes:
    """A TIFF as tifffile writes multi-band stacks (the files Pillow cannot read)."""
    tifffile = pytest.importorskip("tifffile")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


SEEDS = seed_files()


def _check_image(array: np.ndarray) -> None:
    """``read_image``'s contract: 8-bit RGB, or the float32 raw values of 16-bit / float / multi-band files."""
    assert array.ndim == 3 and min(array.shape) >= 1 and array.dtype in (np.uint8, np.float32)


def _check_rgb(array: np.ndarray) -> None:
    assert array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8 and min(array.shape[:2]) >= 1


def _check_label_map(array: np.ndarray) -> None:
    assert array.ndim == 2 and array.dtype.kind in "uib" and min(array.shape) >= 1


READERS = [(read_image, _check_image), (read_label_map, _check_label_map), (read_rgb_png, _check_rgb)]


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_mutated_files_through_every_reader(tmp_path, name):
    suffix, data = SEEDS[name]
    path = tmp_path / f"file{suffix}"
    for k, mutant in enumerate(mutations(data, seed=sum(name.encode()),
                                         count=examples(40, 3000))):
        path.write_bytes(mutant)
        for reader, check in READERS:
            result = within_contract(partial(reader, path), f"{name} mutant {k} through {reader.__name__}")
            if result is not None:
                check(result)


def _semantic_split(root):
    (root / "images").mkdir()
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.ones((H, W), np.uint8)).save(root / "masks" / "a.png")
    return read_semantic(root / "images", root / "masks", num_classes=3)


@pytest.mark.parametrize("target", ["image", "mask"])
def test_mutated_semantic_files_through_dataset_load(tmp_path, target):
    split = _semantic_split(tmp_path)
    path = split.records[0].image_path if target == "image" else split.records[0].mask_path
    for name in ("png_gray", "png_rgb", "png_palette", "png_16bit", "tiff", "bmp"):
        for k, mutant in enumerate(mutations(SEEDS[name][1], seed=7, count=examples(8, 500))):
            path.write_bytes(mutant)
            loaded = within_contract(lambda: split.load(0), f"{target} {name} mutant {k} through load")
            if loaded is not None:
                image, target_ = loaded
                _check_image(image)
                assert tuple(target_.ignore.shape) == image.shape[:2] == tuple(target_.masks.shape[1:])
                assert all(0 <= label < 3 for label in target_.labels.tolist())


def test_mutated_panoptic_png_through_dataset_load(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "panoptic").mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    ids = np.zeros((H, W, 3), np.uint8)
    ids[:, : W // 2, 0] = 1
    ids[:, W // 2:, 0] = 2
    Image.fromarray(ids).save(tmp_path / "panoptic" / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "annotations": [{"image_id": 1, "file_name": "a.png",
                             "segments_info": [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}]}],
            "categories": [{"id": 1, "name": "a", "isthing": 1}, {"id": 2, "name": "b", "isthing": 0}]}
    (tmp_path / "panoptic.json").write_text(json.dumps(data))
    split = read_coco_panoptic(tmp_path / "panoptic.json", tmp_path / "images", tmp_path / "panoptic")
    png = (tmp_path / "panoptic" / "a.png").read_bytes()
    for k, mutant in enumerate(mutations(png, seed=11, count=examples(40, 3000))):
        (tmp_path / "panoptic" / "a.png").write_bytes(mutant)
        loaded = within_contract(lambda: split.load(0), f"panoptic PNG mutant {k} through load")
        if loaded is not None:
            assert sorted(loaded[1].labels.tolist()) == [0, 1]
