"""Precisions: auto picks bf16 only where the CPU has it; bf16 and int8 really run reduced (their
outputs move, a little) and give fp32 logits back; the chosen precision is named in eval's report."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from mask2former import build_model, get_preset, load_model
from mask2former.cli import main
from mask2former.cpu import BF16_OVERRIDE, native_bf16
from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.data.synthetic import write_synthetic
from mask2former.errors import ConfigError
from mask2former.precision import ReducedPrecisionModel, auto_precision, precision_of, with_precision
from mask2former.weights import save_model


def test_auto_picks_bf16_only_with_native_bf16(monkeypatch):
    monkeypatch.setenv(BF16_OVERRIDE, "1")
    assert native_bf16() and auto_precision()[0] == "bf16"
    monkeypatch.setenv(BF16_OVERRIDE, "0")
    precision, why = auto_precision()
    assert precision == "fp32" and "no native bf16" in why


def test_without_the_override_the_cpu_flags_decide(monkeypatch):
    from mask2former import cpu

    monkeypatch.delenv(BF16_OVERRIDE)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not native_bf16()
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert native_bf16()
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert native_bf16()


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_moves_the_logits_a_little_and_returns_fp32(tiny_resnet_model, precision):
    x = torch.randn(1, 3, 96, 128)
    reduced = with_precision(tiny_resnet_model, precision)
    assert isinstance(reduced, ReducedPrecisionModel) and precision_of(reduced) == precision
    with torch.inference_mode():
        want, got = tiny_resnet_model(x), reduced(x)
    assert got.class_logits.dtype == got.mask_logits.dtype == torch.float32
    assert got.mask_logits.shape == want.mask_logits.shape
    difference = (got.mask_logits - want.mask_logits).abs().max().item()
    scale = want.mask_logits.abs().max().item()
    assert 0 < difference < 0.2 * scale, (difference, scale)  # it ran reduced, and still tracks fp32


def test_int8_quantizes_a_copy_of_every_linear_layer(tiny_model):
    reduced = with_precision(tiny_model, "int8")
    quantized = [m for m in reduced.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    linears = [m for m in tiny_model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(quantized) == len(linears) > 0
    assert all(isinstance(m, torch.nn.Linear) for m in linears)  # the fp32 model is untouched


def test_fp32_is_the_model_itself_and_a_bad_precision_is_refused(tiny_model):
    assert with_precision(tiny_model, "fp32") is tiny_model
    with pytest.raises(ConfigError, match="precision must be one of"):
        with_precision(tiny_model, "fp16")


def test_eval_names_the_precision_it_ran_at(tmp_path, caplog):
    data = write_synthetic(tmp_path / "data", num_train=1, num_val=2, seed=2, sizes=((160, 224), (224, 160)))
    categories = build_split(load_data_config(data), "val").categories
    config = get_preset("tiny_resnet")
    config.categories, config.num_classes = list(categories), len(categories)
    config.inference = replace(config.inference, object_mask_threshold=0.0)
    checkpoint = save_model(build_model(config).eval(), tmp_path / "model.safetensors")
    assert isinstance(load_model(checkpoint, precision="int8"), ReducedPrecisionModel)
    caplog.set_level(logging.INFO, logger="mask2former")
    for precision in ("auto", "int8"):
        assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--precision", precision,
                     "--output", str(tmp_path / precision)]) == 0
    report = (tmp_path / "int8" / "report.md").read_text()
    assert "| precision | int8 |" in report
    assert "| precision | fp32 |" in (tmp_path / "auto" / "report.md").read_text()  # auto, no native bf16 here
    assert "running at fp32 (auto:" in caplog.text and "running at int8" in caplog.text
