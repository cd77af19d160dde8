"""The synthetic dataset: three formats describing the same scenes, non-contiguous ids, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.data.synthetic import CATEGORIES, DEFAULT_SIZES, write_synthetic

SIZES = ((48, 64), (64, 48), (56, 56))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synth"), num_train=6, num_val=2, seed=0, sizes=SIZES)


def _panoptic_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


def _load(root: Path, name: str) -> dict:
    return json.loads((root / "annotations" / name).read_text())


@pytest.mark.parametrize("split", ["train", "val"])
def test_three_formats_describe_the_same_scenes(dataset, split):
    root = dataset.parent
    panoptic, instances = _load(root, f"panoptic_{split}.json"), _load(root, f"instances_{split}.json")
    contiguous = {c["id"]: i for i, c in enumerate(panoptic["categories"])}
    things = {c["id"] for c in panoptic["categories"] if c["isthing"]}
    by_image: dict[int, list[dict]] = {}
    for ann in instances["annotations"]:
        assert ann["iscrowd"] == 0 and ann["category_id"] in things
        by_image.setdefault(ann["image_id"], []).append(ann)
    assert [i["id"] for i in instances["images"]] == [i["id"] for i in panoptic["images"]]
    assert len(panoptic["annotations"]) == len(panoptic["images"]) == (6 if split == "train" else 2)

    for image, ann in zip(panoptic["images"], panoptic["annotations"]):
        stem = Path(image["file_name"]).stem
        assert image["file_name"].endswith(".png") and ann["image_id"] == image["id"]
        photo = Image.open(root / "images" / split / image["file_name"])
        assert photo.format == "PNG" and photo.mode == "RGB"
        assert (image["height"], image["width"]) == photo.size[::-1] and photo.size[::-1] in SIZES
        ids = _panoptic_ids(root / "panoptic" / split / ann["file_name"])
        semantic = np.asarray(Image.open(root / "semantic" / split / f"{stem}.png"))
        assert ids.shape == semantic.shape == photo.size[::-1]

        # panoptic PNG <-> segments_info
        segments = {s["id"]: s for s in ann["segments_info"]}
        assert set(np.unique(ids)) - {0} == set(segments)
        expected = np.full(ids.shape, 255, dtype=np.uint8)
        for seg_id, seg in segments.items():
            mask = ids == seg_id
            assert seg["area"] == mask.sum() and seg["iscrowd"] == 0
            ys, xs = np.nonzero(mask)
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            expected[mask] = contiguous[seg["category_id"]]
        # panoptic <-> semantic, pixel for pixel (void 0 <-> 255)
        assert np.array_equal(expected, semantic)

        # panoptic things <-> instance RLEs
        thing_segments = [s for s in segments.values() if s["category_id"] in things]
        annotations = by_image.get(image["id"], [])
        assert len(annotations) == len(thing_segments)
        for inst in annotations:
            decoded = mask_utils.decode(inst["segmentation"]).astype(bool)
            matches = [s for s in thing_segments if np.array_equal(ids == s["id"], decoded)]
            assert len(matches) == 1 and matches[0]["category_id"] == inst["category_id"]
            assert inst["area"] == decoded.sum()
            assert inst["bbox"] == [float(v) for v in matches[0]["bbox"]]


def test_ids_are_non_contiguous_and_every_kind_of_pixel_occurs(dataset):
    root = dataset.parent
    panoptic = _load(root, "panoptic_train.json")
    ids = [c["id"] for c in panoptic["categories"]]
    assert ids == [1, 2, 5, 10, 11, 20] and ids != list(range(1, len(ids) + 1))
    assert {c["name"] for c in panoptic["categories"]} == {"circle", "square", "triangle", "sky", "ground", "wall"}
    assert all(set(c) >= {"id", "name", "isthing", "color"} for c in panoptic["categories"])
    assert [c["id"] for c in _load(root, "instances_train.json")["categories"]] == [1, 2, 5]
    used = {s["category_id"] for a in panoptic["annotations"] for s in a["segments_info"]}
    assert used >= {1, 10, 11}  # things and stuff both in the files
    semantic = [np.asarray(Image.open(p)) for p in sorted((root / "semantic" / "train").glob("*.png"))]
    assert any((s == 255).any() for s in semantic)  # void pixels exercise ignore handling
    segments_per_image = [len(a["segments_info"]) for a in panoptic["annotations"]]
    assert min(segments_per_image) >= 3  # at least two stuff regions and one thing


def test_yaml_files(dataset):
    root = dataset.parent
    assert dataset.name == "data.yaml"
    pan, inst, sem = (yaml.safe_load((root / n).read_text())
                      for n in ("data.yaml", "data_instances.yaml", "data_semantic.yaml"))
    assert pan["format"] == "coco_panoptic" and inst["format"] == "coco_instances" and sem["format"] == "semantic"
    assert sem["classes"] == [name for _, name, _, _ in CATEGORIES]
    for config in (pan, inst, sem):
        for split in ("train", "val"):
            for path in config[split].values():
                assert (root / path).exists(), path
    assert pan["train"]["masks"] == "panoptic/train" and sem["val"]["masks"] == "semantic/val"


def test_deterministic_for_a_seed(tmp_path):
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a = files(write_synthetic(tmp_path / "a", num_train=3, num_val=1, seed=5, sizes=SIZES).parent)
    b = files(write_synthetic(tmp_path / "b", num_train=3, num_val=1, seed=5, sizes=SIZES).parent)
    c = files(write_synthetic(tmp_path / "c", num_train=3, num_val=1, seed=6, sizes=SIZES).parent)
    assert a == b
    assert a["images/train/000000.png"] != c["images/train/000000.png"]


def test_default_sizes_and_validation(tmp_path):
    root = write_synthetic(tmp_path, num_train=2, num_val=0).parent
    for p in (root / "images" / "train").glob("*.png"):
        assert Image.open(p).size[::-1] in DEFAULT_SIZES
    assert "val" not in yaml.safe_load((root / "data.yaml").read_text())
    with pytest.raises(ValueError, match="num_train"):
        write_synthetic(tmp_path / "x", num_train=0)


def test_yaml_files_load_through_the_dataset_readers(dataset):
    root = dataset.parent
    splits = {name: build_split(load_data_config(root / name), "val")
              for name in ("data.yaml", "data_instances.yaml", "data_semantic.yaml")}
    pan, inst, sem = splits["data.yaml"], splits["data_instances.yaml"], splits["data_semantic.yaml"]
    assert [c.id for c in pan.categories] == [c[0] for c in CATEGORIES]
    assert [c.name for c in sem.categories] == [c.name for c in pan.categories]
    thing_index = [i for i, c in enumerate(pan.categories) if c.isthing]
    for i in range(len(pan)):
        image, pan_target = pan.load(i)
        sem_image, sem_target = sem.load(i)
        _, inst_target = inst.load(i)
        assert np.array_equal(image, sem_image)
        pan_map, sem_map = pan_target.semantic_map().numpy(), sem_target.semantic_map().numpy()
        assert np.array_equal(pan_map, sem_map)
        assert pan_target.ignore.sum() > 0 or (pan_map != 255).all()
        # the instance file holds the things only: same masks, labels in the thing classes' order
        things = pan_target.is_thing.numpy()
        assert len(inst_target) == things.sum()
        pan_things = sorted(m.numpy().tobytes() for m in pan_target.masks[things])
        assert sorted(m.numpy().tobytes() for m in inst_target.masks) == pan_things
        labels = sorted(thing_index[int(v)] if len(inst.categories) < len(pan.categories) else int(v)
                        for v in inst_target.labels)
        assert labels == sorted(pan_target.labels[things].tolist())
