"""A folder as a new user has it (an RGB JPEG, a grayscale PNG, an RGBA PNG, a 16-bit PNG, a float
TIFF) predicts every task with exit 0, each image through the model's intensity rule."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from mask2former import save_model
from mask2former.cli import main
from mask2former.inference.visualize import overlay, palette
from mask2former.structures import ImageResult, SemanticResult
from tests.conftest import random_image


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(random_image(48, 64, 1)).save(folder / "a_rgb.jpg")
    Image.fromarray(random_image(50, 44, 2)[..., 0]).save(folder / "b_gray.png")
    Image.fromarray(np.dstack([random_image(36, 70, 3), np.full((36, 70), 128, np.uint8)])).save(folder / "c_rgba.png")
    deep = (random_image(64, 64, 4)[..., 0].astype(np.uint16) * 200 + 1000).astype(np.uint16)
    Image.fromarray(deep).save(folder / "d_16bit.png")
    tifffile.imwrite(folder / "e_float.tif", random_image(40, 56, 5)[..., 1].astype(np.float32) / 7.0 - 3.0)
    return folder


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_a_mixed_folder_predicts_every_task(task, mixed_folder, tmp_path, tiny_model, capsys):
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / f"out_{task}"
    code = main(["-q", "predict", "--checkpoint", str(checkpoint), "--input", str(mixed_folder), "--output", str(out),
                 "--task", task])
    assert code == 0, capsys.readouterr().err
    stems = sorted(p.stem for p in mixed_folder.iterdir())
    assert sorted(p.stem.removesuffix(f"_{task}") for p in (out / "overlays").iterdir()) == stems
    if task != "instance":
        assert sorted(p.stem for p in (out / task).iterdir()) == stems
    with Image.open(out / "overlays" / f"d_16bit_{task}.png") as image:
        assert image.mode == "RGB" and image.size == (64, 64)


def test_the_overlay_of_a_16_bit_image_shows_it_through_the_intensity_rule():
    deep = np.zeros((200, 300, 1), dtype=np.float32)
    deep[:, 150:] = 4000.0  # half dark, half bright: 0 and 255 under the percentile rule
    labels = torch.zeros((200, 300), dtype=torch.int64)
    result = ImageResult(height=200, width=300, semantic=SemanticResult(labels=labels, scores=torch.zeros(1, 200, 300)))
    drawn = np.asarray(overlay(deep, result, "semantic", ["background"], palette(1), alpha=0.0))
    assert drawn.shape == (200, 300, 3) and drawn[5, 2].tolist() == [0, 0, 0] and drawn[5, 295].tolist() == [255] * 3


TRUNCATED = "cannot decode image (OSError: image file is truncated)"


def _write_truncated_png(path) -> None:
    """The first half of a real PNG, as an interrupted copy leaves it."""
    Image.fromarray(random_image(40, 40, 6)).save(path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def test_a_bad_file_in_a_mixed_folder_is_named_and_every_good_one_written(mixed_folder, tmp_path, tiny_model, capsys):
    _write_truncated_png(mixed_folder / "c_broken.png")
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    code = main(["-q", "predict", "--checkpoint", str(checkpoint), "--input", str(mixed_folder), "--output", str(out),
                 "--task", "all"])
    err = capsys.readouterr().err
    assert code == 1  # at the end, after every good image was written
    assert f"1 of 6 images failed: {mixed_folder / 'c_broken.png'}: {TRUNCATED}" in err
    assert "Traceback" not in err
    good = ["a_rgb", "b_gray", "c_rgba", "d_16bit", "e_float"]
    for task in ("semantic", "panoptic"):
        assert sorted(p.stem for p in (out / task).iterdir()) == good
    for task in ("semantic", "instance", "panoptic"):
        assert sorted(p.stem for p in (out / "overlays").glob(f"*_{task}.png")) == [f"{s}_{task}" for s in good]


def test_strict_stops_a_mixed_folder_at_its_bad_file(mixed_folder, tmp_path, tiny_model, capsys):
    _write_truncated_png(mixed_folder / "c_broken.png")
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    code = main(["-q", "predict", "--checkpoint", str(checkpoint), "--input", str(mixed_folder), "--output", str(out),
                 "--task", "all", "--strict"])
    err = capsys.readouterr().err
    assert code == 1 and f"error: {mixed_folder / 'c_broken.png'}: {TRUNCATED}" in err
    assert "Traceback" not in err
    assert sorted(p.stem for p in (out / "semantic").iterdir()) == ["a_rgb", "b_gray"]  # the files before it only
