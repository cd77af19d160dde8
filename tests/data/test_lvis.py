"""LVIS: images found from coco_url or file_name, evaluation ids kept on the record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former.data.data_yaml import build_split
from mask2former.data.datasets import DatasetError
from mask2former.data.lvis import read_lvis

H, W = 20, 30
CATEGORIES = [{"id": 1, "name": "aerosol_can", "frequency": "c"}, {"id": 3, "name": "alarm_clock", "frequency": "r"}]


def write_dataset(root, *, neg=(3,)):
    coco = root / "coco"
    (coco / "train2017").mkdir(parents=True)
    (coco / "val2017").mkdir()
    for folder, name in (("train2017", "000000000001.jpg"), ("val2017", "000000000002.jpg"),
                         ("val2017", "000000000003.jpg")):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(coco / folder / name)
    images = [
        {"id": 1, "coco_url": "http://images.cocodataset.org/train2017/000000000001.jpg", "height": H, "width": W,
         "neg_category_ids": list(neg), "not_exhaustive_category_ids": [1]},
        {"id": 2, "coco_url": "http://images.cocodataset.org/val2017/000000000002.jpg", "height": H, "width": W,
         "neg_category_ids": [], "not_exhaustive_category_ids": []},
        {"id": 3, "file_name": "val2017/000000000003.jpg", "height": H, "width": W},  # LVIS v0.5 style
    ]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]],
             "bbox": [2, 2, 6, 4], "area": 24}]
    path = root / "lvis_v1_train.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path, coco


def test_images_from_coco_url_and_eval_ids(tmp_path):
    path, coco = write_dataset(tmp_path)
    split = read_lvis(path, coco)
    assert [r.image_path.relative_to(coco).as_posix() for r in split.records] == [
        "train2017/000000000001.jpg", "val2017/000000000002.jpg", "val2017/000000000003.jpg"]
    assert split.records[0].extra == {"neg_category_ids": [3], "not_exhaustive_category_ids": [1]}
    assert split.records[2].extra == {"neg_category_ids": [], "not_exhaustive_category_ids": []}
    target = split.load(0)[1]
    assert target.labels.tolist() == [1] and target.masks[0].sum() == 24 and not target.iscrowd.any()
    assert len(split.load(1)[1]) == 0
    # images: pointing at the folder holding the files works too (basenames of coco_url / file_name)
    val = read_lvis(path, coco / "val2017", skip_bad=True)
    assert [r.image_id for r in val.records] == [2, 3] and len(val.skipped) == 2  # image 1 and its annotation


def test_through_data_yaml_and_bad_input(tmp_path):
    path, coco = write_dataset(tmp_path, neg=(3, 77))
    (tmp_path / "DATA.yaml").write_text("format: lvis\nval:\n  images: coco\n  annotations: lvis_v1_train.json\n")
    with pytest.raises(DatasetError, match=r"lvis_v1_train\.json: image 1: neg_category_ids holds unknown .*\[77\]"):
        build_split(tmp_path / "DATA.yaml", "val")
    split = build_split(tmp_path / "DATA.yaml", "val", skip_bad=True)
    assert len(split) == 2 and len(split.skipped) == 1
    (coco / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"images\[1\] \(id 2\): image file not found \(tried .*000000000002"):
        read_lvis(path, coco)


@pytest.mark.parametrize("field, value, problem", [
    ("coco_url", "http://host/", "missing 'coco_url' and 'file_name'"),  # was: ValueError unpacking the URL
    ("coco_url", 7, "missing 'coco_url' and 'file_name'"),
    ("neg_category_ids", 3, "neg_category_ids must be a list of category ids, got 3"),  # was: TypeError
    ("neg_category_ids", "13", "neg_category_ids must be a list of category ids, got '13'"),  # was: ids 1 and 3
    ("not_exhaustive_category_ids", [1.0], r"must be a list of category ids, got \[1.0\]"),
])
def test_wrong_typed_image_fields(tmp_path, field, value, problem):
    path, coco = write_dataset(tmp_path)
    data = json.loads(path.read_text())
    data["images"][0][field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf"lvis_v1_train\.json: .*{problem}"):
        read_lvis(path, coco)
    assert len(read_lvis(path, coco, skip_bad=True)) == 2
