"""Training end to end on synthetic data: resume equals an uninterrupted run, a non-finite loss
stops with the iteration, fine-tuning re-initialises the heads only, 2 processes equal 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mask2former import load_model
from mask2former.cli import main
from mask2former.data.synthetic import write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny synthetic dataset; the val split is dropped so runs only train."""
    root = tmp_path_factory.mktemp("synthetic")
    path = write_synthetic(root, num_train=8, num_val=2, seed=0)
    config = yaml.safe_load(path.read_text())
    config.pop("val")
    train_only = root / "train_only.yaml"
    train_only.write_text(yaml.safe_dump(config))
    return train_only


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["-q", "train", "--data", str(data), "--preset", "tiny", "--output", str(out),
                 "--set", "num_workers=0", "log_period=1", *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).state_dict()


def test_resume_equals_uninterrupted(tmp_path, data):
    assert _train(data, tmp_path / "full", "--iters", "4") == 0
    assert _train(data, tmp_path / "part", "--iters", "4", "--set", "checkpoint_period=2") == 0
    # pretend the run died after iteration 2: keep only that checkpoint as last.pt
    ckpt = tmp_path / "part" / "checkpoints"
    os.replace(ckpt / "model_0000002.pt", ckpt / "last.pt")
    (tmp_path / "part" / "model_final.pt").unlink()
    assert _train(data, tmp_path / "part", "--iters", "4", "--resume") == 0
    full, resumed = _weights(tmp_path / "full" / "model_final.pt"), _weights(tmp_path / "part" / "model_final.pt")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    log = (tmp_path / "part" / "log.jsonl").read_text().splitlines()
    assert len(log) >= 6  # 4 iterations, then 3..4 again after the resume


def test_non_finite_loss_stops_with_the_iteration(tmp_path, data, capsys, monkeypatch):
    """The real loop through the CLI, with a criterion whose dice terms come out NaN (as an
    overflowing model would give): a NaN weight in the config is refused before training."""
    import mask2former.engine.train as engine_train

    real_build = engine_train.build_criterion

    class NaNDice(torch.nn.Module):
        def __init__(self, criterion: torch.nn.Module) -> None:
            super().__init__()
            self.criterion = criterion

        def forward(self, *args, **kwargs):
            losses = self.criterion(*args, **kwargs)
            return {k: v * float("nan") if "dice" in k else v for k, v in losses.items()}

    monkeypatch.setattr(engine_train, "build_criterion", lambda config: NaNDice(real_build(config)))
    code = _train(data, tmp_path / "nan", "--iters", "3")
    err = capsys.readouterr().err
    assert code == 1 and "non-finite loss at iteration 1" in err and "Traceback" not in err
    assert "loss_dice=nan" in err
    assert not (tmp_path / "nan" / "model_final.pt").exists()


def test_nan_loss_weight_is_refused_before_training(tmp_path, data, capsys):
    code = _train(data, tmp_path / "nan", "--iters", "3", "--set", "model.loss.dice_weight=.nan")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["error: model.loss.dice_weight: expected a finite number, got nan"]
    assert not (tmp_path / "nan").exists()  # nothing written: refused before the run started


def test_init_with_the_same_classes_keeps_every_weight(tmp_path, data):
    assert _train(data, tmp_path / "src", "--iters", "2") == 0
    source = _weights(tmp_path / "src" / "model_final.pt")
    assert _train(data, tmp_path / "same", "--iters", "1", "--init", str(tmp_path / "src" / "model_final.pt"),
                  "--set", "solver.base_lr=0.0") == 0
    tuned = _weights(tmp_path / "same" / "model_final.pt")
    for key in source:  # same classes, lr 0: everything kept
        assert torch.equal(source[key], tuned[key]), key


def test_init_with_different_class_count_reports(tmp_path, data):
    from mask2former import build_model, get_preset, save_model
    from mask2former.engine.train import initialise_from

    other = get_preset("tiny")
    other.num_classes = 9
    save_model(build_model(other), tmp_path / "nine.pt")
    model = build_model(get_preset("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = initialise_from(model, tmp_path / "nine.pt")
    assert report["reinitialised"] == ["transformer_decoder.class_embed.bias", "transformer_decoder.class_embed.weight"]
    assert torch.equal(model.state_dict()["transformer_decoder.class_embed.weight"],
                       before["transformer_decoder.class_embed.weight"])
    assert not torch.equal(model.state_dict()["transformer_decoder.query_feat.weight"],
                           before["transformer_decoder.query_feat.weight"])


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, data):
    """torchrun with 2 CPU processes (gloo), batch 1 each == 1 process with batch 2."""
    common = ["train", "--data", str(data), "--preset", "tiny", "--iters", "3", "--batch-size", "2",
              "--set", "num_workers=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "mask2former", "-q", *common, "--output", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "mask2former", "-q", *common, "--output", str(tmp_path / "two")],
                           env=env, capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-2000:]
    one, two = _weights(tmp_path / "one" / "model_final.pt"), _weights(tmp_path / "two" / "model_final.pt")
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    checkpoints = tmp_path / "two" / "checkpoints"
    assert (checkpoints / "last.pt").exists()
    assert not list(checkpoints.glob(".*.tmp"))  # atomic_write's temporary names (".last.pt.<hex>.tmp")


def test_adopting_the_dataset_returns_a_new_config_and_keeps_switched_off_tasks(data):
    from mask2former.data.data_yaml import build_split
    from mask2former.engine.train import adopt_dataset
    from mask2former.presets import training_recipe

    config = training_recipe("tiny")
    config.model.inference.panoptic_on = False  # what --set model.inference.panoptic_on=false does
    before = repr(config)
    adopted = adopt_dataset(config, build_split(data, "train"), "coco_panoptic")
    assert repr(config) == before  # the caller's config is untouched
    inference = adopted.model.inference
    assert (inference.semantic_on, inference.instance_on, inference.panoptic_on) == (True, True, False)
    assert adopted.model.num_classes == 6 and len(adopted.model.categories) == 6


def test_the_dataset_narrows_the_tasks_it_cannot_score(tmp_path, data):
    from mask2former.data.data_yaml import build_split
    from mask2former.engine.train import adopt_dataset
    from mask2former.presets import training_recipe

    root = data.parent
    semantic = {"format": "semantic", "num_classes": 6,
                "train": {"images": str(root / "images" / "train"), "masks": str(root / "semantic" / "train")}}
    path = tmp_path / "semantic.yaml"
    path.write_text(yaml.safe_dump(semantic))
    adopted = adopt_dataset(training_recipe("tiny"), build_split(path, "train"), "semantic")
    inference = adopted.model.inference
    assert (inference.semantic_on, inference.instance_on, inference.panoptic_on) == (True, False, False)


def test_class_count_overrides_are_refused_naming_where_classes_come_from(tmp_path, data, capsys):
    assert _train(data, tmp_path / "run", "--iters", "1", "--set", "model.num_classes=3") == 1
    err = capsys.readouterr().err
    assert "--set model.num_classes: the classes come from the dataset" in err


def test_the_training_split_drops_instance_images_without_a_non_crowd_annotation(tmp_path, data, caplog):
    """``input.filter_empty`` (default on) is detectron2's FILTER_EMPTY_ANNOTATIONS for instance
    data: an image whose annotations are all crowds, or that has none, is not trained on."""
    import json
    import logging

    from mask2former.config import InputConfig, TrainConfig
    from mask2former.data.coco import read_coco_instances
    from mask2former.engine.train import _data_loader

    root = data.parent
    instances = json.loads((root / "annotations" / "instances_train.json").read_text())
    first, second = instances["images"][0]["id"], instances["images"][1]["id"]
    for ann in instances["annotations"]:
        ann["iscrowd"] = 1 if ann["image_id"] == first else ann["iscrowd"]
    instances["annotations"] = [a for a in instances["annotations"] if a["image_id"] != second]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(instances))
    split = read_coco_instances(path, root / "images" / "train", name="train")
    with caplog.at_level(logging.INFO, logger="mask2former"):
        sampler, loader = _data_loader(TrainConfig(num_workers=0), split, 0)
    assert len(loader.dataset) == sampler.size == len(split) - 2 == 6
    assert "train: dropped 2 of 8 images with no non-crowd annotation" in caplog.text
    assert {r.image_id for r in loader.dataset.split.records} == {r.image_id for r in split.records} - {first, second}
    _, kept = _data_loader(TrainConfig(num_workers=0, input=InputConfig(filter_empty=False)), split, 0)
    assert len(kept.dataset) == 8


def test_cityscapes_training_learns_the_class_set_of_the_model(tmp_path):
    """As the official datasets: an 8-class model trains on the 8 Cityscapes thing classes, a
    semantic-only model on the 19 with one mask per class (groups included), when DATA.yaml does
    not name the set."""
    from dataclasses import replace

    from mask2former.engine.train import train
    from mask2former.presets import training_recipe
    from tests.data.test_cityscapes import scene, write

    write(tmp_path, {"aachen_000000_000019": scene(), "bremen_000001_000019": scene()}, "train")
    data = tmp_path / "DATA.yaml"
    data.write_text("format: cityscapes\ntrain: {images: leftImg8bit/train, masks: gtFine/train}\n")
    recipe = training_recipe("tiny")
    recipe = replace(recipe, max_iter=1, batch_size=1, num_workers=0)
    eight = replace(recipe, model=replace(recipe.model, num_classes=8))
    model = load_model(train(eight, data, tmp_path / "instance", progress=False))
    assert [c.name for c in model.config.categories] == ["person", "rider", "car", "truck", "bus", "train",
                                                         "motorcycle", "bicycle"]
    inference = replace(recipe.model.inference, semantic_on=True, instance_on=False, panoptic_on=False)
    semantic = replace(recipe, model=replace(recipe.model, inference=inference))
    model = load_model(train(semantic, data, tmp_path / "semantic", progress=False))
    assert len(model.config.categories) == 19 and not any(c.isthing for c in model.config.categories)


def test_images_too_small_for_the_model_get_our_error(tmp_path, capsys):
    """A 20x30 image trained uncropped, one per batch, leaves one value per norm group at the
    coarsest level: our error with the way out, not torch's ValueError."""
    from tests.data.test_cityscapes import scene, write

    write(tmp_path, {"aachen_000000_000019": scene()}, "train")
    data = tmp_path / "DATA.yaml"
    data.write_text("format: cityscapes\ntrain: {images: leftImg8bit/train, masks: gtFine/train}\n")
    code = main(["-q", "train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--batch-size", "1",
                 "--output", str(tmp_path / "out"), "--set", "num_workers=0", "input.augmentation=none"])
    err = capsys.readouterr().err
    assert code != 0 and "internal error" not in err
    assert "a batch of 1 image(s) padded to 32x32 px is too small for this model" in err
