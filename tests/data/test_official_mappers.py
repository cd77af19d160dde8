"""Training samples equal what the official mapper of each dataset format makes of them.

Every expectation here is a transcription of the official code, written out in the test and not
taken from the implementation: Mask2Former's dataset mappers (``mask2former/data/dataset_mappers``),
detectron2's transforms, ``filter_empty_instances``, ``filter_images_with_only_crowd_annotations``
and pycocotools for rasterising. Geometry that the sample's random draws decide (the crop window,
the flip, the resized size) is read back from the augmented image, never from the code.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_util

from mask2former.config import CategoryInfo, InputConfig
from mask2former.data.coco import read_coco_instances
from mask2former.data.datasets import DatasetError
from mask2former.data.loader import LoadFailure, build_training_set, mapper_rules
from mask2former.data.panoptic import read_coco_panoptic
from mask2former.data.semantic import read_semantic

N = 40  # images are N x N; with crop N/2 at LSJ scale 2 the resize factor is exactly 1


def coordinate_image(h: int = N, w: int = N) -> np.ndarray:
    """Red = 6 x column, green = 6 x row: a crop (at resize factor 1) tells where it was taken."""
    y, x = np.mgrid[:h, :w]
    return np.stack([6 * x, 6 * y, np.full((h, w), 17)], -1).astype(np.uint8)


def window_of(image: torch.Tensor) -> tuple[int, int]:
    """``(y0, x0)`` of a crop of ``coordinate_image`` (unflipped, unresized)."""
    return int(image[1, 0, 0]) // 6, int(image[0, 0, 0]) // 6


def lsj(crop: int, scale: float, *, flip: bool = False) -> InputConfig:
    return InputConfig(augmentation="lsj", crop_size=(crop, crop), min_scale=scale, max_scale=scale, flip=flip)


def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def coco_rasterise(rings: list[list[float]], h: int, w: int) -> np.ndarray:
    """detectron2's ``polygons_to_bitmask`` / ``convert_coco_poly_to_mask``: pycocotools at the output size."""
    if not rings:
        return np.zeros((h, w), bool)
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(rings, h, w))).astype(bool)


def write_instances(root, images: list[np.ndarray], annotations: list[dict], *, sizes: bool = True):
    (root / "images").mkdir(parents=True)
    entries = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        entries.append({"id": i, "file_name": f"{i}.png"})
        if sizes:
            entries[-1].update(height=image.shape[0], width=image.shape[1])
    for k, ann in enumerate(annotations):
        ann.setdefault("id", k + 1)
        ann.setdefault("iscrowd", 0)
    categories = [{"id": 3, "name": "a"}, {"id": 8, "name": "b"}]
    data = {"images": entries, "annotations": annotations, "categories": categories}
    (root / "instances.json").write_text(json.dumps(data))
    return read_coco_instances(root / "instances.json", root / "images", name="train")


def write_panoptic(root, scenes: list[tuple[np.ndarray, list[dict]] | None]):
    for folder in ("images", "panoptic"):
        (root / folder).mkdir()
    images, annotations = [], []
    for i, scene in enumerate(scenes):
        Image.fromarray(coordinate_image()).save(root / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "height": N, "width": N})
        if scene is not None:
            ids, segments = scene
            rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
            Image.fromarray(rgb).save(root / "panoptic" / f"{i}.png")
            annotations.append({"image_id": i, "file_name": f"{i}.png", "segments_info": segments})
    categories = [{"id": 5, "name": "cat", "isthing": 1}, {"id": 17, "name": "grass", "isthing": 0}]
    (root / "panoptic.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                   "categories": categories}))
    return read_coco_panoptic(root / "panoptic.json", root / "images", root / "panoptic", name="train")


def write_semantic(root, image: np.ndarray, label: np.ndarray, num_classes: int):
    for folder in ("images", "masks"):
        (root / folder).mkdir()
    Image.fromarray(image).save(root / "images" / "a.png")
    Image.fromarray(label).save(root / "masks" / "a.png")
    return read_semantic(root / "images", root / "masks", num_classes=num_classes, name="train")


# --------------------------------------------------------------------------- which mapper per format


def test_each_format_follows_its_official_mapper():
    """Mask2Former's configs: COCO instance -> coco_instance_lsj, COCO panoptic -> coco_panoptic_lsj,
    ADE20K / Cityscapes / Mapillary semantic -> mask_former_semantic, their panoptic and instance
    models -> mask_former_panoptic / mask_former_instance."""
    thing, stuff = CategoryInfo(1, "car", True), CategoryInfo(2, "road", False)
    expected = [  # format, augmentation, classes -> mapper, keeps emptied segments, nearest rule, filters images
        ("coco_instances", "lsj", [thing], ("coco_instance_lsj", False, "pillow", True)),
        ("lvis", "lsj", [thing], ("coco_instance_lsj", False, "pillow", True)),
        ("coco_instances", "semantic", [thing], ("mask_former_instance", True, "pillow", True)),
        ("coco_panoptic", "lsj", [thing, stuff], ("coco_panoptic_lsj", True, "pillow", False)),
        ("coco_panoptic", "semantic", [thing, stuff], ("mask_former_panoptic", True, "pillow", False)),
        ("cityscapes", "semantic", [thing, stuff], ("mask_former_panoptic", True, "pillow", False)),
        ("folder", "semantic", [thing, stuff], ("mask_former_panoptic", True, "pillow", False)),
        ("folder", "semantic", [stuff], ("mask_former_semantic", False, "torch", False)),
        ("semantic", "semantic", [thing, stuff], ("mask_former_semantic", False, "torch", False)),
        ("semantic", "lsj", [stuff], ("mask_former_semantic", False, "torch", False)),
    ]
    for fmt, augmentation, classes, want in expected:
        rules = mapper_rules(fmt, augmentation, classes)
        assert (rules.mapper, rules.keep_empty, rules.nearest, rules.filter_images) == want, fmt


# --------------------------------------------------------------------------- item 1: emptied segments


def test_panoptic_keeps_segments_the_crop_empties(tmp_path):
    """COCOPanopticNewBaselineDatasetMapper: ``for segment_info in segments_info: if not
    segment_info["iscrowd"]: masks.append(pan_seg_gt == segment_info["id"])`` after the crop,
    so a segment the crop misses is an empty mask that counts in num_masks and is matched."""
    ids = np.full((N, N), 7)                 # grass everywhere
    ids[0:4, 36:40] = 30                     # cat in the top-right corner: no window on the diagonal sees it
    ids[36:40, 0:4] = 31                     # cat in the bottom-left corner: likewise
    ids[18:22, 18:22] = 32                   # cat at the centre: always seen
    ids[10:14, 26:30] = 40                   # crowd: never a mask
    ids[30:, 30:] = 0                        # void
    segments = [{"id": 7, "category_id": 17, "iscrowd": 0}, {"id": 30, "category_id": 5, "iscrowd": 0},
                {"id": 31, "category_id": 5, "iscrowd": 0}, {"id": 32, "category_id": 5, "iscrowd": 0},
                {"id": 40, "category_id": 5, "iscrowd": 1}]
    dataset = build_training_set(write_panoptic(tmp_path, [(ids, segments)]), lsj(N // 2, 2.0), seed=0)
    contiguous = {5: 0, 17: 1}
    for position in range(12):
        sample = dataset[(0, position)]
        y0, x0 = window_of(sample.image)
        crop = ids[y0:y0 + N // 2, x0:x0 + N // 2]
        official = [(contiguous[s["category_id"]], crop == s["id"]) for s in segments if not s["iscrowd"]]
        assert sample.target.labels.tolist() == [c for c, _ in official]
        assert len(sample.target) == 4  # num_masks: the two emptied cats count
        for mask, (_, want) in zip(sample.target.masks, official):
            assert np.array_equal(mask.numpy(), want)
        assert not sample.target.masks[1].any() and not sample.target.masks[2].any()
        assert np.array_equal(sample.target.ignore.numpy(), crop == 0)


def test_semantic_drops_classes_the_crop_empties(tmp_path):
    """MaskFormerSemanticDatasetMapper: ``classes = np.unique(sem_seg_gt)`` of the cropped map,
    ignore removed, one mask each: a class the crop misses has no mask."""
    label = np.zeros((N, N), np.uint8)
    label[0:4, 36:40] = 1                    # never in a diagonal window
    label[18:22, 18:22] = 2                  # always
    label[0:6, 0:6] = 3                      # in the windows that start above row 6
    label[:2, :2] = 255
    dataset = build_training_set(write_semantic(tmp_path, coordinate_image(), label, 4), lsj(N // 2, 2.0), seed=0)
    seen_3 = set()  # whether class 3 was in the crop
    for position in range(12):
        sample = dataset[(0, position)]
        y0, x0 = window_of(sample.image)
        crop = label[y0:y0 + N // 2, x0:x0 + N // 2]
        classes = np.unique(crop)
        classes = classes[classes != 255]
        assert sample.target.labels.tolist() == classes.tolist()
        for mask, c in zip(sample.target.masks, classes):
            assert np.array_equal(mask.numpy(), crop == c)
        assert np.array_equal(sample.target.ignore.numpy(), crop == 255)
        seen_3.add(3 in classes)
    assert seen_3 == {True, False}  # the case where the crop empties a class occurred, and the other one


def _window_intersection(box: tuple[float, float, float, float], y0: int, x0: int, size: int):
    """fvcore's CropTransform.apply_polygons for a rectangle: its intersection with the window,
    shifted to the window's origin, or None when nothing of positive area is left."""
    bx0, by0, bx1, by1 = max(box[0], x0), max(box[1], y0), min(box[2], x0 + size), min(box[3], y0 + size)
    if bx1 <= bx0 or by1 <= by0:
        return None
    return rectangle(bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)


def test_coco_instance_lsj_drops_instances_whose_polygons_leave_the_crop(tmp_path):
    """COCOInstanceNewBaselineDatasetMapper: polygons cropped to the window, then
    ``filter_empty_instances`` keeps an instance iff some polygon is left (``PolygonMasks.nonempty``)
    and the box around its polygons has both sides > 1e-5, then rasterises at the crop size. A
    sliver left too thin to cover a pixel centre is kept, with an empty mask."""
    boxes = [(15.5, 15.5, 24.5, 24.5),    # around the centre: every window holds part of it
             (36.0, 0.0, 40.0, 4.0),      # top-right corner: never
             (10.2, 10.2, 10.4, 30.0),    # a 0.2 px sliver: in the windows with x0 <= 10, never a pixel
             (2.25, 26.5, 9.75, 39.0)]    # bottom-left: in some windows
    anns = [{"image_id": 0, "category_id": 3 if k % 2 else 8, "segmentation": [rectangle(*b)]}
            for k, b in enumerate(boxes)]
    anns.append({"image_id": 0, "category_id": 3, "segmentation": [rectangle(1, 1, 39, 39)], "iscrowd": 1})
    dataset = build_training_set(write_instances(tmp_path, [coordinate_image()], anns), lsj(N // 2, 2.0), seed=0)
    kept_sliver = dropped_sliver = 0
    for position in range(16):
        sample = dataset[(0, position)]
        y0, x0 = window_of(sample.image)
        cropped = [_window_intersection(b, y0, x0, N // 2) for b in boxes]
        kept = [k for k, ring in enumerate(cropped) if ring is not None]  # boxes: positive area <=> sides > 1e-5
        assert sample.target.labels.tolist() == [0 if k % 2 else 1 for k in kept]  # category 3 -> 0, 8 -> 1
        for mask, k in zip(sample.target.masks, kept):
            assert np.array_equal(mask.numpy(), coco_rasterise([cropped[k]], N // 2, N // 2))
        if 2 in kept:
            kept_sliver += 1
            assert not sample.target.masks[kept.index(2)].any()  # kept although it has no pixel
        else:
            dropped_sliver += 1
    assert kept_sliver and dropped_sliver


def test_mask_former_instance_keeps_instances_the_crop_empties(tmp_path):
    """MaskFormerInstanceDatasetMapper (instance data with the resize + crop recipe) rasterises
    every non-crowd annotation after the transform and filters nothing: an instance outside the
    crop is an empty mask."""
    anns = [{"image_id": 0, "category_id": 3, "segmentation": [rectangle(15.5, 15.5, 24.5, 24.5)]},
            {"image_id": 0, "category_id": 8, "segmentation": [rectangle(36.0, 0.0, 40.0, 4.0)]},
            {"image_id": 0, "category_id": 8, "segmentation": [rectangle(0.0, 36.0, 4.0, 40.0)]}]
    inp = InputConfig(augmentation="semantic", crop_size=(16, 16), base_size=40, flip=True)
    dataset = build_training_set(write_instances(tmp_path, [coordinate_image()], anns), inp, seed=0)
    empty = 0
    for position in range(12):
        target = dataset[(0, position)].target
        assert target.labels.tolist() == [0, 1, 1]
        empty += int((target.masks.flatten(1).sum(1) == 0).sum())
    assert empty  # some crops missed a corner instance, which stayed


# --------------------------------------------------------------------------- item 2: polygons


def test_polygons_are_moved_then_rasterised_at_the_output_size(tmp_path):
    """detectron2's transform_instance_annotations: HFlip ``x -> W - x``, Resize ``x * (new_w * 1.0 / w)``,
    then pycocotools at the output size; RLE annotations are decoded and resized as uint8 masks
    (Pillow NEAREST). Scale 2.5: a 40 px image into a 100 px crop, no cropping."""
    rings = [[5.3, 4.1, 30.7, 6.2, 26.4, 33.9, 8.8, 28.45],
             [[22.5, 20.25, 37.75, 21.5, 36.0, 38.5], [2.5, 31.0, 12.25, 30.5, 10.0, 38.75]]]
    rle_mask = np.zeros((N, N), np.uint8)
    rle_mask[3:9, 14:33] = 1
    rle = mask_util.encode(np.asfortranarray(rle_mask))
    anns = [{"image_id": 0, "category_id": 3, "segmentation": [rings[0]]},
            {"image_id": 0, "category_id": 8, "segmentation": rings[1]},
            {"image_id": 0, "category_id": 8, "segmentation": {"size": [N, N], "counts": rle["counts"].decode()}}]
    dataset = build_training_set(write_instances(tmp_path, [coordinate_image()], anns), lsj(100, 1.0, flip=True),
                                 seed=0)
    flips = set()
    for position in range(6):
        sample = dataset[(0, position)]
        flipped = bool(sample.image[0, 0, 0] > sample.image[0, 0, -1])
        flips.add(flipped)

        def moved(ring: list[float], flipped: bool = flipped) -> list[float]:
            xy = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
            x = (N - xy[:, 0]) if flipped else xy[:, 0]
            return np.column_stack([x * (100 * 1.0 / N), xy[:, 1] * (100 * 1.0 / N)]).ravel().tolist()

        official = [coco_rasterise([moved(rings[0])], 100, 100), coco_rasterise([moved(r) for r in rings[1]], 100, 100)]
        rle_source = rle_mask[:, ::-1] if flipped else rle_mask
        official.append(np.asarray(Image.fromarray(np.ascontiguousarray(rle_source)).resize((100, 100),
                                                                                            Image.NEAREST)) > 0)
        assert len(sample.target) == 3
        for mask, want in zip(sample.target.masks, official):
            assert np.array_equal(mask.numpy(), want)
        # the old way, rasterising at 40 px and resizing the mask, puts other pixels in the masks
        for segmentation, want in zip([[rings[0]], rings[1]], official[:2]):
            small = coco_rasterise(segmentation, N, N).astype(np.uint8)
            small = np.ascontiguousarray(small[:, ::-1] if flipped else small)
            old = np.asarray(Image.fromarray(small).resize((100, 100), Image.NEAREST)) > 0
            assert (old != want).sum() > 0.005 * want.sum()
    assert flips == {True, False}


def test_polygon_crossing_the_window_is_clipped_to_it(tmp_path):
    """FixedSizeCrop's CropTransform intersects polygons with the window (shapely) before the
    mapper rasterises them; a triangle whose window-clipped shape is worked out by hand."""
    triangle = [4.0, 4.0, 36.0, 4.0, 4.0, 36.0]  # legs on x = 4 and y = 4, hypotenuse x + y = 40
    anns = [{"image_id": 0, "category_id": 3, "segmentation": [triangle]}]
    dataset = build_training_set(write_instances(tmp_path, [coordinate_image()], anns), lsj(N // 2, 2.0), seed=0)
    for position in range(8):
        sample = dataset[(0, position)]
        y0, x0 = window_of(sample.image)
        assert y0 == x0  # FixedSizeCrop: one uniform draw places the window along both axes
        # the window [lo, hi]^2 cut by x >= 4, y >= 4 and x + y <= 40 (the window's far corner is past the hypotenuse)
        s, lo, hi = N // 2, max(4, x0), x0 + N // 2
        if 2 * lo >= 40:  # at most a point is left
            assert len(sample.target) == 0
            continue
        if 40 - lo > hi:  # the hypotenuse cuts the window's right and bottom sides: a pentagon
            corners = [(lo, lo), (hi, lo), (hi, 40 - hi), (40 - hi, hi), (lo, hi)]
        else:  # the whole corner of the triangle: a triangle
            corners = [(lo, lo), (40 - lo, lo), (lo, 40 - lo)]
        ring = [float(v - x0) for point in corners for v in point]
        assert np.array_equal(sample.target.masks[0].numpy(), coco_rasterise([ring], s, s))


# --------------------------------------------------------------------------- item 3: images without annotations


def test_instance_images_without_a_non_crowd_annotation_are_dropped(tmp_path, caplog):
    """detectron2's filter_images_with_only_crowd_annotations: ``valid(anns)`` is true iff some
    annotation has ``iscrowd == 0``; images without annotations or with only crowds go."""
    square = [rectangle(5, 5, 15, 15)]
    anns = [{"image_id": 1, "category_id": 3, "segmentation": square, "iscrowd": 1},
            {"image_id": 2, "category_id": 3, "segmentation": square, "iscrowd": 1},
            {"image_id": 2, "category_id": 8, "segmentation": square},
            {"image_id": 3, "category_id": 8, "segmentation": square, "iscrowd": False}]
    split = write_instances(tmp_path, [coordinate_image()] * 4, anns)
    official = [r.image_id for r in split.records if any(a.get("iscrowd", 0) == 0 for a in r.annotations)]
    with caplog.at_level(logging.INFO, logger="mask2former"):
        dataset = build_training_set(split, lsj(32, 1.0), seed=0)
    assert [r.image_id for r in dataset.split.records] == official == [2, 3]
    assert "dropped 2 of 4 images with no non-crowd annotation" in caplog.text
    assert len(build_training_set(split, InputConfig(filter_empty=False), seed=0)) == 4
    only_crowds = write_instances(tmp_path / "crowds", [coordinate_image()], [dict(anns[0], image_id=0)])
    with pytest.raises(DatasetError, match="none of the 1 images of split 'train' has a non-crowd annotation"):
        build_training_set(only_crowds, lsj(32, 1.0), seed=0)


def test_panoptic_and_semantic_images_are_all_kept(tmp_path):
    """get_detection_dataset_dicts filters only when ``"annotations" in dataset_dicts[0]``: panoptic
    dicts (pan_seg_file_name + segments_info) and semantic ones (sem_seg_file_name) have none."""
    (tmp_path / "p").mkdir()
    crowd_only = (np.full((N, N), 9), [{"id": 9, "category_id": 5, "iscrowd": 1}])
    panoptic = write_panoptic(tmp_path / "p", [crowd_only, crowd_only])
    assert len(build_training_set(panoptic, InputConfig(), seed=0)) == 2
    (tmp_path / "s").mkdir()
    semantic = write_semantic(tmp_path / "s", coordinate_image(), np.full((N, N), 255, np.uint8), 2)
    assert len(build_training_set(semantic, InputConfig(augmentation="semantic"), seed=0)) == 1


# --------------------------------------------------------------------------- item 4: the nearest rule


def test_semantic_label_maps_are_resized_by_torchs_nearest_rule(tmp_path):
    """MaskFormerSemanticDatasetMapper reads the label map ``.astype("double")``, so detectron2's
    ResizeTransform resizes it with ``F.interpolate(mode="nearest")`` (source floor(i * in / out)),
    not Pillow's NEAREST (floor((i + 0.5) * in / out)), which it uses for uint8 maps only."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (13, 17)).astype(np.uint8)
    label[5, :6] = 255
    image = np.full((13, 17, 3), 200, np.uint8)
    inp = InputConfig(augmentation="semantic", crop_size=(200, 200), base_size=8, flip=False)
    dataset = build_training_set(write_semantic(tmp_path, image, label, 4), inp, seed=0)
    pillow_differs = 0
    for position in range(10):
        sample = dataset[(0, position)]
        inside = (sample.image[0] != 128).numpy()  # a crop larger than the image: the resized map, then padding
        oh, ow = int(inside.any(1).sum()), int(inside.any(0).sum())
        official = F.interpolate(torch.from_numpy(label.astype("double"))[None, None], (oh, ow), mode="nearest")
        official = official[0, 0].long().numpy()
        classes = np.unique(official)
        classes = classes[classes != 255]
        assert sample.target.labels.tolist() == classes.tolist()
        for mask, c in zip(sample.target.masks, classes):
            assert np.array_equal(mask[:oh, :ow].numpy(), official == c) and not mask[oh:].any()
        assert np.array_equal(sample.target.ignore[:oh, :ow].numpy(), official == 255)
        pillow = np.asarray(Image.fromarray(label).resize((ow, oh), Image.NEAREST))
        pillow_differs += not np.array_equal(pillow, official)
    assert pillow_differs  # the sizes drawn include ones where the two rules disagree


# --------------------------------------------------------------------------- loading failures stay data


def test_a_polygon_outside_the_actual_image_is_a_load_failure(tmp_path):
    """Records without height/width meet the image size only when loaded; the polygon path checks
    it as the mask path does, and the error reaches training as a LoadFailure naming the file."""
    split = write_instances(tmp_path, [coordinate_image()],
                            [{"image_id": 0, "category_id": 3, "segmentation": [rectangle(5, 5, 300, 15)]}],
                            sizes=False)
    failure = build_training_set(split, lsj(32, 1.0), seed=0)[(0, 0)]
    assert isinstance(failure, LoadFailure) and "far outside the 40x40" in failure.problem
    assert failure.path.endswith("instances.json")
