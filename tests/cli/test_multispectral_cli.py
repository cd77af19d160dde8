"""A 4-band 16-bit TIFF dataset through the command line: ``synth --kind multispectral`` -> ``train``
from a pretrained RGB ResNet file (the stem adapted by timm's rule, and said) -> ``eval`` ->
``predict`` with overlays in a chosen false-colour view; and ``stats`` -> a training that
normalises by the numbers it wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from mask2former import load_model
from mask2former.cli import main
from mask2former.data.image import read_image
from mask2former.data.intensity import display_image

# a few iterations on the CPU, through the preset's augmentation (large-scale jitter of the float bands)
TRAIN = ["--preset", "tiny_resnet", "--iters", "2", "--batch-size", "2", "--set", "num_workers=0",
         "eval_period=0"]  # last: more --set values may follow


@pytest.fixture
def survey(tmp_path):
    """``synth --kind multispectral``: 3 + 1 tiles of 4 uint16 bands (blue, green, red, near-infrared)."""
    assert main(["-q", "synth", str(tmp_path / "survey"), "--kind", "multispectral", "--train", "3", "--val", "1",
                 "--seed", "1"]) == 0
    return tmp_path / "survey" / "DATA.yaml"


def test_four_bands_train_from_an_adapted_rgb_file_then_eval_and_predict(survey, tmp_path, caplog):
    survey.write_text(survey.read_text() + "display_channels: [3, 2, 1]  # near-infrared, red, green\n")
    rgb = torchvision.models.resnet18(weights=None).state_dict()  # random, standing in for ImageNet's
    torch.save(rgb, tmp_path / "resnet18.pth")
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="mask2former"):
        assert main(["train", "--data", str(survey), "--output", str(run), "--backbone-weights",
                     str(tmp_path / "resnet18.pth"), *TRAIN, "solver.backbone_multiplier=0"]) == 0
    assert "images: 4 channels, intensity percentile" in caplog.text
    assert "adapted the pretrained RGB stem conv1.weight to 4 input channels" in caplog.text

    model = load_model(run / "model_final.pt")
    pixels = model.config.pixels
    assert (pixels.channels, pixels.intensity, pixels.display_channels) == (4, "percentile", (3, 2, 1))
    assert pixels.mean == (123.675, 116.280, 103.530, 123.675)  # ImageNet's, cycled as the filters are
    stem, source = model.backbone.conv1.weight.detach(), rgb["conv1.weight"]
    assert stem.shape == (64, 4, 7, 7)
    for band, colour in enumerate([0, 1, 2, 0]):  # timm's rule: R, G, B, R, scaled by 3/4 (backbone lr 0)
        assert torch.allclose(stem[:, band], source[:, colour] * 0.75, rtol=1e-6, atol=0)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, rgb["layer4.1.conv2.weight"])
    losses = [e["loss"] for e in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in e]
    assert len(losses) == 2 and np.isfinite(losses).all()

    assert main(["-q", "eval", "--checkpoint", str(run / "model_final.pt"), "--data", str(survey), "--output",
                 str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"semantic.mIoU", "instance.AP", "panoptic.PQ"} <= set(metrics)

    out = tmp_path / "predicted"
    val = survey.parent / "images" / "val"
    assert main(["-q", "predict", "--checkpoint", str(run / "model_final.pt"), "--input", str(val), "--output",
                 str(out), "--task", "all", "--score-threshold", "1"]) == 0
    labels = np.asarray(Image.open(out / "semantic" / "000.png"))
    assert labels.shape == (64, 64) and labels.max() < 3
    # nothing scores 1, so the instance overlay is the view alone: bands 3, 2, 1 through the percentile rule
    raw = read_image(val / "000.tif")
    view = np.asarray(Image.open(out / "overlays" / "000_instance.png"))
    assert np.array_equal(view, display_image(raw, pixels))
    nir = np.clip(np.rint(_percentile_scaled(raw[..., 3])), 0, 255).astype(np.uint8)
    assert np.array_equal(view[..., 0], nir)  # red shows the near-infrared band
    for task in ("semantic", "panoptic"):
        assert Image.open(out / "overlays" / f"000_{task}.png").size == (64, 64)


def _percentile_scaled(band: np.ndarray) -> np.ndarray:
    low, high = np.percentile(band.astype(np.float64), (0.5, 99.5))
    return (np.clip(band, low, high) - low) * 255.0 / (high - low)


def test_stats_then_a_dataset_rule_training_normalises_by_what_it_wrote(survey, tmp_path, capsys):
    survey.write_text(survey.read_text().replace("intensity: percentile", "intensity: dataset  # raw radiance"))
    run = ["train", "--data", str(survey), "--output", str(tmp_path / "run"), *TRAIN]
    assert main(run) == 1  # the rule needs the dataset's numbers, which are not there yet
    assert "run `mask2former stats`" in capsys.readouterr().err
    assert main(["-q", "stats", str(survey)]) == 0
    text = survey.read_text()
    assert "intensity: dataset  # raw radiance" in text
    written = yaml.safe_load(text)
    raw = np.concatenate([read_image(p).reshape(-1, 4) for p in sorted((survey.parent / "images" / "train").iterdir())])
    assert np.allclose(written["mean"], raw.astype(np.float64).mean(0), rtol=1e-12)
    assert main(["-q", *run]) == 0
    pixels = load_model(tmp_path / "run" / "model_final.pt").config.pixels
    assert pixels.intensity == "dataset"
    assert (pixels.mean, pixels.std) == (tuple(written["mean"]), tuple(written["std"]))
    assert min(pixels.mean) > 1000  # raw 16-bit values, not the 0-255 scale
