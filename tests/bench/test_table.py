"""The benchmark table: every row measured in a fresh process, formats that cannot hold a precision
skipped with a note, accuracy scored against PyTorch fp32, and the command writes what it prints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from mask2former import build_model, get_preset
from mask2former.bench.table import default_precisions, format_benchmark, parse_size, plan, run_benchmark
from mask2former.cli import main
from mask2former.cpu import BF16_OVERRIDE
from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.data.synthetic import write_synthetic
from mask2former.errors import ConfigError


def test_pairs_a_format_cannot_hold_are_skipped_with_a_note():
    pairs, notes = plan(["torch", "onnx", "torch-export"], ["fp32", "bf16", "int8"])
    assert pairs == [("torch", "fp32"), ("torch", "bf16"), ("torch", "int8"), ("onnx", "fp32"), ("onnx", "int8"),
                     ("torch-export", "fp32")]
    assert notes == ["onnx bf16: not a precision a onnx file holds", "torch-export bf16: not a precision a "
                     "torch-export file holds", "torch-export int8: not a precision a torch-export file holds"]
    with pytest.raises(ConfigError, match="unknown format 'tflite'"):
        plan(["tflite"], ["fp32"])


def test_bf16_is_measured_by_default_only_where_it_is_native(monkeypatch):
    monkeypatch.setenv(BF16_OVERRIDE, "1")
    assert default_precisions() == (["fp32", "bf16", "int8"], "")
    monkeypatch.setenv(BF16_OVERRIDE, "0")
    precisions, note = default_precisions()
    assert precisions == ["fp32", "int8"] and "no native bf16" in note


def test_sizes_are_padded_input_sizes():
    assert parse_size("800x1216", 32) == (800, 1216)
    for bad in ("800", "800x1200", "32x64"):
        with pytest.raises(ConfigError, match="--sizes"):
            parse_size(bad, 32)


def test_rows_are_measured_and_scored_against_pytorch_fp32(tmp_path):
    data = write_synthetic(tmp_path / "data", num_train=1, num_val=2, seed=2, sizes=((96, 128), (128, 96)))
    categories = build_split(load_data_config(data), "val").categories
    config = get_preset("tiny_resnet")
    config.categories, config.num_classes = list(categories), len(categories)
    config.inference = replace(config.inference, object_mask_threshold=0.0, min_size=96, max_size=128)
    torch.manual_seed(0)
    model = build_model(config).eval()
    said = []
    result = run_benchmark(model, tmp_path / "work", formats=["torch", "torch-export"], precisions=["fp32", "int8"],
                           sizes=[(96, 128)], runs=1, threads=1, data=data, say=said.append)
    assert [(r.format, r.precision) for r in result.rows] == [("torch", "fp32"), ("torch", "int8"),
                                                              ("torch-export", "fp32")]
    fp32, int8, exported = result.rows
    assert all(r.latency_ms > 0 and r.throughput == pytest.approx(1000 / r.latency_ms) for r in result.rows)
    assert fp32.peak_memory_mb is not None and fp32.peak_memory_mb > 0
    assert fp32.params_m == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    assert fp32.gflops > 0 and exported.export_s is not None and fp32.export_s is None
    assert fp32.stages is not None and set(fp32.stages) == {"backbone", "pixel decoder", "transformer decoder",
                                                            "post-processing"}
    assert exported.stages is None
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(fp32.accuracy)
    assert exported.accuracy == pytest.approx(fp32.accuracy, abs=0.01)  # the same model in another runtime
    assert int8.running == "int8"
    text = format_benchmark(result)
    assert "| torch | int8 | 96x128 | 1 |" in text
    assert "(+" in text or "(-" in text  # the deltas against PyTorch fp32
    assert "threads" in text and result.cpu in text
    assert any("measuring torch-export fp32" in line for line in said)


def test_the_command_writes_the_table_it_prints(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--preset", "tiny_resnet", "--formats", "torch", "--precision", "fp32",
                 "--sizes", "64x96", "--runs", "1", "--threads", "1", "--no-stages", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| torch | fp32 | 64x96 | 1 |" in printed
    assert (out / "benchmark.md").read_text() in printed
    saved = json.loads((out / "benchmark.json").read_text())
    assert saved["rows"][0]["format"] == "torch" and saved["threads"] == 1
