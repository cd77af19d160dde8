"""The smaller commands through the CLI: convert, synth, and the demo end to end (shortened)."""

from __future__ import annotations

import json

import torch

from mask2former import load_model
from mask2former.cli import main
from mask2former.data.data_yaml import build_split
from mask2former.data.synthetic import write_synthetic
from mask2former.testing.official_layout import to_official


def test_convert_an_official_pkl_to_ours(tmp_path, tiny_model, capsys):
    import pickle

    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in to_official(tiny_model).items()}}, f, protocol=2)
    assert main(["-q", "convert", str(tmp_path / "zoo.pkl"), str(tmp_path / "out.safetensors"), "--preset",
                 "tiny"]) == 0
    assert "out.safetensors" in capsys.readouterr().out
    converted = load_model(tmp_path / "out.safetensors")
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_convert_refuses_a_missing_source_in_one_line(tmp_path, capsys):
    assert main(["-q", "convert", str(tmp_path / "missing.pkl"), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint not found") and "missing.pkl" in err
    assert not (tmp_path / "out.pt").exists()


def test_synth_writes_a_dataset_every_reader_accepts(tmp_path, capsys):
    assert main(["-q", "synth", str(tmp_path / "data"), "--train", "3", "--val", "2", "--seed", "5"]) == 0
    path = tmp_path / "data" / "data.yaml"
    assert str(path) in capsys.readouterr().out
    train, val = build_split(path, "train"), build_split(path, "val")
    assert (len(train), len(val)) == (3, 2)
    image, target = train.load(0)
    assert image.shape[:2] == target.ignore.shape and len(target) > 0


def test_a_short_demo_runs_end_to_end(tmp_path, capsys):
    """The demo on a small dataset left in its output folder (it reuses one it finds there)."""
    out = tmp_path / "demo"
    write_synthetic(out / "data", num_train=4, num_val=2, seed=0)
    code = main(["-q", "demo", "--output", str(out), "--iters", "2", "--no-compare", "--set", "batch_size=2",
                 "num_workers=0", "input.crop_size=[64,64]"])
    printed = capsys.readouterr().out
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["batch_size"] == 2
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(summary["metrics"])
    assert "PQ" in printed and "mIoU" in printed
    assert (out / "train" / "model_final.pt").exists() and (out / "eval" / "metrics.json").exists()
    assert sorted((out / "predictions" / "overlays").iterdir())


def test_help_and_version_answer_without_loading_torch():
    """`mask2former --help` builds every command's parser; none of that may import torch (seconds)."""
    import subprocess
    import sys

    code = ("import sys, mask2former, mask2former.cli as cli; cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'scipy', 'PIL')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'torch'" not in result.stdout, result.stdout
    version = subprocess.run([sys.executable, "-m", "mask2former", "--version"], capture_output=True, text=True,
                             timeout=120)
    import mask2former

    assert version.stdout.strip() == f"mask2former {mask2former.__version__}"


def test_the_package_names_resolve_lazily():
    import mask2former

    for name in mask2former.__all__:
        assert getattr(mask2former, name) is not None
    assert sorted(mask2former.__all__) == sorted(mask2former._WHERE)


def test_device_auto_is_the_default_and_says_what_it_picked(caplog):
    import argparse
    import logging

    import torch

    from mask2former.cli import build_parser
    from mask2former.device import auto_device, resolve_device

    for command in (["predict", "--checkpoint", "c", "--input", "i", "--output", "o"],
                    ["eval", "--checkpoint", "c", "--data", "d", "--output", "o"], ["serve", "--checkpoint", "c"],
                    ["train", "--data", "d", "--output", "o"]):
        args = build_parser().parse_args(command)
        assert isinstance(args, argparse.Namespace) and args.device == "auto", command
    auto_device.cache_clear()
    with caplog.at_level(logging.INFO, logger="mask2former.device"):
        picked = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if hasattr(torch.backends, "mps") and torch.backends.mps.is_available() else "cpu")
    assert picked.type == expected
    assert f"device auto: {expected}" in caplog.text


def test_eval_prints_na_for_cocos_minus_one_and_nan():
    from mask2former.cli.eval import metric_text

    assert metric_text(-1.0).strip() == "n/a" and metric_text(float("nan")).strip() == "n/a"
    assert metric_text(45.256) == "  45.26" and metric_text(0.0) == "   0.00"
