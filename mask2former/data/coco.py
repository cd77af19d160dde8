"""COCO instance annotations (polygons, RLE, uncompressed RLE; crowd regions) -> Targets.

Category ids are mapped to contiguous ids in id order. Masks are decoded with pycocotools in one
call per image. The JSON helpers here are shared by the LVIS and COCO panoptic readers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from mask2former.config import CategoryInfo
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    FileIndex,
    Problems,
    Record,
    default_color,
    make_target,
    read_json,
)
from mask2former.structures import Target

logger = logging.getLogger(__name__)


def json_list(data: Any, key: str, path: Path, *, required: bool = True) -> list:
    """``data[key]`` checked to be a list (a missing optional key is an empty list)."""
    if not isinstance(data, dict):
        raise DatasetError(path, f"expected a JSON object with {key!r}, got {type(data).__name__}")
    if key not in data:
        if required:
            raise DatasetError(path, f"missing top-level key {key!r}")
        return []
    if not isinstance(data[key], list):
        raise DatasetError(path, f"{key!r} must be a list, got {type(data[key]).__name__}")
    return data[key]


def parse_categories(data: Any, path: Path, *, isthing_default: bool = True) -> list[CategoryInfo]:
    """Categories sorted by id: the list index is the contiguous class id."""
    categories: list[CategoryInfo] = []
    for i, c in enumerate(json_list(data, "categories", path)):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or "name" not in c:
            raise DatasetError(path, f"categories[{i}]: expected an object with an integer 'id' and a 'name'")
        color = c.get("color")
        rgb = tuple(int(v) for v in color) if isinstance(color, list) and len(color) == 3 else (0, 0, 0)
        categories.append(CategoryInfo(id=c["id"], name=str(c["name"]),
                                       isthing=bool(c.get("isthing", isthing_default)), color=rgb))
    ids = [c.id for c in categories]
    if len(set(ids)) != len(ids):
        raise DatasetError(path, f"duplicate category ids {sorted({i for i in ids if ids.count(i) > 1})}")
    if not categories:
        raise DatasetError(path, "'categories' is empty")
    categories.sort(key=lambda c: c.id)
    for i, c in enumerate(categories):
        if c.color == (0, 0, 0):
            c.color = default_color(i)
    return categories


def image_records(data: Any, path: Path, resolve: Callable[[dict], Path | str], problems: Problems,
                  ) -> dict[Any, Record]:
    """One record per entry of ``images`` (``resolve`` gives its file, or a string saying why
    not), dropping missing files and duplicate ids through ``problems``."""
    records: dict[Any, Record] = {}
    for i, entry in enumerate(json_list(data, "images", path)):
        if not isinstance(entry, dict) or "id" not in entry:
            problems.report(path, f"images[{i}]: expected an object with 'id' and 'file_name'")
            continue
        if entry["id"] in records:
            problems.report(path, f"images[{i}]: duplicate image id {entry['id']!r}")
            continue
        image_path = resolve(entry)
        if isinstance(image_path, str):
            problems.report(path, f"images[{i}] (id {entry['id']!r}): {image_path}")
            continue
        h, w = entry.get("height"), entry.get("width")
        sized = isinstance(h, int) and isinstance(w, int)
        records[entry["id"]] = Record(image_path=image_path, image_id=entry["id"], height=h if sized else None,
                                      width=w if sized else None)
    return records


def file_in(folder: Path, files: FileIndex) -> Callable[[dict], Path | str]:
    """Resolver for ``images`` entries whose ``file_name`` is relative to ``folder``."""
    def resolve(entry: dict) -> Path | str:
        name = entry.get("file_name")
        if not isinstance(name, str):
            return "missing 'file_name'"
        image_path = folder / name
        return image_path if files.exists(image_path) else f"image file not found: {image_path}"
    return resolve


def check_segmentation(ann: dict, record: Record) -> str | None:
    """Why an instance annotation cannot be decoded, or None; degenerate polygons (< 3 points,
    which pycocotools would read as a box) are removed in place."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if any(not isinstance(p, list) or len(p) % 2 for p in seg):
            return "polygons must be lists of x, y coordinates (an even count)"
        ann["segmentation"] = [p for p in seg if len(p) >= 6]
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if not isinstance(seg["counts"], list | str | bytes):
            return "RLE 'counts' must be a list (uncompressed) or a string (compressed)"
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2):
            return f"RLE 'size' must be [height, width], got {size!r}"
        if record.height is not None and list(size) != [record.height, record.width]:
            return f"RLE size {size} differs from the image size [{record.height}, {record.width}]"
        return None
    return "missing or unreadable 'segmentation' (expected polygons or an RLE dict with 'counts' and 'size')"


def attach_annotations(data: Any, path: Path, records: dict[Any, Record], categories: list[CategoryInfo],
                       problems: Problems) -> list[Record]:
    """Give each record its valid annotations; an image with a broken annotation is dropped as a
    whole (training on it without that object would teach the object as background)."""
    known = {c.id for c in categories}
    bad: set[Any] = set()
    empty = 0
    for j, ann in enumerate(json_list(data, "annotations", path, required=False)):
        where = f"annotations[{j}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict) or ann.get("image_id") not in records:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            problems.report(path, f"{where}: image_id {image_id!r} is not in 'images'")
            continue
        record = records[ann["image_id"]]
        if ann["image_id"] in bad:
            continue
        problem = None
        if ann.get("category_id") not in known:
            problem = f"unknown category_id {ann.get('category_id')!r}"
        else:
            problem = check_segmentation(ann, record)
        if problem is not None:
            problems.report(path, f"{where} of image {record.image_path.name}: {problem}")
            bad.add(ann["image_id"])
            continue
        if ann["segmentation"] == []:
            empty += 1
            continue
        record.annotations.append(ann)
    if empty:
        logger.warning("%s: dropped %d annotations without a usable polygon", path, empty)
    return [r for image_id, r in records.items() if image_id not in bad]


def decode_instances(annotations: list[dict], height: int, width: int, record: Record) -> np.ndarray:
    """``[N, H, W]`` bool masks of COCO segmentations: polygons and uncompressed RLEs are encoded
    in one pycocotools call each, then everything is decoded in one call."""
    rles: list[Any] = [None] * len(annotations)
    polygons, owners, uncompressed, unc_owners = [], [], [], []
    for i, ann in enumerate(annotations):
        seg = ann["segmentation"]
        if isinstance(seg, list):
            polygons.extend(seg)
            owners.extend([i] * len(seg))
        elif isinstance(seg["counts"], list):
            uncompressed.append(seg)
            unc_owners.append(i)
        else:
            rles[i] = seg
    for i, rle in zip(unc_owners, mask_util.frPyObjects(uncompressed, height, width) if uncompressed else []):
        rles[i] = rle
    if polygons:
        encoded = mask_util.frPyObjects(polygons, height, width)
        parts: dict[int, list] = {}
        for i, rle in zip(owners, encoded):
            parts.setdefault(i, []).append(rle)
        for i, group in parts.items():
            rles[i] = group[0] if len(group) == 1 else mask_util.merge(group)
    for rle, ann in zip(rles, annotations):
        if list(rle["size"]) != [height, width]:
            raise DatasetError(record.image_path, f"annotation {ann.get('id')!r}: RLE size {list(rle['size'])} "
                                                  f"differs from the image size [{height}, {width}]")
    masks = mask_util.decode(rles)  # [H, W, N] uint8, Fortran order
    return masks.transpose(2, 0, 1).astype(bool)


@dataclass
class InstanceDecoder:
    """Target of an image with COCO-style instance annotations (no void pixels)."""

    contiguous: dict[int, int]
    is_thing: list[bool]

    def __call__(self, record: Record, height: int, width: int) -> Target:
        anns = record.annotations
        ignore = np.zeros((height, width), dtype=bool)
        if not anns:
            return Target.empty(height, width)
        labels = [self.contiguous[a["category_id"]] for a in anns]
        return make_target(decode_instances(anns, height, width, record), labels,
                           [self.is_thing[c] for c in labels], [bool(a.get("iscrowd", 0)) for a in anns], ignore)


def instance_split(data: Any, path: Path, resolve: Callable[[dict], Path | str], *, format: str, name: str,
                   skip_bad: bool, extra: Callable[[dict], dict] | None = None) -> DatasetSplit:
    """A split from a parsed COCO-style instance JSON (shared by COCO and LVIS)."""
    problems = Problems(skip_bad)
    categories = parse_categories(data, path)
    records = image_records(data, path, resolve, problems)
    if extra is not None:
        for entry in json_list(data, "images", path):
            if isinstance(entry, dict) and entry.get("id") in records:
                records[entry["id"]].extra.update(extra(entry))
    kept = attach_annotations(data, path, records, categories, problems)
    contiguous = {c.id: i for i, c in enumerate(categories)}
    return DatasetSplit(name=name, categories=categories, records=kept, format=format, skip_bad=skip_bad,
                        decoder=InstanceDecoder(contiguous, [c.isthing for c in categories]),
                        skipped=problems.skipped)


def read_coco_instances(annotations: str | Path, images: str | Path, *, name: str = "",
                        skip_bad: bool = False) -> DatasetSplit:
    """COCO instances JSON + image folder; crowd regions come out with ``iscrowd`` True."""
    path = Path(annotations)
    return instance_split(read_json(path), path, file_in(Path(images), FileIndex()), format="coco_instances",
                          name=name, skip_bad=skip_bad)
