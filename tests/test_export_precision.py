"""Reduced-precision exports: int8 files really hold quantized operations, calibrated on images
prepared as predict prepares them, track the fp32 model, and say what they hold when loaded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2former import Predictor, build_model, get_preset
from mask2former.cli import main
from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.data.synthetic import write_synthetic
from mask2former.errors import ConfigError
from mask2former.export import calibration_inputs, export_model
from mask2former.exported_model import load_exported, run_precision
from mask2former.weights import save_model
from tests.conftest import random_image

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def int8_exports(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(get_preset("tiny_resnet")).eval()
    predictor = Predictor(model)
    calibration = [predictor.model_input(random_image(120 + 16 * i, 150, seed=i)).numpy() for i in range(4)]
    root = tmp_path_factory.mktemp("int8")
    paths = {fmt: export_model(model, root / "model", format=fmt, precision="int8", calibration=calibration)
             for fmt in ("onnx", "openvino")}
    return model, paths


def test_the_int8_onnx_file_holds_quantized_convolutions_and_products(int8_exports):
    import onnx

    _, paths = int8_exports
    graph = onnx.load(paths["onnx"]).graph
    quantized_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert len(quantized_weights) >= 10


def test_the_int8_openvino_model_holds_fake_quantize_nodes(int8_exports):
    import openvino as ov

    _, paths = int8_exports
    ops = [op.get_type_name() for op in ov.Core().read_model(paths["openvino"] / "model.xml").get_ops()]
    assert ops.count("FakeQuantize") >= 10


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_files_track_fp32_at_an_unseen_size_and_say_what_they_hold(int8_exports, fmt):
    model, paths = int8_exports
    loaded = load_exported(paths[fmt])
    assert loaded.precision == "int8"
    x = torch.from_numpy(Predictor(model).model_input(random_image(200, 170, seed=9)).numpy())
    with torch.inference_mode():
        want, got = model(x), loaded(x)
    assert got.mask_logits.shape == want.mask_logits.shape
    assert not torch.equal(got.mask_logits, want.mask_logits)  # it ran quantized
    correlation = np.corrcoef(got.mask_logits.flatten().numpy(), want.mask_logits.flatten().numpy())[0, 1]
    assert correlation > 0.9, correlation
    with pytest.raises(ConfigError, match=f"{paths[fmt].name}.*int8 model.*not fp32"):
        load_exported(paths[fmt], precision="fp32")


def test_what_each_format_can_hold_is_checked_before_exporting(tiny_resnet_model, tmp_path):
    with pytest.raises(ConfigError, match="torch-export export holds fp32"):
        export_model(tiny_resnet_model, tmp_path / "m", format="torch-export", precision="int8")
    with pytest.raises(ConfigError, match="onnx export holds fp32 or int8"):
        export_model(tiny_resnet_model, tmp_path / "m", format="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="needs calibration images"):
        export_model(tiny_resnet_model, tmp_path / "m", format="onnx", precision="int8")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_the_precision_a_file_runs_at():
    path = Path("m")
    assert run_precision(path, "onnx", "int8", "auto") == "int8"
    assert run_precision(path, "onnx", "fp32", "fp32") == "fp32"
    assert run_precision(path, "openvino", "fp32", "bf16") == "bf16"  # OpenVINO's hint runs any file in bf16
    assert run_precision(path, "openvino", "bf16", "fp32") == "fp32"
    assert run_precision(path, "openvino", "bf16", "auto") == "bf16"
    with pytest.raises(ConfigError, match="not bf16"):
        run_precision(path, "onnx", "fp32", "bf16")
    with pytest.raises(ConfigError, match="not int8"):
        run_precision(path, "torch-export", "fp32", "int8")


def test_export_int8_calibrates_on_a_split_and_predict_reads_the_file(tmp_path, capsys):
    data = write_synthetic(tmp_path / "data", num_train=3, num_val=1, seed=2, sizes=((160, 224), (224, 160)))
    categories = build_split(load_data_config(data), "val").categories
    config = get_preset("tiny_resnet")
    config.categories, config.num_classes = list(categories), len(categories)
    config.inference = replace(config.inference, object_mask_threshold=0.0)
    model = build_model(config).eval()
    checkpoint = save_model(model, tmp_path / "model.safetensors")
    inputs = calibration_inputs(model, data, split="train", count=2)
    assert len(inputs) == 2 and all(x.shape[0] == 1 and x.shape[2] % 32 == 0 for x in inputs)
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--precision", "int8",
                 "--output", str(tmp_path / "m")]) != 0
    assert "--precision int8 needs --data" in capsys.readouterr().err
    assert main(["-q", "export", "--checkpoint", str(checkpoint), "--format", "onnx", "--precision", "int8",
                 "--data", str(data), "--calibration-images", "2", "--output", str(tmp_path / "int8")]) == 0
    assert "int8.onnx (onnx, int8" in capsys.readouterr().out
    image = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(random_image(120, 100)).save(image)
    assert main(["-q", "predict", "--checkpoint", str(tmp_path / "int8.onnx"), "--input", str(image), "--output",
                 str(tmp_path / "out"), "--task", "semantic", "--no-overlays"]) == 0
    assert (tmp_path / "out" / "semantic" / "image.png").is_file()
