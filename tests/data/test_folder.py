"""Custom image + mask folders: instances of thing classes by connected components, mask_values,
and the binary 0/255-mask trap."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from mask2former.config import CategoryInfo
from mask2former.data.data_yaml import build_split
from mask2former.data.datasets import DatasetError
from mask2former.data.folder import read_folder

H, W = 20, 30
CLASSES = [CategoryInfo(0, "background", False), CategoryInfo(1, "cell", True), CategoryInfo(2, "tissue", False)]


def write(root, masks: list[np.ndarray]):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i, mask in enumerate(masks):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "images" / f"img{i}.jpg")
        Image.fromarray(mask).save(root / "masks" / f"img{i}.png")
    return root / "images", root / "masks"


def cells() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[2:5, 2:5] = 1          # cell A
    mask[5:7, 5:7] = 1          # touches A only at a corner: same instance with 8-connectivity
    mask[10:14, 20:25] = 1      # cell B
    mask[15:, :10] = 2          # tissue, two separate pieces: one stuff mask
    mask[15:, 20:] = 2
    mask[0, :] = 255            # void
    return mask


def test_thing_instances_by_connected_components(tmp_path):
    split = read_folder(*write(tmp_path, [cells()]), classes=CLASSES)
    target = split.load(0)[1]
    mask = cells()
    assert target.labels.tolist() == [0, 1, 1, 2]
    assert target.is_thing.tolist() == [False, True, True, False] and not target.iscrowd.any()
    a = np.zeros((H, W), bool)
    a[2:5, 2:5] = a[5:7, 5:7] = True
    b = np.zeros((H, W), bool)
    b[10:14, 20:25] = True
    for got, want in zip(target.masks.numpy(), [mask == 0, a, b, mask == 2]):
        assert np.array_equal(got, want)
    assert np.array_equal(target.ignore.numpy(), mask == 255)
    assert np.array_equal(target.semantic_map().numpy(), mask)


def test_mask_values_for_binary_masks(tmp_path):
    binary = np.where(cells() == 1, 255, 0).astype(np.uint8)
    classes = [CategoryInfo(0, "background", False), CategoryInfo(1, "lesion", True)]
    split = read_folder(*write(tmp_path, [binary]), classes=classes, mask_values={0: 0, 255: 1})
    assert [c.id for c in split.categories] == [0, 255]  # the pixel values meaning each class
    target = split.load(0)[1]
    assert target.labels.tolist() == [0, 1, 1] and not target.ignore.any()
    assert np.array_equal(target.semantic_map().numpy(), (binary == 255).astype(np.int64))


def test_binary_trap_is_caught_at_build(tmp_path):
    binary = np.where(cells() == 1, 255, 0).astype(np.uint8)
    images, masks = write(tmp_path, [binary, binary])
    classes = CLASSES[:2]
    with pytest.raises(DatasetError, match=r"masks: the first 2 masks hold only the values 0 and 255.*"
                                           r"mask_values: \{0: 0, 255: 1\}"):
        read_folder(images, masks, classes=classes)
    # saying that 255 really is void silences the check
    split = read_folder(images, masks, classes=classes, mask_values={0: 0, 255: 255})
    target = split.load(0)[1]
    assert target.labels.tolist() == [0] and np.array_equal(target.ignore.numpy(), binary == 255)


def test_values_that_are_not_class_indices(tmp_path):
    mask = cells()
    mask[3, 3] = 7
    images, masks = write(tmp_path, [mask])
    with pytest.raises(DatasetError, match=r"img0\.png: mask holds values \[7\] that are not class indices.*"
                                           r"mask_values"):
        read_folder(images, masks, classes=CLASSES).load(0)
    split = read_folder(images, masks, classes=CLASSES, mask_values={0: 0, 1: 1, 2: 2}, skip_bad=True)
    with pytest.raises(DatasetError, match=r"neither keys of mask_values \[0, 1, 2\] nor ignore_label 255"):
        split.load(0)
    assert split.load_or_none(0) is None and split.load_or_none(0) is None
    assert len(split.skipped) == 1 and split.skipped[0][0].endswith("img0.png")
    with pytest.raises(DatasetError, match="maps pixel value 9 to 5, which is neither a class index 0..2"):
        read_folder(images, masks, classes=CLASSES, mask_values={9: 5})
    with pytest.raises(DatasetError, match="ignore_label 1 is also the index of class 'cell'"):
        read_folder(images, masks, classes=CLASSES, ignore_label=1)


@pytest.mark.parametrize("kind", ["inline", "txt", "json", "yaml"])
def test_classes_from_yaml_or_files(tmp_path, kind):
    write(tmp_path / "data", [cells()])
    if kind == "txt":
        (tmp_path / "classes.txt").write_text("# my classes\nbackground\ncell\n\ntissue\n")
    elif kind == "json":
        (tmp_path / "classes.json").write_text(json.dumps({"classes": [
            "background", {"name": "cell", "isthing": True}, {"name": "tissue", "color": [1, 2, 3]}]}))
    elif kind == "yaml":
        (tmp_path / "classes.yaml").write_text("- background\n- {name: cell, isthing: true}\n- tissue\n")
    classes = "[background, {name: cell, isthing: true}, tissue]" if kind == "inline" else f"classes.{kind}"
    (tmp_path / "DATA.yaml").write_text(f"format: folder\nclasses: {classes}\n"
                                        "train:\n  images: data/images\n  masks: data/masks\n")
    split = build_split(tmp_path / "DATA.yaml")
    assert [c.name for c in split.categories] == ["background", "cell", "tissue"]
    assert [c.isthing for c in split.categories] == [False, kind != "txt", False]
    assert split.load(0)[1].labels.tolist() == ([0, 1, 1, 2] if kind != "txt" else [0, 1, 2])
    if kind == "json":
        assert split.categories[2].color == (1, 2, 3)


def test_class_list_errors(tmp_path):
    write(tmp_path / "data", [cells()])
    base = "format: folder\ntrain: {images: data/images, masks: data/masks}\n"
    for classes, message in (("", "format 'folder' needs 'classes'"),
                             ("classes: [a, {name: b, isthng: true}]\n", r"classes\[1\]: unknown key 'isthng'; "
                                                                          "did you mean 'isthing'"),
                             ("classes: [a, a]\n", r"duplicate names \['a'\]"),
                             ("classes: missing.txt\n", "classes: file .*missing.txt not found")):
        (tmp_path / "DATA.yaml").write_text(base + classes)
        with pytest.raises(DatasetError, match=message):
            build_split(tmp_path / "DATA.yaml")


def test_a_mask_of_countless_instances_is_refused_before_allocating(tmp_path):
    """Every other pixel of every other row is a cell of its own (8-connectivity keeps them
    apart): 90,000 instances + the background, 600x600 each, would take 30 GB."""
    board = np.zeros((600, 600), np.uint8)
    board[::2, ::2] = 1
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((600, 600, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(board).save(tmp_path / "masks" / "a.png")
    split = read_folder(tmp_path / "images", tmp_path / "masks", classes=CLASSES)
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"a\.png: 90,001 segments of 600x600 pixels would take 30\.2 GB"):
        split.load(0)
    assert time.perf_counter() - start < 5
