"""DATA.yaml parsing and the DatasetSplit API shared by every reader."""

from __future__ import annotations

import json
import pickle
import time
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
    ("format: coco_instances\nreduce_zero_label: true\n", "'reduce_zero_label' is not used by format "
                                                          "'coco_instances' \\(only by: coco_panoptic, semantic\\)"),
    ("format: coco_panoptic\nignore_label: 0\ntrain: {images: a, annotations: b, masks: c}\n",
     "'ignore_label' describes the 'semantic' label PNGs of a split, and no split names any"),
    ("format: coco_panoptic\nval: {images: a, annotations: b, masks: c, instance: d}\n",
     "val: unknown key 'instance'; did you mean 'instances'"),
    ("format: semantic\nnum_classes: 3\nval: {images: a, masks: c, instances: d}\n",
     "val: unknown key 'instances' \\(format 'semantic' uses only: images, masks\\)"),
    ("format: cityscapes\nclasses: instances\nval: {images: a, masks: c}\n",
     "classes: format 'cityscapes' takes instance \\(the 8 thing classes\\) or semantic / panoptic \\(the 19\\), "
     "got 'instances'; did you mean 'instance'"),
    ("format: cityscapes\nclasses: [car]\nval: {images: a, masks: c}\n", "classes: format 'cityscapes' takes"),
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


# --------------------------------------------------------------------------- hostile DATA.yaml files


@pytest.mark.parametrize("data, message", [
    (b"format: semantic\nnum_classes: 3\ntrain: {images: \xe9t\xe9, masks: m}\n", r"not UTF-8 text \(invalid"),
    (b'format: "semantic\\x"\n', "malformed YAML at line 1 column 20: .*hexdecimal"),
    (b"format: semantic\nformat: folder\n", "malformed YAML at line 2 column 1: duplicate key 'format'"),
])
def test_unreadable_data_yaml_names_the_file(tmp_path, data, message):
    path = tmp_path / "DATA.yaml"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=f"DATA.yaml: {message}"):
        load_data_config(path)


def test_a_folder_or_odd_path_instead_of_data_yaml(tmp_path):
    (tmp_path / "DATA.yaml").mkdir()
    with pytest.raises(DatasetError, match="DATA.yaml: is a directory, expected a YAML file"):
        load_data_config(tmp_path / "DATA.yaml")
    with pytest.raises(DatasetError, match="cannot read the file"):
        load_data_config(tmp_path / ("y" * 300 + ".yaml"))


SPLIT = "train: {images: d/images, masks: d/masks}\n"


@pytest.mark.parametrize("text, message", [
    ("format: semantic\nnum_classes: 3\ntrain: {images: [a, b], masks: m}\n",
     r"train\.images: expected a path, got \['a', 'b'\]"),
    ("format: semantic\nnum_classes: 3\ntrain: {images: 5, masks: m}\n", r"train\.images: expected a path, got 5"),
    ("format: semantic\nnum_classes: 3\ntrain: {images: null, masks: m}\n", "train.images: expected a path, got None"),
    ("format: semantic\nnum_classes: 3\ntrain: {images: '', masks: m}\n", "train.images: expected a path, got ''"),
    ("format: semantic\nnum_classes: 3\ntrain: [a, b]\n",            # was: "unknown key 'train'; did you mean 'train'"
     r"train: expected a mapping of images, masks paths, got \['a', 'b'\]"),
    ("format: [coco]\n", r"unknown format \['coco'\]; expected one of"),
    ("format: semantic\nnum_classes: 3\n? " + "x" * 5000 + "\n: 1\n" + SPLIT, r"unknown key 'x{20,30}\.\.\.x{20,30}';"),
    ("format: folder\nclasses: [1.5]\n" + SPLIT, r"classes\[0\]: expected a name or a mapping with 'name', got 1.5"),
    ("format: folder\nclasses: [[a]]\n" + SPLIT, r"classes\[0\]: expected a name or a mapping"),
    ("format: folder\nclasses: [{name: [x]}]\n" + SPLIT, r"classes\[0\]\.name: expected a string, got \['x'\]"),
    ("format: folder\nclasses: [{name: a, color: [1, 2, x]}]\n" + SPLIT,   # was: ValueError from int('x')
     r"classes\[0\]\.color must be \[r, g, b\] of integers 0-255, got \[1, 2, 'x'\]"),
    ("format: folder\nclasses: [{name: a, color: [1, 2, 999]}]\n" + SPLIT, r"classes\[0\]\.color must be"),
    ("format: folder\nclasses: [{name: a, color: [.nan, 2, 3]}]\n" + SPLIT, r"classes\[0\]\.color must be"),
    ("format: folder\nclasses: [{name: a, isthing: maybe}]\n" + SPLIT, r"classes\[0\]\.isthing: expected true"),
    ("format: folder\nclasses: [a, b]\nmask_values: {1.5: 1}\n" + SPLIT,     # was: silently read as pixel value 1
     "mask_values: keys and values must be integers, got 1.5: 1"),
    ("format: folder\nclasses: [a, b]\nmask_values: {0: true}\n" + SPLIT, "mask_values: keys and values must be"),
    ("format: folder\nclasses: [a, b]\nmask_values: {99999999999: 1}\n" + SPLIT,
     r"mask_values: 99999999999: 1 is outside 0\.\.2147483647"),
    ("format: semantic\nnum_classes: 3\nignore_label: 99999999999\n" + SPLIT,
     "ignore_label: expected a non-negative integer below 2,147,483,648 .*got 99999999999"),
    ("format: semantic\nnum_classes: 3\nignore_label: 255.0\n" + SPLIT, "ignore_label: expected a non-negative"),
    ("format: semantic\nnum_classes: 1000000000\n" + SPLIT,
     "num_classes: 1,000,000,000 classes are more than the 65,536 this toolkit supports"),
    ("format: semantic\nnum_classes: true\n" + SPLIT, "num_classes: expected a positive integer, got True"),
    ("format: semantic\nnum_classes: 3\nreduce_zero_label: maybe\n" + SPLIT, "reduce_zero_label: expected true"),
])
def test_wrong_types_everywhere_in_data_yaml(tmp_path, text, message):
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=f"DATA.yaml: {message}") as caught:
        load_data_config(yaml_file(tmp_path, text))
    assert time.perf_counter() - start < 1 and len(str(caught.value)) < 400


def test_paths_that_break_pathlib(tmp_path):
    write_semantic(tmp_path / "d")
    long_name = "x" * 300
    path = yaml_file(tmp_path, f"format: semantic\nnum_classes: 3\ntrain: {{images: {long_name}, masks: d/masks}}\n"
                               "val: {images: ~nosuchuser9/images, masks: d/masks}\n"
                               "test: {images: d/images/0.jpg, masks: d/masks}\n")
    with pytest.raises(DatasetError, match=r"unusable path \(name too long\) \(train\.images in"):
        build_split(path, "train")                                   # was: OSError from Path.exists
    with pytest.raises(DatasetError, match=r"nosuchuser9/images: not found \(val\.images in"):
        build_split(path, "val")                                     # was: RuntimeError from expanduser
    with pytest.raises(DatasetError, match=r"0\.jpg: is not a directory \(test\.images in"):
        build_split(path, "test")


def test_classes_files_that_are_not_text(tmp_path):
    write_semantic(tmp_path / "d")
    base = "format: folder\ntrain: {images: d/images, masks: d/masks}\nclasses: "
    (tmp_path / "classes.txt").write_bytes(b"sky\n\xff\xferoad\n")
    with pytest.raises(DatasetError, match=r"classes\.txt: not UTF-8 text"):
        load_data_config(yaml_file(tmp_path, base + "classes.txt\n"))
    (tmp_path / "classes.json").mkdir()
    with pytest.raises(DatasetError, match=r"DATA\.yaml: classes: file .*classes\.json is a directory"):
        load_data_config(yaml_file(tmp_path, base + "classes.json\n"))
    (tmp_path / "classes.yaml").write_text("{classes: [a, b], classes: [c]}\n")
    with pytest.raises(DatasetError, match=r"classes\.yaml: malformed YAML at line 1 column 19: duplicate key"):
        load_data_config(yaml_file(tmp_path, base + "classes.yaml\n"))


def test_a_long_class_list_with_a_duplicate_is_checked_in_linear_time(tmp_path):
    (tmp_path / "classes.txt").write_text("\n".join(f"c{i}" for i in range(60_000)) + "\nc7\n")
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"classes\.txt: classes: duplicate names \['c7'\]"):
        load_data_config(yaml_file(tmp_path, "format: folder\nclasses: classes.txt\n" + SPLIT))
    assert time.perf_counter() - start < 5  # list.count per name took minutes


def test_mask_values_from_json_keep_their_string_keys():
    cfg = data_config_from_dict({"format": "folder", "classes": ["a", "b"], "mask_values": {"0": 0, "255": "1"},
                                 "train": {"images": "i", "masks": "m"}})
    assert cfg.mask_values == {0: 0, 255: 1}
    for bad in ({"²": 1}, {"+-5": 1}, {"1.5": 1}):
        with pytest.raises(DatasetError, match="mask_values: keys and values must be integers"):
            data_config_from_dict({"format": "folder", "classes": ["a"], "mask_values": bad,
                                   "train": {"images": "i", "masks": "m"}})


# --------------------------------------------------------------------------- ground truth beside the panoptic PNGs

GT_H, GT_W = 64, 80
THING, GROUND, OTHER = 0, 1, 2  # contiguous classes of category ids 1, 5, 7
RECT_A, RECT_C, CROWD, RECT_B = (8, 48, 8, 48), (10, 30, 55, 75), (50, 62, 0, 40), (20, 40, 20, 60)  # y0, y1, x0, x1


def _box(rect) -> np.ndarray:
    mask = np.zeros((GT_H, GT_W), bool)
    mask[rect[0]:rect[1], rect[2]:rect[3]] = True
    return mask


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def write_panoptic_with_ground_truth(root: Path) -> Path:
    """A COCO panoptic split of two images with an instances JSON and semantic label PNGs that
    disagree with the panoptic PNGs as the official files do: thing A's JSON ``area`` (10000) puts
    it among large objects though it covers 1600 px; the JSON has a crowd region the panoptic
    annotation calls ground; the label PNGs (ADE-style, 0 = void, class + 1) void the top rows
    and call the crowd region a thing. The JSON's image ids differ from the panoptic ones."""
    from mask2former.formats import id_to_rgb

    for folder in ("images/val", "panoptic/val", "semantic/val"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    pan_images, pan_anns = [], []
    for image_id, name, things in ((1, "a.png", [(RECT_A, 1), (RECT_C, 7)]), (2, "b.png", [(RECT_B, 1)])):
        Image.fromarray(np.random.default_rng(image_id).integers(0, 255, (GT_H, GT_W, 3), np.uint8)).save(
            root / "images/val" / name)
        ids = np.full((GT_H, GT_W), 1, np.int64)
        segments = [{"id": 1, "category_id": 5, "iscrowd": 0}]
        for k, (rect, category) in enumerate(things):
            ids[_box(rect)] = k + 2
            segments.append({"id": k + 2, "category_id": category, "iscrowd": 0})
        ids[-1] = 0  # void
        Image.fromarray(id_to_rgb(ids)).save(root / "panoptic/val" / name)
        labels = np.select([ids == 0, ids == 1] + [ids == k + 2 for k in range(len(things))],
                           [0, GROUND + 1] + [(THING if c == 1 else OTHER) + 1 for _, c in things])
        labels[:6] = 0
        if name == "a.png":
            labels[_box(CROWD)] = THING + 1
        Image.fromarray(labels.astype(np.uint8)).save(root / "semantic/val" / name)
        pan_images.append({"id": image_id, "file_name": name, "height": GT_H, "width": GT_W})
        pan_anns.append({"image_id": image_id, "file_name": name, "segments_info": segments})
    categories = [{"id": 1, "name": "thing", "isthing": 1}, {"id": 5, "name": "ground", "isthing": 0},
                  {"id": 7, "name": "other", "isthing": 1}]
    (root / "panoptic_val.json").write_text(json.dumps({"images": pan_images, "annotations": pan_anns,
                                                        "categories": categories}))
    y0, y1, x0, x1 = RECT_A
    instances = [
        {"image_id": "ia", "category_id": 1, "iscrowd": 0, "area": 10000.0,
         "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "bbox": [x0, y0, x1 - x0, y1 - y0]},
        {"image_id": "ia", "category_id": 7, "iscrowd": 0, "area": 400.0, "segmentation": _rle(_box(RECT_C))},
        {"image_id": "ia", "category_id": 1, "iscrowd": 1, "area": 480.0, "segmentation": _rle(_box(CROWD))},
        {"image_id": "ib", "category_id": 1, "iscrowd": 0, "area": 800.0, "segmentation": _rle(_box(RECT_B))},
    ]
    (root / "instances_val.json").write_text(json.dumps({
        "images": [{"id": "ib", "file_name": "b.png", "height": GT_H, "width": GT_W},
                   {"id": "ia", "file_name": "a.png", "height": GT_H, "width": GT_W}],
        "annotations": [{"id": 100 + k, **a} for k, a in enumerate(instances)],
        "categories": [{"id": 1, "name": "thing"}, {"id": 7, "name": "other"}]}))
    data = root / "DATA.yaml"
    data.write_text("format: coco_panoptic\nreduce_zero_label: true\n"
                    "val: {images: images/val, annotations: panoptic_val.json, masks: panoptic/val,\n"
                    "      instances: instances_val.json, semantic: semantic/val}\n")
    return data


def test_instances_json_and_semantic_pngs_are_matched_to_the_images(tmp_path):
    from mask2former.data.ground_truth import INSTANCES, SEMANTIC

    split = build_split(write_panoptic_with_ground_truth(tmp_path), "val")
    a, b = split.records
    assert [ann["area"] for ann in a.extra[INSTANCES].annotations] == [10000.0, 400.0, 480.0]  # verbatim
    assert [ann["id"] for ann in b.extra[INSTANCES].annotations] == [103]
    labels = a.extra[SEMANTIC].read(GT_H, GT_W)  # 0 -> void (255), v -> v - 1
    assert (labels[:6] == 255).all() and (labels[-1] == 255).all()
    assert (labels[_box(CROWD)] == THING).all() and (labels[_box(RECT_C)] == OTHER).all()
    assert labels[30, 70] == GROUND


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["images"].pop(0), r"instances_val\.json: has no image b\.\* \(nor an image id 2 without a "
                                   r"file_name\)"),
    (lambda d: d["categories"].append({"id": 5, "name": "ground"}),
     r"categories\[2\]: id 5 is not a thing class of the split's annotations \(thing ids: \[1, 7\]\)"),
    (lambda d: d["annotations"][3].pop("area"), r"annotations\[3\] \(image id 'ib'\): missing 'area'"),
    (lambda d: d["annotations"][0].update(category_id=2), r"annotations\[0\] \(image id 'ia'\): category_id 2"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, float("nan"), 4, 5, 6]]),
     r"annotations\[0\] .*NaN"),
    (lambda d: d["images"].append({"id": "x", "file_name": "sub/a.jpg"}), r"several images are named a\.\*"),
])
def test_a_broken_instances_json_is_named_with_its_problem(tmp_path, edit, message):
    data = write_panoptic_with_ground_truth(tmp_path)
    _edit_json(tmp_path / "instances_val.json", edit)
    with pytest.raises(DatasetError, match=message):
        build_split(data, "val")


def test_a_missing_or_wrong_semantic_png_is_named(tmp_path):
    data = write_panoptic_with_ground_truth(tmp_path)
    Image.fromarray(np.full((GT_H, GT_W), 4, np.uint8)).save(tmp_path / "semantic/val/a.png")
    split = build_split(data, "val")
    with pytest.raises(DatasetError, match=r"semantic/val/a\.png: mask holds values \[4\] that are not class "
                                           r"indices \(1\.\.3 for the 3 classes, 255 and 0 = ignore\)"):
        split.records[0].extra["semantic"].read(GT_H, GT_W)
    (tmp_path / "semantic/val/b.png").unlink()
    with pytest.raises(DatasetError, match=r"b\.png: semantic label PNG .*semantic/val/b\.png not found"):
        build_split(data, "val")
