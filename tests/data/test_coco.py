"""COCO instances (polygons, RLE, uncompressed RLE, crowd) give exact targets; broken input fails
naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from mask2former.data.coco import read_coco_instances
from mask2former.data.datasets import DatasetError

H, W = 20, 30
CATEGORIES = [{"id": 10, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "bird"}]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [H, W], "counts": np.diff(np.concatenate([[0], change])).tolist()}


def blob(y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def annotations_for_image(image_id: int) -> tuple[list[dict], list[np.ndarray]]:
    """A polygon, a two-polygon object, a compressed RLE and a crowd uncompressed RLE."""
    rle = mask_util.encode(np.asfortranarray(blob(12, 18, 3, 9).astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    anns = [
        {"id": 1, "category_id": 3, "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]], "iscrowd": 0},
        {"id": 2, "category_id": 7, "segmentation": [[20, 2, 24, 2, 24, 4, 20, 4], [20, 6, 22, 6, 22, 9, 20, 9]],
         "iscrowd": 0},
        {"id": 3, "category_id": 10, "segmentation": rle, "iscrowd": 0},
        {"id": 4, "category_id": 10, "segmentation": uncompressed_rle(blob(10, 20, 15, 30)), "iscrowd": 1},
    ]
    two = blob(2, 4, 20, 24) | blob(6, 9, 20, 22)
    for a in anns:
        a["image_id"] = image_id
    return anns, [blob(2, 6, 2, 8), two, blob(12, 18, 3, 9), blob(10, 20, 15, 30)]


def write_dataset(root, n_images: int = 2, annotations: list[dict] | None = None, images: list[dict] | None = None):
    (root / "images").mkdir(exist_ok=True)
    for i in range(n_images):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
    if images is None:
        images = [{"id": 100 + i, "file_name": f"{i}.png", "height": H, "width": W} for i in range(n_images)]
    if annotations is None:
        annotations = annotations_for_image(100)[0]
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "instances.json").write_text(json.dumps(data))
    return root / "instances.json", root / "images"


def test_polygons_rle_and_crowd_decode_exactly(tmp_path):
    split = read_coco_instances(*write_dataset(tmp_path))
    assert [(c.id, c.name) for c in split.categories] == [(3, "cat"), (7, "bird"), (10, "dog")]
    assert all(c.isthing for c in split.categories)
    image, target = split.load(0)
    _, expected = annotations_for_image(100)
    assert target.masks.shape == (4, H, W)
    for got, want in zip(target.masks.numpy(), expected):
        assert np.array_equal(got, want)
    assert target.labels.tolist() == [0, 1, 2, 2]
    assert target.iscrowd.tolist() == [False, False, False, True]
    assert target.is_thing.all() and not target.ignore.any()
    assert split.segment_counts() == ([1, 1, 2], [1, 1, 1])


def test_empty_image_and_degenerate_polygons(tmp_path):
    anns = [{"id": 9, "image_id": 100, "category_id": 3, "segmentation": [[1, 1, 5, 5]]}]  # a line: no area
    split = read_coco_instances(*write_dataset(tmp_path, annotations=anns))
    for i in range(2):
        target = split.load(i)[1]
        assert len(target) == 0 and target.masks.shape == (0, H, W) and target.ignore.shape == (H, W)


def test_unknown_category_drops_the_image_with_skip_bad(tmp_path):
    anns = annotations_for_image(100)[0] + [{"id": 5, "image_id": 101, "category_id": 4, "segmentation": [[]]}]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    with pytest.raises(DatasetError, match=r"instances\.json: annotations\[4\] \(id 5\) of image 1\.png: "
                                           r"unknown category_id 4"):
        read_coco_instances(json_path, images)
    split = read_coco_instances(json_path, images, skip_bad=True)
    assert [r.image_id for r in split.records] == [100] and len(split.skipped) == 1


def test_missing_image_and_unknown_image_id(tmp_path):
    anns = annotations_for_image(100)[0] + [{"id": 6, "image_id": 555, "category_id": 3, "segmentation": []}]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    (images / "1.png").unlink()
    with pytest.raises(DatasetError, match=r"image file not found: .*1\.png"):
        read_coco_instances(json_path, images)
    split = read_coco_instances(json_path, images, skip_bad=True)
    assert len(split) == 1
    assert [reason.split(":")[0] for _, reason in split.skipped] == ["images[1] (id 101)", "annotations[4] (id 6)"]


def test_size_checks(tmp_path):
    anns = annotations_for_image(100)[0]
    anns[2]["segmentation"]["size"] = [10, 10]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    with pytest.raises(DatasetError, match=r"RLE size \[10, 10\] differs from the image size \[20, 30\]"):
        read_coco_instances(json_path, images)
    imgs = [{"id": 100, "file_name": "0.png", "height": 30, "width": 20}]
    split = read_coco_instances(*write_dataset(tmp_path, 1, annotations=[], images=imgs))
    with pytest.raises(DatasetError, match=r"0\.png: image is 20x30 \(HxW\) but its annotation says 30x20"):
        split.load(0)


def test_malformed_json_and_structure(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [}')
    with pytest.raises(DatasetError, match=r"bad\.json: malformed JSON at line 1 column 13"):
        read_coco_instances(path, tmp_path)
    path.write_text('{"images": []}')
    with pytest.raises(DatasetError, match=r"bad\.json: missing top-level key 'categories'"):
        read_coco_instances(path, tmp_path)
    anns = annotations_for_image(100)[0]
    anns[0]["segmentation"] = [[1, 2, 3]]
    with pytest.raises(DatasetError, match="even count"):
        read_coco_instances(*write_dataset(tmp_path, annotations=anns))
