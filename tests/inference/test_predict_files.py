"""``predict`` as a library call: what it returns, what it refuses before loading, and an index
that matches the files however the run ends."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mask2former import save_model
from mask2former.errors import ConfigError, ImageError
from mask2former.inference.predict_files import PredictionReport, predict_files
from mask2former.inference.predictor import Predictor
from tests.conftest import random_image


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "tiny.safetensors")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(random_image(40 + 8 * i, 56, i)).save(folder / f"img{i}.png")
    (folder / "img1b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def test_returns_what_was_written_and_what_failed(tmp_path, checkpoint, images):
    out = tmp_path / "out"
    report = predict_files(checkpoint, [images], out, "panoptic", batch_size=3, overlays=False)
    assert isinstance(report, PredictionReport) and report.output == out
    assert report.total == 5 and not report.ok
    assert report.written == [images / f"img{i}.png" for i in range(4)]
    assert len(report.failed) == 1
    path, reason = report.failed[0]
    assert path == images / "img1b.png" and reason.startswith("not an image")
    assert report.summary().startswith(f"1 of 5 images failed: {images / 'img1b.png'}: not an image")
    pan = json.loads((out / "panoptic.json").read_text())
    assert [i["file_name"] for i in pan["images"]] == [f"img{i}.png" for i in range(4)]

    good = predict_files(checkpoint, [images / "img0.png"], tmp_path / "out2", "semantic", overlays=False)
    assert good.ok and good.written == [images / "img0.png"] and good.failed == []


def test_strict_raises_the_first_bad_image(tmp_path, checkpoint, images):
    out = tmp_path / "out"
    with pytest.raises(ImageError, match="img1b.png: not an image"):
        predict_files(checkpoint, [images], out, "panoptic", strict=True, overlays=False)
    pan = json.loads((out / "panoptic.json").read_text())
    assert [i["file_name"] for i in pan["images"]] == ["img0.png", "img1.png"]  # sorted: img1b after img1
    assert sorted(p.name for p in (out / "panoptic").iterdir()) == ["img0.png", "img1.png"]


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("score_threshold", float("nan")),
                                               ("score_threshold", 2.0), ("device", "cuda:99")])
def test_bad_options_fail_before_the_model_loads(tmp_path, images, option, value):
    if option == "device" and __import__("torch").cuda.device_count() > 99:
        pytest.skip("this machine has 100 GPUs")
    with pytest.raises(ConfigError):  # a checkpoint that does not exist would be a CheckpointError
        predict_files(tmp_path / "missing.pt", [images], tmp_path / "out", **{option: value})
    assert not (tmp_path / "out").exists()


def test_a_fault_mid_run_is_not_swallowed_and_the_index_matches_the_files(tmp_path, checkpoint, images,
                                                                          monkeypatch):
    real, calls = Predictor.predict_batch, []

    def out_of_memory_on_the_third_batch(self, items, tasks):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CPU out of memory (simulated)")
        return real(self, items, tasks)

    monkeypatch.setattr(Predictor, "predict_batch", out_of_memory_on_the_third_batch)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="out of memory"):
        predict_files(checkpoint, [images], out, "all", overlays=False)
    pan = json.loads((out / "panoptic.json").read_text())
    assert [i["id"] for i in pan["images"]] == ["img0", "img1"]
    assert sorted({r["image_id"] for r in json.loads((out / "instances.json").read_text())}) == ["img0", "img1"]
    assert sorted(p.name for p in (out / "panoptic").iterdir()) == ["img0.png", "img1.png"]
    # and the folder is free again: the next run merges into that index
    monkeypatch.setattr(Predictor, "predict_batch", real)
    assert predict_files(checkpoint, [images / "img3.png"], out, "all", overlays=False).ok
    pan = json.loads((out / "panoptic.json").read_text())
    assert [i["id"] for i in pan["images"]] == ["img0", "img1", "img3"]


def test_ctrl_c_through_the_cli_leaves_a_consistent_index(tmp_path, checkpoint, images, monkeypatch, capsys):
    from mask2former.cli import main

    real, calls = Predictor.predict_batch, []

    def interrupted_on_the_second_batch(self, items, tasks):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, items, tasks)

    monkeypatch.setattr(Predictor, "predict_batch", interrupted_on_the_second_batch)
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--output", str(out),
                 "--task", "all"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    pan = json.loads((out / "panoptic.json").read_text())
    assert [i["id"] for i in pan["images"]] == ["img0"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "img0_instance.png", "img0_panoptic.png", "img0_semantic.png"]
