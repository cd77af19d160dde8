"""A tiny real dataset on disk for the JSON / YAML fuzzers, and the checks of a valid result.

Three images (PNG and JPEG, two sizes), a label PNG and a panoptic PNG per image, all written
with Pillow; generated annotation files point into it, so ``DatasetSplit.load`` decodes real
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mask2former.data.datasets import DatasetSplit

SIZES = {"0.png": (8, 10), "1.jpg": (10, 8), "2.png": (8, 10)}  # file -> (height, width)
SEGMENT_IDS = (1, 300, 70000)  # panoptic ids: left part, right part, a corner (needs the B channel)


@dataclass(frozen=True)
class World:
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def panoptic(self) -> Path:
        return self.root / "panoptic"


def segment_map(height: int, width: int) -> np.ndarray:
    """``[H, W]`` panoptic ids: SEGMENT_IDS[0] on the left, [1] on the right, [2] in a corner."""
    ids = np.full((height, width), SEGMENT_IDS[0], np.int64)
    ids[:, width // 2:] = SEGMENT_IDS[1]
    ids[:2, :2] = SEGMENT_IDS[2]
    return ids


def build_world(root: Path) -> World:
    world = World(root)
    for folder in (world.images, world.masks, world.panoptic):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(world.images / name)
        label = np.zeros((h, w), np.uint8)
        label[:, w // 2:] = 2
        label[0, 0] = 255
        label[-1, -1] = 1
        stem = Path(name).stem
        Image.fromarray(label).save(world.masks / f"{stem}.png")
        ids = segment_map(h, w)
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb).save(world.panoptic / f"{stem}.png")
    return world


def check_split(split: DatasetSplit) -> None:
    """Load every record (``load_or_none`` with ``skip_bad``) and check each result is a
    well-formed image and target; also the summary and counts must not fail."""
    k = len(split.categories)
    for i in range(len(split)):
        loaded = split.load_or_none(i)
        if loaded is None:
            continue
        image, target = loaded
        h, w = image.shape[:2]
        assert image.dtype == np.uint8 and image.shape == (h, w, 3)
        n = len(target)
        assert tuple(target.masks.shape) == (n, h, w) and tuple(target.ignore.shape) == (h, w)
        assert len(target.labels) == len(target.is_thing) == len(target.iscrowd) == n
        assert all(0 <= label < k for label in target.labels.tolist())
    split.summary()
    split.segment_counts()
