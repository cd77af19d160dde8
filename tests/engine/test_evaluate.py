"""mask2former eval: every allowed task scored, predictions written in the community formats,
TTA (the multi-scale + flip average, not the single-scale prediction), and 2 processes giving the
numbers of one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former import Predictor, build_model, get_preset, load_model, save_model
from mask2former.cli import main
from mask2former.data.synthetic import write_synthetic
from mask2former.engine.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    # no square image: at tiny's test size 64 the 0.5x TTA view of one would be 32 x 32, whose single
    # coarsest pixel the tiny model's one-channel norm groups cannot normalise
    data = write_synthetic(root / "data", num_train=2, num_val=3, seed=2, sizes=((160, 224), (224, 160), (256, 192)))
    config = get_preset("tiny")
    from mask2former.data.data_yaml import build_split, load_data_config

    split = build_split(load_data_config(data), "val")
    config.categories, config.num_classes = list(split.categories), len(split.categories)
    config.inference.object_mask_threshold = 0.0  # an untrained model: keep segments to write
    torch.manual_seed(0)  # the same model whatever ran before (the TTA test needs one that TTA changes)
    checkpoint = save_model(build_model(config), root / "model.pt")
    return data, checkpoint, split


def test_eval_writes_metrics_and_predictions(tmp_path, setup, capsys):
    data, checkpoint, split = setup
    out = tmp_path / "out"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"panoptic.PQ", "panoptic.PQ_th", "instance.AP", "instance.AP50", "semantic.mIoU", "semantic.pACC"} <= set(
        metrics)
    assert "semantic.mIoU" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert str(checkpoint) in report and "| split | val |" in report
    pan = json.loads((out / "panoptic.json").read_text())
    dataset_ids = {c.id for c in split.categories}
    assert {c["id"] for c in pan["categories"]} == dataset_ids  # the dataset's own (non-contiguous) ids
    assert len(pan["annotations"]) == 3
    for ann in pan["annotations"]:
        assert all(s["category_id"] in dataset_ids for s in ann["segments_info"])
        assert (out / "panoptic" / ann["file_name"]).exists()
    instances = json.loads((out / "instances.json").read_text())
    assert instances and all("counts" in r["segmentation"] for r in instances)
    labels = np.asarray(Image.open(out / "semantic" / "000000.png"))
    assert labels.max() < len(split.categories)


def test_task_selection_and_tta(tmp_path, setup):
    data, checkpoint, split = setup
    plain = evaluate_checkpoint(checkpoint, data, tasks=["semantic"])
    tta = evaluate_checkpoint(checkpoint, data, tmp_path / "tta", tasks=["semantic"], tta=True)
    assert set(plain) == set(tta) == {"semantic.mIoU", "semantic.fwIoU", "semantic.mACC", "semantic.pACC"}
    # --tta is used: what was written and scored is the multi-scale + flip average, which on this
    # model differs from the single-scale prediction
    predictor = Predictor(load_model(checkpoint))
    written = [np.asarray(Image.open(tmp_path / "tta" / "semantic" / f"{r.image_path.stem}.png"))
               for r in split.records]
    single = [predictor(split.load(i)[0], task="semantic").semantic.labels.numpy() for i in range(len(split))]
    changed = [i for i in range(len(split)) if not np.array_equal(written[i], single[i])]
    assert changed, "the TTA run wrote the single-scale labels"
    i = changed[0]
    np.testing.assert_array_equal(written[i], predictor.semantic_tta(split.load(i)[0]).semantic.labels.numpy())
    assert tta != plain
    with pytest.raises(ValueError, match="no split 'test'"):
        evaluate_checkpoint(checkpoint, data, split="test")


@pytest.mark.slow
def test_two_processes_give_the_same_numbers(tmp_path, setup):
    data, checkpoint, _ = setup
    single = evaluate_checkpoint(checkpoint, data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "mask2former", "-q", "eval", "--checkpoint", str(checkpoint), "--data", str(data),
                           "--output", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for key, value in single.items():
        assert abs(two[key] - value) < 1e-6, key
    assert len(json.loads((tmp_path / "two" / "panoptic.json").read_text())["annotations"]) == 3
