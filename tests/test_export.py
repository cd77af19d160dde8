"""Export: one graph per model, run by onnxruntime, OpenVINO and torch.export at input sizes and
batch sizes the export never saw, equal to PyTorch; the file carries the config, and `predict`
on it gives PyTorch's results."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former import Predictor, build_model, get_preset, load_model
from mask2former.cli import main
from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.data.synthetic import write_synthetic
from mask2former.errors import CheckpointError
from mask2former.export import export_model, tracing_input
from mask2former.exported_model import ExportedModel, exported_format, load_exported
from mask2former.weights import save_model
from tests.conftest import random_image

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

# none is the tracing size (2 x 3 x 256 x 288 for these presets), two are not square, batch 1 and 2
UNSEEN = [(1, 96, 128), (2, 160, 224), (1, 224, 160)]


def confident(preset: str) -> torch.nn.Module:
    """Random weights, with the class head pushed to answer and a low overlap threshold (so that
    panoptic results are not empty): a fixed seed, class 1 favoured."""
    torch.manual_seed(0)
    config = get_preset(preset)
    config.inference = replace(config.inference, overlap_threshold=0.1)
    model = build_model(config).eval()
    with torch.no_grad():
        model.transformer_decoder.class_embed.bias[1] += 4.0
    return model


@pytest.fixture(scope="module", params=["tiny_resnet", "tiny"])
def exported(request, tmp_path_factory):
    """(model, {format: path}) for a ResNet and a Swin model, exported once per module."""
    model = confident(request.param)
    root = tmp_path_factory.mktemp(request.param)
    paths = {fmt: export_model(model, root / "model", format=fmt) for fmt in ("onnx", "openvino", "torch-export")}
    return model, paths


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torch-export"])
def test_exported_graphs_equal_pytorch_at_sizes_and_batches_they_never_saw(exported, fmt):
    model, paths = exported
    runner = load_exported(paths[fmt])
    assert tracing_input(model.config).shape[-2:] not in [(h, w) for _, h, w in UNSEEN]
    for batch, h, w in UNSEEN:
        x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.inference_mode():
            ours, theirs = model(x), runner(x)
        assert theirs.class_logits.shape == ours.class_logits.shape
        assert theirs.mask_logits.shape == ours.mask_logits.shape
        assert (theirs.class_logits - ours.class_logits).abs().max() <= 1e-4, (fmt, batch, h, w)
        assert (theirs.mask_logits - ours.mask_logits).abs().max() <= 1e-4, (fmt, batch, h, w)


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torch-export"])
def test_the_exported_file_carries_the_config_and_predicts_what_pytorch_predicts(exported, fmt):
    model, paths = exported
    loaded = load_model(paths[fmt])
    assert isinstance(loaded, ExportedModel) and loaded.format == fmt
    assert loaded.config == model.config
    image = random_image(150, 190, seed=3)
    want = Predictor(model)(image, task="all")
    got = Predictor(loaded)(image, task="all")
    assert want.panoptic is not None and got.panoptic is not None
    assert len(want.panoptic.segments_info) > 0  # the test means something
    assert torch.equal(got.panoptic.segments, want.panoptic.segments)
    assert [(s.label, s.area) for s in got.panoptic.segments_info] == [
        (s.label, s.area) for s in want.panoptic.segments_info]
    assert torch.equal(got.semantic.labels, want.semantic.labels)
    assert torch.equal(got.instance.labels, want.instance.labels)
    torch.testing.assert_close(got.instance.scores, want.instance.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torch-export"])
def test_serve_answers_from_the_exported_file_what_the_model_predicts(exported, fmt):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mask2former.serve import build_app
    from tests.serve.conftest import png

    model, paths = exported
    image = random_image(150, 190, seed=3)
    want = Predictor(model)(image, task="panoptic")
    with TestClient(build_app(paths[fmt])) as client:
        info = client.get("/v1/model").json()
        answer = client.post("/v1/predict?task=panoptic", content=png(image)).json()
    assert (info["format"], info["precision"]) == (fmt, "fp32")
    assert [(s["category_id"], s["area"]) for s in answer["segments_info"]] == [
        (s.label, s.area) for s in want.panoptic.segments_info] != []


def test_export_command_writes_checks_and_predict_and_eval_read_the_file(tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", num_train=1, num_val=2, seed=2, sizes=((160, 224), (224, 160)))
    categories = build_split(load_data_config(data), "val").categories
    config = get_preset("tiny_resnet")
    config.categories, config.num_classes = list(categories), len(categories)
    config.inference = replace(config.inference, object_mask_threshold=0.0)  # untrained: keep segments to score
    torch.manual_seed(0)
    checkpoint = save_model(build_model(config).eval(), tmp_path / "model.safetensors")
    assert main(["-q", "export", "--checkpoint", str(checkpoint), "--format", "onnx",
                 "--output", str(tmp_path / "exported")]) == 0
    out = capsys.readouterr().out
    assert "exported.onnx" in out and "largest logit difference to PyTorch" in out
    difference = float(out.split("PyTorch fp32 ")[-1].split()[0])
    assert difference <= 1e-4
    image = tmp_path / "image.png"
    Image.fromarray(random_image(120, 100)).save(image)
    metrics = {}
    for name, model in (("torch", checkpoint), ("onnx", tmp_path / "exported.onnx")):
        assert main(["-q", "predict", "--checkpoint", str(model), "--input", str(image), "--output",
                     str(tmp_path / name), "--task", "semantic", "--no-overlays"]) == 0
        assert main(["-q", "eval", "--checkpoint", str(model), "--data", str(data), "--output",
                     str(tmp_path / f"eval_{name}")]) == 0
        metrics[name] = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())
    torch_map, onnx_map = (np.asarray(Image.open(tmp_path / name / "semantic" / "image.png"))
                           for name in ("torch", "onnx"))
    assert np.array_equal(torch_map, onnx_map)
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(metrics["onnx"])
    # the same scores to rounding: the logits differ by ~1e-6, which can flip a pixel whose two
    # queries an untrained model scores almost equally (seen: PQ 5.8722 vs 5.8717)
    assert metrics["onnx"] == pytest.approx(metrics["torch"], abs=0.01)


def test_exported_format_is_told_by_the_path(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "model.xml").write_text("<net/>")
    assert exported_format(tmp_path / "a.onnx") == "onnx"
    assert exported_format(tmp_path / "a.pt2") == "torch-export"
    assert exported_format(tmp_path / "ir") == "openvino"
    assert exported_format(tmp_path / "a.pt") is None
    assert exported_format(tmp_path) is None


def test_a_file_that_is_not_an_export_is_refused_naming_it(tmp_path):
    for name in ("bad.onnx", "bad.pt2"):
        (tmp_path / name).write_bytes(b"not a model")
        with pytest.raises(CheckpointError, match=name):
            load_exported(tmp_path / name)
