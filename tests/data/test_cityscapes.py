"""Cityscapes gtFine: labelIds -> 19 trainId classes, instances and crowd groups from instanceIds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mask2former import metadata
from mask2former.config import CategoryInfo
from mask2former.data.cityscapes import read_cityscapes
from mask2former.data.data_yaml import build_split
from mask2former.data.datasets import DatasetError

H, W = 20, 30
# (labelId, name, hasInstances) of the 19 evaluated classes in trainId order, from
# cityscapesscripts/helpers/labels.py (mcordts/cityscapesScripts)
TRAIN_ID_TABLE = [
    (7, "road", False), (8, "sidewalk", False), (11, "building", False), (12, "wall", False),
    (13, "fence", False), (17, "pole", False), (19, "traffic light", False), (20, "traffic sign", False),
    (21, "vegetation", False), (22, "terrain", False), (23, "sky", False), (24, "person", True),
    (25, "rider", True), (26, "car", True), (27, "truck", True), (28, "bus", True), (31, "train", True),
    (32, "motorcycle", True), (33, "bicycle", True),
]
ROAD, SKY, PERSON, CAR = 0, 10, 11, 13  # trainIds


@pytest.fixture(autouse=True)
def categories(monkeypatch) -> list[CategoryInfo]:
    """The bundled metadata must agree with cityscapesscripts; without it the table stands in."""
    table = [CategoryInfo(id=i, name=n, isthing=t) for i, n, t in TRAIN_ID_TABLE]
    try:
        bundled = metadata.load_categories("cityscapes")
    except FileNotFoundError:
        monkeypatch.setattr(metadata, "load_categories", lambda name: table)
        return table
    assert [(c.id, c.name, c.isthing) for c in bundled] == TRAIN_ID_TABLE
    return bundled


def scene() -> tuple[np.ndarray, np.ndarray]:
    label = np.full((H, W), 7, np.uint8)  # road
    inst = np.full((H, W), 7, np.uint16)  # 16-bit PNGs, as in gtFine
    label[:5], inst[:5] = 23, 23  # sky
    label[6:10, 2:6], inst[6:10, 2:6] = 26, 26000  # car 0
    label[6:10, 8:12], inst[6:10, 8:12] = 26, 26001  # car 1
    label[12:16, 2:12], inst[12:16, 2:12] = 26, 26  # a group of cars: crowd
    label[6:12, 20:22], inst[6:12, 20:22] = 24, 24000  # person
    label[14:18, 20:28], inst[14:18, 20:28] = 29, 29000  # caravan: trainId 255 -> ignore
    label[19, :], inst[19, :] = 1, 1  # ego vehicle -> ignore
    label[5, :], inst[5, :] = 9, 9  # parking -> ignore
    return label, inst


def write(root, frames: dict[str, tuple[np.ndarray, np.ndarray]], split="train"):
    for base, (label, inst) in frames.items():
        city = base.split("_")[0]
        for folder in ("leftImg8bit", "gtFine"):
            (root / folder / split / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "leftImg8bit" / split / city /
                                                             f"{base}_leftImg8bit.png")
        Image.fromarray(label).save(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png")
        Image.fromarray(inst).save(root / "gtFine" / split / city / f"{base}_gtFine_instanceIds.png")
    return root / "leftImg8bit" / split, root / "gtFine" / split


def test_target_is_exact(tmp_path):
    split = read_cityscapes(*write(tmp_path, {"aachen_000000_000019": scene()}))
    assert len(split.categories) == 19 and split.records[0].image_id == "aachen_000000_000019"
    label, inst = scene()
    target = split.load(0)[1]
    assert target.labels.tolist() == [ROAD, SKY, PERSON, CAR, CAR, CAR]
    assert target.is_thing.tolist() == [False, False, True, True, True, True]
    # instanceIds sorted within a class: 26 (the group) < 26000 < 26001
    assert target.iscrowd.tolist() == [False, False, False, True, False, False]
    expected = [label == 7, label == 23, inst == 24000, inst == 26, inst == 26000, inst == 26001]
    for got, want in zip(target.masks.numpy(), expected):
        assert np.array_equal(got, want)
    assert np.array_equal(target.ignore.numpy(), np.isin(label, [29, 1, 9]))
    semantic = target.semantic_map().numpy()
    assert semantic[7, 3] == CAR and semantic[15, 22] == 255 and semantic[0, 0] == SKY


def test_through_data_yaml_and_missing_files(tmp_path):
    images, masks = write(tmp_path, {"aachen_000000_000019": scene(), "bonn_000001_000019": scene()}, "val")
    (tmp_path / "DATA.yaml").write_text("format: cityscapes\nval: {images: leftImg8bit/val, masks: gtFine/val}\n")
    assert len(build_split(tmp_path / "DATA.yaml", "val")) == 2
    (masks / "bonn" / "bonn_000001_000019_gtFine_instanceIds.png").unlink()
    with pytest.raises(DatasetError, match=r"bonn_000001_000019_leftImg8bit\.png: mask file not found: "
                                           r".*bonn_000001_000019_gtFine_instanceIds\.png"):
        build_split(tmp_path / "DATA.yaml", "val")
    split = build_split(tmp_path / "DATA.yaml", "val", skip_bad=True)
    assert len(split) == 1 and len(split.skipped) == 1
    label, inst = scene()
    Image.fromarray(inst[:, :25]).save(masks / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png")
    with pytest.raises(DatasetError, match=r"instanceIds\.png: mask is 20x25"):
        split.load(0)
    with pytest.raises(DatasetError, match="no \\*_leftImg8bit.png files found"):
        read_cityscapes(tmp_path / "gtFine", masks)


def test_label_values_outside_a_byte_are_void_not_wrapped(tmp_path):
    """A signed 32-bit file (Pillow reads TIFF content whatever the name) with a negative labelId
    would index the 256-entry tables from their end."""
    label, inst = scene()
    images, masks = write(tmp_path, {"aachen_000000_000019": (label, inst)})
    odd = label.astype(np.int32)
    odd[0, :] = -230   # -230 + 256 = 26: car, if wrapped
    odd[1, :] = 7 + 256
    Image.fromarray(odd).save(masks / "aachen" / "aachen_000000_000019_gtFine_labelIds.png", format="TIFF")
    target = read_cityscapes(images, masks).load(0)[1]
    assert target.ignore[0].all() and target.ignore[1].all()
    assert target.labels.tolist() == [ROAD, SKY, PERSON, CAR, CAR, CAR]


# the 8 classes of the official instance models (cityscapes_fine_instance_seg): the evaluated
# labels with hasInstances, in labelId order (cityscapesscripts/helpers/labels.py)
INSTANCE_TABLE = [(24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
                  (32, "motorcycle"), (33, "bicycle")]


def test_instance_class_set_is_the_8_thing_classes(tmp_path):
    images, masks = write(tmp_path, {"aachen_000000_000019": scene()})
    (masks / "aachen" / "aachen_000000_000019_gtFine_labelIds.png").unlink()  # not read by this set
    split = read_cityscapes(images, masks, classes="instance")
    assert [(c.id, c.name, c.isthing) for c in split.categories] == [(i, n, True) for i, n in INSTANCE_TABLE]
    label, inst = scene()
    target = split.load(0)[1]
    assert target.labels.tolist() == [0, 2, 2, 2]  # person; car group, car 0, car 1
    assert target.iscrowd.tolist() == [False, True, False, False]
    for got, want in zip(target.masks.numpy(), [inst == 24000, inst == 26, inst == 26000, inst == 26001]):
        assert np.array_equal(got, want)
    assert not target.ignore.any()  # road, sky, caravan: background of an instance set, not void


def test_semantic_class_set_is_one_mask_per_class_groups_included(tmp_path):
    images, masks = write(tmp_path, {"aachen_000000_000019": scene()})
    (masks / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png").unlink()  # not read by this set
    split = read_cityscapes(images, masks, classes="semantic")
    assert [c.id for c in split.categories] == [i for i, _, _ in TRAIN_ID_TABLE]
    assert not any(c.isthing for c in split.categories)  # nothing is annotated per instance
    label, _ = scene()
    target = split.load(0)[1]
    assert target.labels.tolist() == [ROAD, SKY, PERSON, CAR]
    assert not target.iscrowd.any()
    for got, want in zip(target.masks.numpy(), [label == 7, label == 23, label == 24, label == 26]):
        assert np.array_equal(got, want)  # the car mask holds both cars and the group
    assert np.array_equal(target.ignore.numpy(), np.isin(label, [29, 1, 9]))


def test_data_yaml_and_the_model_choose_the_class_set(tmp_path):
    from mask2former import get_preset
    from mask2former.data.data_yaml import for_model, load_data_config
    from mask2former.evaluation.tasks import tasks_for

    write(tmp_path, {"aachen_000000_000019": scene()}, "val")
    data = tmp_path / "DATA.yaml"
    data.write_text("format: cityscapes\nval: {images: leftImg8bit/val, masks: gtFine/val}\n")
    config = load_data_config(data)
    assert config.cityscapes_classes is None and len(build_split(config, "val").categories) == 19
    chosen = {name: for_model(config, get_preset(name)).cityscapes_classes
              for name in ("r50_cityscapes_instance", "r50_cityscapes_semantic", "r50_cityscapes_panoptic")}
    assert chosen == {"r50_cityscapes_instance": "instance", "r50_cityscapes_semantic": "semantic",
                      "r50_cityscapes_panoptic": "panoptic"}
    instance = build_split(for_model(config, get_preset("r50_cityscapes_instance")), "val")
    assert len(instance.categories) == 8 and tasks_for("cityscapes", instance.categories) == ("instance",)
    semantic = build_split(for_model(config, get_preset("r50_cityscapes_semantic")), "val")
    assert tasks_for("cityscapes", semantic.categories) == ("semantic",)
    data.write_text("format: cityscapes\nclasses: instance\nval: {images: leftImg8bit/val, masks: gtFine/val}\n")
    config = load_data_config(data)
    assert for_model(config, get_preset("r50_cityscapes_panoptic")).cityscapes_classes == "instance"  # as written
    assert len(build_split(config, "val").categories) == 8
