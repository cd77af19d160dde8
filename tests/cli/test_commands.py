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
