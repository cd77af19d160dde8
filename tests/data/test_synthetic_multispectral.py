"""A 4-band TIFF dataset end to end: read through DATA.yaml (``channels: 4``), trained for two
iterations from a pretrained RGB ResNet whose stem is adapted, then evaluated and predicted."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
import torchvision
from PIL import Image

from mask2former import build_model, get_preset, load_model, save_model
from mask2former.backbone_weights import adapt_input_conv
from mask2former.config import PixelConfig, apply_overrides
from mask2former.data.data_yaml import build_split, load_data_config, pixel_config
from mask2former.data.synthetic_multispectral import write_multispectral
from mask2former.presets import training_recipe


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_multispectral(tmp_path_factory.mktemp("multispectral"), num_train=4, num_val=2, size=64, seed=0)


def test_the_files_are_real_tiff_stacks_with_label_pngs(dataset, tmp_path):
    root = dataset.parent
    with tifffile.TiffFile(root / "images" / "train" / "000.tif") as tif:
        assert (tif.series[0].axes, tif.series[0].shape, tif.series[0].dtype) == ("YXS", (64, 64, 4), np.uint16)
    labels = np.asarray(Image.open(root / "masks" / "train" / "000.png"))
    assert set(np.unique(labels)) <= {0, 1, 2}
    again = write_multispectral(tmp_path, num_train=4, num_val=2, size=64, seed=0)
    for split in ("train", "val"):
        ours, theirs = (sorted((r / "images" / split).iterdir()) for r in (root, again.parent))
        assert [a.read_bytes() for a in ours] == [b.read_bytes() for b in theirs]  # the same seed, the same files
    split = build_split(dataset, "train")
    assert split.pixels.channels == 4 and split.pixels.intensity == "percentile"
    image, target = split.load(0)
    assert image.shape == (64, 64, 4) and image.dtype == np.float32 and len(target) >= 2
    mapped = split.training_image(0)
    assert mapped.min() == 0.0 and mapped.max() == 255.0


def _rgb_resnet18(path):
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), path)
    return net.state_dict()


def test_four_bands_train_from_an_adapted_rgb_stem_then_eval_and_predict(dataset, tmp_path, caplog):
    from mask2former.engine.evaluate import evaluate_checkpoint
    from mask2former.engine.train import train
    from mask2former.inference.predict_files import predict_files

    state = _rgb_resnet18(tmp_path / "resnet18.pth")
    recipe = training_recipe("tiny_resnet")
    config = apply_overrides(recipe, {"max_iter": 2, "checkpoint_period": 2, "num_workers": 0,
                                      "input.augmentation": "none", "solver.backbone_multiplier": 0.0,
                                      "model.backbone.weights": str(tmp_path / "resnet18.pth")})
    # the model takes what DATA.yaml says of its images (channels, rule, per-channel mean / std)
    pixels = pixel_config(load_data_config(dataset), config.model.pixels)
    config = replace(config, model=replace(config.model, pixels=pixels))
    with caplog.at_level("INFO", logger="mask2former"):
        final = train(config, dataset, tmp_path / "run", progress=False)
    assert "adapted the pretrained RGB stem conv1.weight to 4 input channels" in caplog.text

    model = load_model(final)
    assert model.config.pixels.channels == 4 and model.backbone.conv1.weight.shape == (64, 4, 7, 7)
    # the backbone learning rate was 0: it is the file's, its stem adapted by timm's rule
    assert torch.equal(model.backbone.conv1.weight, adapt_input_conv(state["conv1.weight"], 4))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 2 and all(np.isfinite(losses))
    metrics = evaluate_checkpoint(final, dataset, tmp_path / "eval")
    assert {"semantic.mIoU", "instance.AP", "panoptic.PQ"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())

    report = predict_files(final, [dataset.parent / "images" / "val"], tmp_path / "predict", task="all")
    assert report.ok and len(report.written) == 2
    for task in ("semantic", "instance", "panoptic"):
        overlay = Image.open(tmp_path / "predict" / "overlays" / f"000_{task}.png")
        assert overlay.mode == "RGB" and overlay.size == (64, 64)
    semantic = np.asarray(Image.open(tmp_path / "predict" / "semantic" / "000.png"))
    assert semantic.shape == (64, 64) and semantic.max() < 3


def test_init_adapts_an_rgb_checkpoints_stem_to_the_model_channels(tmp_path, caplog):
    from mask2former.engine.train import _initialise_and_report, initialise_from

    rgb = build_model(get_preset("tiny_resnet"))
    save_model(rgb, tmp_path / "rgb.pt")
    config = get_preset("tiny_resnet")
    config.pixels = PixelConfig(channels=1, mean=(114.5,), std=(57.6,))
    gray = build_model(config)
    report = initialise_from(gray, tmp_path / "rgb.pt")
    assert report["adapted"] == ["backbone.conv1.weight"] and report["reinitialised"] == []
    own, source = gray.state_dict(), rgb.state_dict()
    assert torch.equal(own["backbone.conv1.weight"], source["backbone.conv1.weight"].sum(1, keepdim=True))
    assert all(torch.equal(own[k], v) for k, v in source.items() if k != "backbone.conv1.weight")
    with caplog.at_level("INFO", logger="mask2former"):
        _initialise_and_report(build_model(config), tmp_path / "rgb.pt")
    assert "1 adapted to the input channels: backbone.conv1.weight" in caplog.text
