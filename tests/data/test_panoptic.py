"""COCO panoptic JSON + PNGs give exact targets; broken files fail naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former.data import datasets
from mask2former.data.datasets import DatasetError
from mask2former.data.panoptic import read_coco_panoptic
from mask2former.data.semantic import read_semantic

H, W = 20, 30
CATEGORIES = [  # non-contiguous ids, file order not sorted
    {"id": 40, "name": "dog", "isthing": 1, "color": [0, 0, 255]},
    {"id": 5, "name": "cat", "isthing": 1, "color": [255, 0, 0]},
    {"id": 17, "name": "grass", "isthing": 0, "color": [0, 255, 0]},
]


def scene() -> tuple[np.ndarray, list[dict]]:
    """Segment-id map ``[H, W]`` (0 = void) and its segments_info: grass, two cats, a crowd of dogs."""
    ids = np.zeros((H, W), dtype=np.int64)
    ids[10:, :] = 3                    # grass (stuff)
    ids[2:6, 2:8] = 300                # cat 1 (id needs the G channel)
    ids[2:6, 20:25] = 70000            # cat 2 (id needs the B channel)
    ids[12:18, 10:16] = 9              # dog crowd
    ids[0, :] = 0                      # void row
    segments = [{"id": 3, "category_id": 17, "iscrowd": 0}, {"id": 300, "category_id": 5, "iscrowd": 0},
                {"id": 70000, "category_id": 5, "iscrowd": 0}, {"id": 9, "category_id": 40, "iscrowd": 1}]
    return ids, segments


def write_png_ids(path, ids: np.ndarray) -> None:
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def write_dataset(root, scenes: list[tuple[np.ndarray, list[dict]] | None], *, categories=CATEGORIES):
    """``scenes[i]`` None = an image without annotation entry."""
    (root / "images").mkdir(exist_ok=True)
    (root / "panoptic").mkdir(exist_ok=True)
    images, annotations = [], []
    for i, item in enumerate(scenes):
        Image.fromarray(np.full((H, W, 3), 10 * i, np.uint8)).save(root / "images" / f"{i:03d}.jpg")
        images.append({"id": i, "file_name": f"{i:03d}.jpg", "height": H, "width": W})
        if item is not None:
            write_png_ids(root / "panoptic" / f"{i:03d}.png", item[0])
            annotations.append({"image_id": i, "file_name": f"{i:03d}.png", "segments_info": item[1]})
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "panoptic.json").write_text(json.dumps(data))
    return root / "panoptic.json", root / "images", root / "panoptic"


def test_target_is_exact(tmp_path):
    ids, segments = scene()
    split = read_coco_panoptic(*write_dataset(tmp_path, [(ids, segments)]))
    assert [c.id for c in split.categories] == [5, 17, 40]  # sorted by id -> contiguous
    assert [c.isthing for c in split.categories] == [True, False, True]
    image, target = split.load(0)
    assert image.shape == (H, W, 3)
    assert target.labels.tolist() == [1, 0, 0, 2]
    assert target.is_thing.tolist() == [False, True, True, True]
    assert target.iscrowd.tolist() == [False, False, False, True]
    for mask, segment in zip(target.masks, segments):
        assert np.array_equal(mask.numpy(), ids == segment["id"])
    assert np.array_equal(target.ignore.numpy(), ids == 0)
    assert split.segment_counts() == ([2, 1, 1], [1, 1, 1])


def test_same_scene_as_semantic_pngs_gives_the_same_semantic_map(tmp_path):
    ids, segments = scene()
    pan = read_coco_panoptic(*write_dataset(tmp_path, [(ids, segments)]))
    label = np.full((H, W), 255, np.uint8)
    for s in segments:
        label[ids == s["id"]] = [c.id for c in pan.categories].index(s["category_id"])
    (tmp_path / "sem").mkdir()
    Image.fromarray(label).save(tmp_path / "sem" / "000.png")
    sem = read_semantic(tmp_path / "images", tmp_path / "sem", classes=pan.categories)
    assert np.array_equal(pan.load(0)[1].semantic_map().numpy(), sem.load(0)[1].semantic_map().numpy())


def test_empty_images(tmp_path):
    void = (np.zeros((H, W), np.int64), [])
    split = read_coco_panoptic(*write_dataset(tmp_path, [void, None]))
    for i in range(2):
        target = split.load(i)[1]
        assert len(target) == 0 and target.masks.shape == (0, H, W)
    assert split.load(0)[1].ignore.all()  # an all-void PNG
    assert not split.load(1)[1].ignore.any()  # no annotation at all


def test_segment_missing_from_png_and_unlisted_png_ids(tmp_path):
    ids, segments = scene()
    extra = segments + [{"id": 12345, "category_id": 5, "iscrowd": 0}]
    split = read_coco_panoptic(*write_dataset(tmp_path, [(ids, extra), (ids, segments[1:])]))
    with pytest.raises(DatasetError, match=r"000\.png: segment ids \[12345\].*absent from the PNG"):
        split.load(0)
    with pytest.raises(DatasetError, match=r"001\.png: PNG holds segment ids \[3\].*not in segments_info"):
        split.load(1)


def test_unknown_category_and_missing_png(tmp_path):
    ids, segments = scene()
    bad = [dict(segments[0], category_id=99)] + segments[1:]
    json_path, images, masks = write_dataset(tmp_path, [(ids, bad), (ids, segments), (ids, segments)])
    (masks / "002.png").unlink()
    with pytest.raises(DatasetError, match=r"panoptic\.json: .*000\.jpg.*unknown category_id 99"):
        read_coco_panoptic(json_path, images, masks)
    split = read_coco_panoptic(json_path, images, masks, skip_bad=True)
    assert len(split) == 1 and split.records[0].image_id == 1
    assert len(split.skipped) == 2 and "panoptic PNG not found" in split.skipped[1][1]


def test_size_mismatch_is_caught_at_load(tmp_path):
    ids, segments = scene()
    json_path, images, masks = write_dataset(tmp_path, [(ids, segments), (ids, segments)])
    write_png_ids(masks / "000.png", ids[:, :20])
    split = read_coco_panoptic(json_path, images, masks, skip_bad=True)
    with pytest.raises(DatasetError, match=r"000\.png: mask is 20x20 \(HxW\) but its image .*000\.jpg is 20x30"):
        split.load(0)
    assert split.load_or_none(0) is None and split.load_or_none(1) is not None
    assert split.skipped == [(str(masks / "000.png"), split.skipped[0][1])]


def test_malformed_json_names_the_position(tmp_path):
    path = tmp_path / "panoptic.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(DatasetError, match=r"panoptic\.json: malformed JSON at line 2 column 18"):
        read_coco_panoptic(path, tmp_path, tmp_path)


# --------------------------------------------------------------------------- hostile annotation files


@pytest.mark.parametrize("segment, problem", [
    ({"id": True, "category_id": 5}, r"segments_info\[0\]: expected an object with an integer 'id' in 1..16777215"),
    ({"id": 2**40, "category_id": 5}, "integer 'id' in 1..16777215"),      # was: OverflowError in numpy at load
    ({"id": "3", "category_id": 5}, "integer 'id'"),
    ({"id": 3, "category_id": [5]}, r"unknown category_id \[5\]"),        # was: TypeError (unhashable)
    ({"id": 3, "category_id": 5.0}, "unknown category_id 5.0"),
    ({"id": 3, "category_id": 5, "iscrowd": "no"}, "'iscrowd' must be 0, 1, true or false, got 'no'"),
    ({"id": 3, "category_id": 5, "area": -1}, "'area' must be a finite number >= 0"),
    ({"id": 3, "category_id": 5, "bbox": "0 0 1 1"}, "'bbox' must be"),
])
def test_wrong_typed_segments_info(tmp_path, segment, problem):
    ids, segments = scene()
    json_path, images, masks = write_dataset(tmp_path, [(ids, [segment] + segments[1:])])
    with pytest.raises(DatasetError, match=rf"panoptic\.json: annotations\[0\] of image 000\.jpg: .*{problem}"):
        read_coco_panoptic(json_path, images, masks)
    assert len(read_coco_panoptic(json_path, images, masks, skip_bad=True).skipped) == 1


@pytest.mark.parametrize("field, value, problem", [
    ("image_id", [0], r"annotations\[0\]: image_id \[0\] is not in 'images'"),  # was: TypeError (unhashable)
    ("image_id", 0.0, r"image_id 0.0 is not in 'images'"),
    ("file_name", 5, "'file_name' must be a non-empty string, got 5"),        # was: TypeError from Path
    ("segments_info", {"id": 3}, "'segments_info' must be a list"),
])
def test_wrong_typed_annotation_entries(tmp_path, field, value, problem):
    ids, segments = scene()
    json_path, images, masks = write_dataset(tmp_path, [(ids, segments)])
    data = json.loads(json_path.read_text())
    data["annotations"][0][field] = value
    json_path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf"panoptic\.json: .*{problem}"):
        read_coco_panoptic(json_path, images, masks)


def test_a_folder_where_the_png_should_be(tmp_path):
    ids, segments = scene()
    json_path, images, masks = write_dataset(tmp_path, [(ids, segments)])
    (masks / "000.png").unlink()
    (masks / "000.png").mkdir()
    with pytest.raises(DatasetError, match=r"panoptic PNG .*000\.png is a directory"):
        read_coco_panoptic(json_path, images, masks)


def test_sixteen_bit_and_broken_pngs_fail_at_load_naming_the_png(tmp_path):
    ids, segments = scene()
    json_path, images, masks = write_dataset(tmp_path, [(ids, segments), (ids, segments)])
    Image.fromarray(ids.astype(np.uint16)).save(masks / "000.png")  # would be clipped to 8 bits
    (masks / "001.png").write_bytes((masks / "001.png").read_bytes()[:30])  # a truncated header
    split = read_coco_panoptic(json_path, images, masks)
    with pytest.raises(DatasetError, match=r"000\.png: I;16-mode mask: expected an 8-bit RGB PNG"):
        split.load(0)
    with pytest.raises(DatasetError, match=r"001\.png: not an image \(Pillow cannot identify"):
        split.load(1)


def test_dense_mask_memory_is_bounded_per_image(tmp_path, monkeypatch):
    ids, segments = scene()  # 4 segments of 20x30: 2,400 bytes of masks
    split = read_coco_panoptic(*write_dataset(tmp_path, [(ids, segments)]))
    monkeypatch.setattr(datasets, "MAX_MASK_BYTES", 2_399)
    with pytest.raises(DatasetError, match=r"000\.png: 4 segments of 20x30 pixels would take .* GB as dense masks"):
        split.load(0)
    monkeypatch.setattr(datasets, "MAX_MASK_BYTES", 2_400)
    assert len(split.load(0)[1]) == 4
