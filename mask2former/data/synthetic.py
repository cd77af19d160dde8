"""A small synthetic dataset, written in the three community formats from the same scenes.

Each scene has 2-3 stuff regions (sky, ground, sometimes a brick wall) with boundaries that vary
per image, and 2-5 thing instances (circle, square, triangle) that occlude each other. Classes
differ in shape and in colour range, with shading and noise on top, so a small model learns them
on a CPU in minutes. Some images have a void border or a void patch, so ignore handling is
exercised; category ids are non-contiguous (things 1, 2, 5; stuff 10, 11, 20), so id mapping is.

Layout under ``out_dir`` (``{split}`` is ``train`` / ``val``)::

    images/{split}/NNNNNN.png          RGB image
    panoptic/{split}/NNNNNN.png        COCO panoptic ids, id = R + 256 G + 256^2 B, 0 = void
    semantic/{split}/NNNNNN.png        contiguous class index (order of ``classes:``), 255 = void
    annotations/panoptic_{split}.json  COCO panoptic JSON (with ``categories``)
    annotations/instances_{split}.json COCO instances JSON (RLE masks of the things)
    data.yaml / data_instances.yaml / data_semantic.yaml
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from mask2former.formats import IGNORE_LABEL, bbox_xywh, encode_rle, id_to_rgb

# (id, name, isthing, colour for visualisation); contiguous class index = position in this list
CATEGORIES: list[tuple[int, str, bool, tuple[int, int, int]]] = [
    (1, "circle", True, (220, 40, 40)),
    (2, "square", True, (40, 200, 60)),
    (5, "triangle", True, (150, 60, 220)),
    (10, "sky", False, (150, 190, 240)),
    (11, "ground", False, (130, 100, 60)),
    (20, "wall", False, (160, 160, 160)),
]
CIRCLE, SQUARE, TRIANGLE, SKY, GROUND, WALL = range(6)  # contiguous indices
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((160, 224), (192, 192), (224, 160), (256, 192))
# thing colours: (hue range in degrees, saturation range, value range); stuff is far less saturated
THING_COLOURS = {CIRCLE: ((-30.0, 15.0), (0.55, 0.95), (0.55, 0.95)),
                 SQUARE: ((95.0, 155.0), (0.55, 0.95), (0.45, 0.9)),
                 TRIANGLE: ((255.0, 305.0), (0.45, 0.9), (0.5, 0.95))}
MIN_THING_AREA = 40  # smaller visible remnants become void
VOID = IGNORE_LABEL


@dataclass
class Scene:
    """``image [H, W, 3]`` uint8, ``segment_ids [H, W]`` int64 (0 = void) and one
    ``(segment id, contiguous class)`` per segment."""

    image: np.ndarray
    segment_ids: np.ndarray
    segments: list[tuple[int, int]]


def _hsv_colour(rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float],
                val: tuple[float, float]) -> np.ndarray:
    """One RGB colour (float, 0-255) drawn from HSV ranges."""
    h, s, v = rng.uniform(*hue) % 360.0, rng.uniform(*sat), rng.uniform(*val) * 255.0
    k = (np.array([5.0, 3.0, 1.0]) + h / 60.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    grid = rng.uniform(0, 255, (h // cell + 2, w // cell + 2)).astype(np.uint8)
    big = Image.fromarray(grid).resize(((w // cell + 2) * cell, (h // cell + 2) * cell), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32)[:h, :w] / 127.5 - 1.0


def _stuff(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Stuff class map ``[H, W]`` and its textured image: sky above a wavy horizon, ground
    below, and in about 60% of images a brick wall entering from the left or right."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wave = np.sin(2 * np.pi * xx / (w * rng.uniform(0.4, 1.2)) + rng.uniform(0, 2 * np.pi))
    horizon = h * (rng.uniform(0.3, 0.6) + rng.uniform(-0.15, 0.15) * (xx / w - 0.5) + rng.uniform(0.0, 0.08) * wave)
    classes = np.where(yy < horizon, SKY, GROUND)
    if rng.random() < 0.6:
        edge = w * rng.uniform(0.15, 0.45) + w * rng.uniform(-0.15, 0.15) * (yy / h)
        side = xx < edge if rng.random() < 0.5 else xx > w - edge
        classes = np.where(side & (yy < horizon + h * rng.uniform(0.0, 0.2)), WALL, classes)

    sky = _hsv_colour(rng, (195, 220), (0.2, 0.45), (0.8, 1.0)) + 30 * (yy / h)[..., None]
    ground = _hsv_colour(rng, (22, 42), (0.35, 0.6), (0.35, 0.6)) + 22 * _smooth_noise(rng, h, w, 8)[..., None]
    brick_h, brick_w = int(rng.integers(9, 14)), int(rng.integers(18, 28))
    shift = (yy // brick_h % 2) * (brick_w // 2)
    mortar = ((yy % brick_h) < 2) | (((xx + shift) % brick_w) < 2)
    wall = _hsv_colour(rng, (0, 360), (0.0, 0.08), (0.55, 0.75)) - 45 * mortar[..., None]
    image = np.where((classes == SKY)[..., None], sky, np.where((classes == GROUND)[..., None], ground, wall))
    return classes, image


def _shape_mask(kind: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A circle, rotated square or rotated equilateral triangle at a random place and size."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = min(h, w) * rng.uniform(0.09, 0.2)
    cy, cx = rng.uniform(r * 0.5, h - r * 0.5), rng.uniform(r * 0.5, w - r * 0.5)
    dy, dx = yy - cy, xx - cx
    if kind == CIRCLE:
        return dx * dx + dy * dy <= r * r
    angle = rng.uniform(0, 2 * np.pi)
    if kind == SQUARE:
        half = r * 0.85
        u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    inside = np.ones((h, w), dtype=bool)  # triangle: inside all three edge half-planes
    for k in range(3):
        a = angle + 2 * np.pi * k / 3
        inside &= dx * np.cos(a) + dy * np.sin(a) <= r * 0.6
    return inside


def make_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """One random scene; things are placed one by one and a placement is redrawn when it would
    hide more than half of an earlier thing."""
    classes, image = _stuff(rng, height, width)
    owner = np.full((height, width), -1)  # index of the thing covering each pixel
    things: list[tuple[int, int]] = []  # (class, full area)
    for _ in range(int(rng.integers(2, 6))):
        kind = int(rng.integers(3))
        for _attempt in range(10):
            shape = _shape_mask(kind, rng, height, width)
            if shape.sum() < MIN_THING_AREA * 2:
                continue
            covered = owner[shape]
            left = [np.count_nonzero(owner == i) - np.count_nonzero(covered == i) for i in range(len(things))]
            if all(n >= 0.5 * full for n, (_, full) in zip(left, things)):
                break
        else:
            continue
        hue, sat, val = THING_COLOURS[kind]
        yy, xx = np.nonzero(shape)
        shade = 1.0 + 0.15 * ((yy - yy.mean()) * rng.uniform(-1, 1) + (xx - xx.mean()) * rng.uniform(-1, 1)) / (
            np.sqrt(shape.sum()) + 1)
        image[yy, xx] = _hsv_colour(rng, hue, sat, val) * shade[:, None]
        owner[shape] = len(things)
        things.append((kind, int(shape.sum())))

    void = np.zeros((height, width), dtype=bool)
    if rng.random() < 0.5:
        border = int(rng.integers(1, 4))
        void[:border], void[-border:], void[:, :border], void[:, -border:] = True, True, True, True
    if rng.random() < 0.3:
        ph, pw = int(rng.integers(4, 12)), int(rng.integers(4, 12))
        y0, x0 = int(rng.integers(0, height - ph)), int(rng.integers(0, width - pw))
        void[y0:y0 + ph, x0:x0 + pw] = True
    for i in range(len(things)):  # remnants too small to learn from are void
        visible = (owner == i) & ~void
        if 0 < visible.sum() < MIN_THING_AREA:
            void |= visible
    image = image + rng.normal(0, 5, image.shape)
    image[void] = rng.uniform(0, 40, (int(void.sum()), 3))

    # segment ids: random 24-bit values so all three PNG channels are used
    labels = np.where(owner >= 0, -1 - owner, classes)  # thing i as -1-i, stuff as its class
    labels[void] = VOID
    present = [v for v in np.unique(labels) if v != VOID]
    seg_values = rng.choice(2**24 - 1, size=len(present), replace=False) + 1
    segment_ids = np.zeros((height, width), dtype=np.int64)
    segments = []
    for value, seg_id in zip(present, seg_values):
        segment_ids[labels == value] = seg_id
        segments.append((int(seg_id), int(value) if value >= 0 else things[-1 - int(value)][0]))
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8), segment_ids, segments)


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, w, h]`` of a non-empty mask (panopticapi style integers)."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _write_split(root: Path, split: str, num_images: int, seed: int, sizes: Sequence[tuple[int, int]]) -> None:
    """Images, the three label formats and both JSON files of one split."""
    for sub in ("images", "panoptic", "semantic"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    pan_anns: list[dict[str, Any]] = []
    inst_anns: list[dict[str, Any]] = []
    split_key = {"train": 0, "val": 1}.get(split, 2)
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_key, index])  # each image on its own stream
        height, width = sizes[int(rng.integers(len(sizes)))]
        scene = make_scene(rng, height, width)
        stem, image_id = f"{index:06d}", index + 1
        Image.fromarray(scene.image).save(root / "images" / split / f"{stem}.png")
        Image.fromarray(id_to_rgb(scene.segment_ids)).save(root / "panoptic" / split / f"{stem}.png")
        semantic = np.full((height, width), VOID, dtype=np.uint8)
        segments_info = []
        for seg_id, cls in scene.segments:
            mask = scene.segment_ids == seg_id
            semantic[mask] = cls
            cat_id = CATEGORIES[cls][0]
            segments_info.append({"id": seg_id, "category_id": cat_id, "iscrowd": 0, "bbox": _bbox(mask),
                                  "area": int(mask.sum())})
            if CATEGORIES[cls][2]:
                inst_anns.append({"id": len(inst_anns) + 1, "image_id": image_id, "category_id": cat_id,
                                  "segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": bbox_xywh(mask),
                                  "iscrowd": 0})
        Image.fromarray(semantic).save(root / "semantic" / split / f"{stem}.png")
        images.append({"id": image_id, "file_name": f"{stem}.png", "height": height, "width": width})
        pan_anns.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments_info})

    pan_cats = [{"id": i, "name": n, "isthing": int(t), "color": list(c), "supercategory": "thing" if t else "stuff"}
                for i, n, t, c in CATEGORIES]
    inst_cats = [{"id": i, "name": n, "supercategory": "shape"} for i, n, t, _ in CATEGORIES if t]
    info = {"description": f"mask2former synthetic shapes, seed {seed}"}
    (root / "annotations").mkdir(exist_ok=True)
    with open(root / "annotations" / f"panoptic_{split}.json", "w") as f:
        json.dump({"info": info, "images": images, "annotations": pan_anns, "categories": pan_cats}, f)
    with open(root / "annotations" / f"instances_{split}.json", "w") as f:
        json.dump({"info": info, "images": images, "annotations": inst_anns, "categories": inst_cats}, f)


def write_synthetic(out_dir: str | os.PathLike, *, num_train: int = 400, num_val: int = 50, seed: int = 0,
                    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES) -> Path:
    """Write the dataset (see the module docstring) and return the path of its panoptic
    ``data.yaml``; ``data_instances.yaml`` and ``data_semantic.yaml`` sit next to it. The same
    ``seed`` gives the same files; each image's size is drawn from ``sizes`` (``(h, w)`` pairs).
    """
    if num_train < 1 or num_val < 0:
        raise ValueError(f"need num_train >= 1 and num_val >= 0, got {num_train}, {num_val}")
    if not sizes or any(min(s) < 32 for s in sizes):
        raise ValueError(f"image sizes must be at least 32 x 32, got {list(sizes)}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train": num_train, "val": num_val} if num_val else {"train": num_train}
    for split, count in splits.items():
        _write_split(root, split, count, seed, sizes)

    def config(fmt: str, parts: dict[str, str], classes: bool = False) -> dict:
        out: dict = {"format": fmt}
        if classes:
            out["classes"] = [name for _, name, _, _ in CATEGORIES]
        for split in splits:
            out[split] = {"images": f"images/{split}", **{k: v.format(split=split) for k, v in parts.items()}}
        return out

    files = {
        "data.yaml": config("coco_panoptic", {"annotations": "annotations/panoptic_{split}.json",
                                              "masks": "panoptic/{split}"}),
        "data_instances.yaml": config("coco_instances", {"annotations": "annotations/instances_{split}.json"}),
        "data_semantic.yaml": config("semantic", {"masks": "semantic/{split}"}, classes=True),
    }
    for name, content in files.items():
        (root / name).write_text(yaml.safe_dump(content, sort_keys=False))
    return root / "data.yaml"
