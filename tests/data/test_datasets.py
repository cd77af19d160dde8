"""DATA.yaml parsing and the DatasetSplit API shared by every reader."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.data.data_yaml import build_split, data_config_from_dict, load_data_config
from mask2former.data.datasets import DatasetError

H, W = 20, 30


def write_semantic(root, n=2, labels=(0, 2)):
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = np.full((H, W), labels[0], np.uint8)
        label[:, 15:] = labels[1]
        label[0] = 255
        Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(root / "images" / f"{i}.jpg")
        Image.fromarray(label).save(root / "masks" / f"{i}.png")


def yaml_file(tmp_path, text: str):
    path = tmp_path / "DATA.yaml"
    path.write_text(text)
    return path


def test_paths_are_relative_to_the_yaml_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg = load_data_config(yaml_file(tmp_path / "sub", "format: coco_panoptic\n"
                                     "train: {images: img, annotations: /abs/p.json, masks: ../pan}\n"))
    assert cfg.format == "coco_panoptic" and cfg.source == tmp_path / "sub" / "DATA.yaml"
    assert cfg.splits["train"] == {"images": tmp_path / "sub" / "img", "annotations": Path("/abs/p.json"),
                                   "masks": tmp_path / "sub" / ".." / "pan"}


@pytest.mark.parametrize("text, message", [
    ("format: coco_panoptc\n", "unknown format 'coco_panoptc'; did you mean 'coco_panoptic'"),
    ("classes: [a]\n", "missing 'format'"),
    ("format: semantic\nnum_clases: 3\ntrain: {images: a, masks: b}\n",
     "unknown key 'num_clases'; did you mean 'num_classes'"),
    ("format: folder\nclasses: [a]\nmask_value: {0: 0, 255: 1}\ntrain: {images: a, masks: b}\n",
     "unknown key 'mask_value'; did you mean 'mask_values'"),
    ("format: semantic\nnum_classes: 3\ntrain: {images: a, maks: b}\n",
     "train: unknown key 'maks'; did you mean 'masks'"),
    ("format: coco_instances\ntrain: {images: a}\n", "train: format 'coco_instances' needs 'annotations'"),
    ("format: coco_instances\ntrain: {images: a, annotations: b, masks: c}\n",
     "train: unknown key 'masks' \\(format 'coco_instances' uses only: images, annotations\\)"),
    ("format: semantic\ntrain: {images: a, masks: b}\n", "format 'semantic' needs 'classes' or 'num_classes'"),
    ("format: coco_panoptic\nreduce_zero_label: true\n", "'reduce_zero_label' is not used by format "
                                                         "'coco_panoptic' \\(only by: semantic\\)"),
    ("format: semantic\nnum_classes: 3\n", "no splits"),
    ("format: semantic\nnum_classes: 0\ntrain: {images: a, masks: b}\n", "num_classes: expected a positive integer"),
    ("format: folder\nclasses: [a]\nmask_values: {0: x}\ntrain: {images: a, masks: b}\n",
     "mask_values: keys and values must be integers"),
    ("format: semantic\nclasses: [a, b]\nnum_classes: 3\ntrain: {images: a, masks: b}\n",
     "num_classes is 3 but 'classes' lists 2"),
    ("format: semantic\n  bad: [\n", "malformed YAML at line 2"),
])
def test_config_errors_name_the_file_and_suggest(tmp_path, text, message):
    with pytest.raises(DatasetError, match=f"DATA.yaml: {message}"):
        load_data_config(yaml_file(tmp_path, text))


def test_split_lookup_and_missing_paths(tmp_path):
    write_semantic(tmp_path / "d")
    path = yaml_file(tmp_path, "format: semantic\nnum_classes: 3\ntrain: {images: d/images, masks: d/masks}\n"
                               "validation: {images: d/images, masks: nowhere}\n")
    with pytest.raises(DatasetError, match="DATA.yaml: no split 'val'; did you mean 'validation'"):
        build_split(path, "val")
    with pytest.raises(DatasetError, match=r"nowhere: not found \(validation\.masks in .*DATA\.yaml\)"):
        build_split(path, "validation")
    cfg = data_config_from_dict({"format": "semantic", "num_classes": 3,
                                 "train": {"images": "d/images", "masks": "d/masks"}}, base_dir=tmp_path)
    assert len(build_split(cfg)) == 2


def test_load_and_summary(tmp_path):
    write_semantic(tmp_path / "d", n=3)
    path = yaml_file(tmp_path, "format: semantic\nclasses: [sky, {name: car, isthing: true}, road]\n"
                               "train: {images: d/images, masks: d/masks}\n")
    split = build_split(path)
    image, target = split.load(1)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and (image == 9).all()
    assert target.masks.dtype == target.ignore.dtype == target.is_thing.dtype == target.iscrowd.dtype
    assert target.labels.dtype.is_floating_point is False and target.labels.tolist() == [0, 2]
    assert split.segment_counts() is None
    assert split.segment_counts(scan=True) == ([3, 0, 3], [3, 0, 3])
    text = split.summary(scan=True)
    assert text.splitlines()[0] == "train (semantic): 3 images, 0 skipped, 3 classes (1 thing, 2 stuff)"
    assert "never annotated" in [line for line in text.splitlines() if " car " in line][0]
    assert "summary(scan=True)" in split.summary()


def test_skip_bad_and_load_or_none(tmp_path):
    write_semantic(tmp_path / "d", n=3)
    (tmp_path / "d" / "images" / "1.jpg").write_bytes(b"not an image")
    (tmp_path / "d" / "masks" / "2.png").unlink()
    path = yaml_file(tmp_path, "format: semantic\nnum_classes: 3\ntrain: {images: d/images, masks: d/masks}\n")
    with pytest.raises(DatasetError, match=r"2\.jpg: mask file not found"):
        build_split(path)
    strict = build_split(path, skip_bad=True)
    strict.skip_bad = False
    with pytest.raises(DatasetError, match=r"1\.jpg: not an image"):
        strict.load_or_none(1)  # without skip_bad it raises like load
    split = build_split(path, skip_bad=True)
    assert len(split) == 2 and [r.split("/")[-1] for r, _ in split.skipped] == ["2.jpg"]
    assert split.load_or_none(0) is not None
    assert split.load_or_none(1) is None and split.load_or_none(1) is None  # remembered, recorded once
    assert [(f.split("/")[-1], reason) for f, reason in split.skipped[1:]] == [
        ("1.jpg", "not an image (Pillow cannot identify the file format)")]
    assert "skipped" in split.summary(scan=True)
    for i in range(3):
        (tmp_path / "d" / "masks" / f"{i}.png").unlink(missing_ok=True)
    with pytest.raises(DatasetError, match=r"every record of split 'train' failed its checks \(3 skipped\)"):
        build_split(path, skip_bad=True)


def test_errors_pickle_across_workers():
    error = pickle.loads(pickle.dumps(DatasetError("a.png", "broken")))
    assert isinstance(error, ValueError) and str(error) == "a.png: broken" and error.path == "a.png"


def test_split_pickles_for_dataloader_workers(tmp_path):
    write_semantic(tmp_path / "d")
    path = yaml_file(tmp_path, "format: folder\nclasses: [a, b, c]\ntrain: {images: d/images, masks: d/masks}\n")
    split = pickle.loads(pickle.dumps(build_split(path)))
    assert split.load(0)[1].labels.tolist() == [0, 2]
