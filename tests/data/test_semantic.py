"""Semantic label PNGs: one mask per class present, 255 ignored, ADE20K's reduce_zero_label."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mask2former.config import CategoryInfo
from mask2former.data.data_yaml import build_split
from mask2former.data.datasets import DatasetError
from mask2former.data.semantic import read_semantic

H, W = 20, 30


def write(root, labels: dict[str, np.ndarray], *, image_suffix=".jpg", mode=None):
    """One image per key of ``labels`` (keys may hold sub-folders) and its label PNG."""
    for key, label in labels.items():
        for folder in ("images", "masks"):
            (root / folder / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "images" / f"{key}{image_suffix}")
        Image.fromarray(label, mode).save(root / "masks" / f"{key}.png")
    return root / "images", root / "masks"


def label_map() -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[:, 10:20] = 2
    label[15:, :] = 255
    return label


def test_one_mask_per_class_and_ignore(tmp_path):
    classes = [CategoryInfo(0, "sky", False), CategoryInfo(1, "car", True), CategoryInfo(2, "road", False)]
    split = read_semantic(*write(tmp_path, {"a": label_map()}), classes=classes)
    target = split.load(0)[1]
    label = label_map()
    assert target.labels.tolist() == [0, 2]
    assert target.is_thing.tolist() == [False, False] and not target.iscrowd.any()
    assert np.array_equal(target.masks[0].numpy(), label == 0)
    assert np.array_equal(target.masks[1].numpy(), label == 2)
    assert np.array_equal(target.ignore.numpy(), label == 255)
    assert np.array_equal(target.semantic_map().numpy(), label)
    assert [c.id for c in split.categories] == [0, 1, 2] and split.categories[1].isthing


def test_reduce_zero_label(tmp_path):
    label = label_map()  # 0 -> ignore, 2 -> class 1, 255 stays ignore
    label[:5, :5] = 3
    split = read_semantic(*write(tmp_path, {"a": label}), num_classes=3, reduce_zero_label=True)
    target = split.load(0)[1]
    assert [c.name for c in split.categories] == ["class_0", "class_1", "class_2"]
    assert [c.id for c in split.categories] == [1, 2, 3]  # the pixel values in the files
    assert not any(c.isthing for c in split.categories)
    assert target.labels.tolist() == [1, 2]
    expected = np.where((label == 0) | (label == 255), 255, label.astype(np.int64) - 1)
    assert np.array_equal(target.semantic_map().numpy(), expected)


def test_values_out_of_range_hint_reduce_zero_label(tmp_path):
    label = label_map()
    label[0, 0] = 3
    split = read_semantic(*write(tmp_path, {"a": label}), num_classes=3)
    with pytest.raises(DatasetError, match=r"a\.png: mask holds values \[3\] that are not class indices .*"
                                           r"reduce_zero_label: true"):
        split.load(0)


def test_nested_folders_palette_and_16bit(tmp_path):
    palette = Image.fromarray(label_map(), "L").convert("P")
    wide = label_map().astype(np.uint16)
    wide[wide == 255] = 1000
    wide[0, 0] = 300
    images, masks = write(tmp_path, {"city/a": label_map(), "b": label_map()}, image_suffix=".png")
    palette.save(masks / "b.png")
    Image.fromarray(wide).save(masks / "city" / "a.png")
    split = read_semantic(images, masks, num_classes=301, ignore_label=1000)
    assert [r.image_id for r in split.records] == ["b", "city/a"]
    palette_target, wide_target = split.load(0)[1], split.load(1)[1]
    assert palette_target.labels.tolist() == [0, 2, 255] and not palette_target.ignore.any()
    assert wide_target.labels.tolist() == [0, 2, 300]
    assert np.array_equal(wide_target.ignore.numpy(), wide == 1000)


def test_broken_inputs(tmp_path):
    images, masks = write(tmp_path, {"a": label_map(), "b": label_map(), "c": label_map()})
    (masks / "b.png").unlink()
    Image.fromarray(label_map()[:, :10]).save(masks / "c.png")
    with pytest.raises(DatasetError, match=r"b\.jpg: mask file not found: expected .*masks/b\.png"):
        read_semantic(images, masks, num_classes=3)
    split = read_semantic(images, masks, num_classes=3, skip_bad=True)
    assert len(split) == 2 and split.skipped[0][0].endswith("b.jpg")
    with pytest.raises(DatasetError, match=r"c\.png: mask is 20x10 \(HxW\) but its image .*c\.jpg is 20x30"):
        split.load(1)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 7
    Image.fromarray(rgb).save(masks / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png: colour mask"):
        split.load(0)
    with pytest.raises(DatasetError, match="ignore_label 2 is also the pixel value of class 'class_2'"):
        read_semantic(images, masks, num_classes=3, ignore_label=2)


def test_no_matching_names(tmp_path):
    images, masks = write(tmp_path, {"a": label_map()})
    (masks / "a.png").rename(masks / "a_mask.png")
    with pytest.raises(DatasetError, match=r"masks: no mask has the name of an image \(e\.g\. image a\.jpg needs "
                                           r"mask a\.png; found masks like a_mask\.png\)"):
        read_semantic(images, masks, num_classes=3)


def test_data_yaml(tmp_path):
    write(tmp_path / "ade", {"a": label_map()})
    (tmp_path / "DATA.yaml").write_text(
        "format: semantic\nclasses: [wall, {name: person, isthing: true}, floor]\nreduce_zero_label: true\n"
        "train: {images: ade/images, masks: ade/masks}\n")
    split = build_split(tmp_path / "DATA.yaml")
    assert split.name == "train" and split.format == "semantic"
    assert [(c.id, c.name, c.isthing) for c in split.categories] == [(1, "wall", False), (2, "person", True),
                                                                      (3, "floor", False)]
    target = split.load(0)[1]
    assert target.labels.tolist() == [1] and target.is_thing.tolist() == [True]


def test_huge_num_classes_is_refused_without_allocating(tmp_path):
    images, masks = write(tmp_path, {"a": label_map()})
    with pytest.raises(DatasetError, match="num_classes: 1,000,000,000 classes are more than the 65,536"):
        read_semantic(images, masks, num_classes=10**9)


def test_label_map_readers_on_odd_files(tmp_path):
    images, masks = write(tmp_path, {"a": label_map(), "b": label_map()})
    (masks / "a.png").write_bytes((masks / "a.png").read_bytes()[:40])  # a truncated mask
    (masks / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)     # a header and nothing else
    split = read_semantic(images, masks, num_classes=3)
    for i, name in enumerate(("a", "b")):
        with pytest.raises(DatasetError, match=rf"{name}\.png: (cannot decode mask|not an image)"):
            split.load(i)


def test_a_folder_too_large_to_be_a_dataset_is_refused(tmp_path, monkeypatch):
    """Regression (fuzz): a DATA.yaml path cut short to `/tmp/` walked all of /tmp; `/` would walk the
    whole disk. The scan stops past a bound and names the folder."""
    from mask2former.data import files

    images = tmp_path / "images"
    for i in range(3):
        (images / f"d{i}").mkdir(parents=True)
        for j in range(4):
            (images / f"d{i}" / f"{j}.png").write_bytes(b"")
    monkeypatch.setattr(files, "MAX_SCANNED_ENTRIES", 10)
    with pytest.raises(DatasetError, match=r"images: holds more than 10 files and folders below it"):
        read_semantic(images, tmp_path / "masks", num_classes=3)
    assert len(files.scan_files(images, lambda name: name.endswith(".png"), limit=15)) == 12
