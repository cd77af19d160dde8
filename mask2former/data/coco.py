"""COCO instance annotations (polygons, RLE, uncompressed RLE; crowd regions) -> Targets.

Category ids are mapped to contiguous ids in id order. Masks are decoded with pycocotools in one
call per image, after ``coco_masks`` checked each segmentation. The JSON helpers here (reading
and type-checking fields of any JSON value) are shared by the LVIS and COCO panoptic readers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.config import CategoryInfo
from mask2former.data.coco_masks import decode_segmentations, segmentation_problem, usable_polygons
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    FileIndex,
    Problems,
    Record,
    check_mask_budget,
    default_color,
    duplicates,
    make_target,
    read_json,
)
from mask2former.data.files import NOT_FOUND
from mask2former.data.image import max_image_pixels
from mask2former.data.polygons import Polygons, polygon_arrays
from mask2former.errors import brief
from mask2former.structures import Target

logger = logging.getLogger(__name__)

CATEGORY_ID_RANGE = (-(2**31), 2**31)  # ids stay plain integers everywhere they go (numpy, pycocotools)


# --------------------------------------------------------------------------- JSON field checks
# Each returns why a field of a parsed JSON value is unusable, or None. A JSON value can be of any
# type; bool is excluded wherever an integer is meant (True == 1 would pass silently).


def id_problem(value: Any, name: str) -> str | None:
    """An id used to look records up: an integer or a string (a float 1.0 would equal 1)."""
    if type(value) in (int, str):
        return None
    return f"{name} must be an integer or a string, got {brief(value)}"


def int_problem(value: Any, name: str, lo: int, hi: int) -> str | None:
    """An integer in ``lo <= value < hi``."""
    if type(value) is int and lo <= value < hi:
        return None
    return f"{name} must be an integer in {lo}..{hi - 1}, got {brief(value)}"


def flag_problem(value: Any, name: str) -> str | None:
    """``isthing`` / ``iscrowd``: true, false, 0 or 1 (a string "0" would read as true)."""
    if type(value) is bool or (type(value) is int and value in (0, 1)):
        return None
    return f"{name} must be 0, 1, true or false, got {brief(value)}"


def finite_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def area_bbox_problem(ann: dict) -> str | None:
    """``area`` and ``bbox`` are not used for training but COCO/LVIS evaluation tools read them:
    when present they must be a finite number >= 0 and ``[x, y, w, h]`` with w, h >= 0."""
    if "area" in ann and not (finite_number(ann["area"]) and ann["area"] >= 0):
        return f"'area' must be a finite number >= 0, got {brief(ann['area'])}"
    bbox = ann.get("bbox")
    if "bbox" in ann and not (isinstance(bbox, list) and len(bbox) == 4 and all(map(finite_number, bbox))
                              and bbox[2] >= 0 and bbox[3] >= 0):
        return f"'bbox' must be [x, y, width, height] of finite numbers, got {brief(bbox)}"
    return None


def image_size_problem(entry: dict) -> str | None:
    """``height`` / ``width`` of an ``images`` entry: both absent, or positive integers whose
    product the image pixel limit admits."""
    h, w = entry.get("height"), entry.get("width")
    if h is None and w is None:
        return None
    for name, value in (("height", h), ("width", w)):
        if type(value) is not int or value < 1:
            return f"'{name}' must be a positive integer, got {brief(value)}"
    assert isinstance(h, int) and isinstance(w, int)  # checked just above
    limit = max_image_pixels()
    if limit is not None and h * w > limit:
        return f"claims a {h}x{w} (HxW) image, more than the limit of {limit:,} pixels"
    return None


# --------------------------------------------------------------------------- shared readers


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
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DatasetError(path, f"categories[{i}]: expected an object with an integer 'id' and a 'name'")
        problem = category_problem(c)
        if problem is not None:
            raise DatasetError(path, f"categories[{i}]: {problem}")
        color = c.get("color")
        categories.append(CategoryInfo(id=c["id"], name=str(c["name"]),
                                       isthing=bool(c.get("isthing", isthing_default)),
                                       color=tuple(color) if color is not None else (0, 0, 0)))
    repeated = duplicates(c.id for c in categories)
    if repeated:
        raise DatasetError(path, f"duplicate category ids {sorted(repeated)[:10]}")
    if not categories:
        raise DatasetError(path, "'categories' is empty")
    categories.sort(key=lambda c: c.id)
    for i, c in enumerate(categories):
        if c.color == (0, 0, 0):
            c.color = default_color(i)
    return categories


def category_problem(c: dict) -> str | None:
    """Why a ``categories`` entry is unusable: its id, name, isthing flag or colour."""
    problem = int_problem(c["id"], "'id'", *CATEGORY_ID_RANGE)
    if problem is None and type(c["name"]) not in (str, int):
        problem = f"'name' must be a string, got {brief(c['name'])}"
    if problem is None and "isthing" in c:
        problem = flag_problem(c["isthing"], "'isthing'")
    if problem is None and c.get("color") is not None:
        problem = color_problem(c["color"], "'color'")
    return problem


def color_problem(color: Any, name: str) -> str | None:
    """A colour: three integers 0-255."""
    if isinstance(color, list | tuple) and len(color) == 3 and all(type(v) is int and 0 <= v <= 255 for v in color):
        return None
    return f"{name} must be [r, g, b] of integers 0-255, got {brief(color)}"


def image_records(data: Any, path: Path, resolve: Callable[[dict], Path | str], problems: Problems,
                  ) -> dict[Any, Record]:
    """One record per entry of ``images`` (``resolve`` gives its file, or a string saying why
    not), dropping missing files, duplicate ids and wrong-typed fields through ``problems``."""
    records: dict[Any, Record] = {}
    for i, entry in enumerate(json_list(data, "images", path)):
        if not isinstance(entry, dict) or "id" not in entry:
            problems.report(path, f"images[{i}]: expected an object with 'id' and 'file_name'")
            continue
        problem = id_problem(entry["id"], "'id'")
        if problem is None and entry["id"] in records:
            problem = f"duplicate image id {brief(entry['id'])}"
        if problem is not None:
            problems.report(path, f"images[{i}]: {problem}")
            continue
        image_path = resolve(entry)
        problem = image_path if isinstance(image_path, str) else image_size_problem(entry)
        if problem is not None or isinstance(image_path, str):
            problems.report(path, f"images[{i}] (id {brief(entry['id'])}): {problem}")
            continue
        records[entry["id"]] = Record(image_path=image_path, image_id=entry["id"], height=entry.get("height"),
                                      width=entry.get("width"))
    return records


def file_in(folder: Path, files: FileIndex) -> Callable[[dict], Path | str]:
    """Resolver for ``images`` entries whose ``file_name`` is relative to ``folder``."""
    def resolve(entry: dict) -> Path | str:
        name = entry.get("file_name")
        if name is None:
            return "missing 'file_name'"
        if not isinstance(name, str) or not name:
            return f"'file_name' must be a non-empty string, got {brief(name)}"
        image_path = folder / name
        problem = files.problem(image_path)
        if problem is None:
            return image_path
        return f"image file not found: {image_path}" if problem == NOT_FOUND else f"{image_path} {problem}"
    return resolve


def annotation_problem(ann: dict, record: Record, known: set[int]) -> str | None:
    """Why an instance annotation cannot be used, or None; degenerate polygons (< 3 points,
    which pycocotools would read as a box) are removed in place."""
    category = ann.get("category_id")
    if type(category) is not int or category not in known:
        return f"unknown category_id {brief(category)}"
    problem = id_problem(ann["id"], "'id'") if "id" in ann else None  # LVIS evaluation keys annotations by id
    problem = problem or (flag_problem(ann["iscrowd"], "'iscrowd'") if "iscrowd" in ann else None)
    problem = problem or area_bbox_problem(ann)
    problem = problem or segmentation_problem(ann.get("segmentation"), record.height, record.width)
    if problem is None and isinstance(ann["segmentation"], list):
        ann["segmentation"] = usable_polygons(ann["segmentation"])
    return problem


def _where(index: int, ann: dict) -> str:
    return f"annotations[{index}]" + (f" (id {brief(ann['id'])})" if "id" in ann else "")


def attach_annotations(data: Any, path: Path, records: dict[Any, Record], categories: list[CategoryInfo],
                       problems: Problems) -> list[Record]:
    """Give each record its valid annotations; an image with a broken annotation is dropped as a
    whole (training on it without that object would teach the object as background)."""
    known = {c.id for c in categories}
    bad: set[Any] = set()
    empty = 0
    for j, ann in enumerate(json_list(data, "annotations", path, required=False)):
        if not isinstance(ann, dict):
            problems.report(path, f"annotations[{j}]: expected an object, got {brief(ann)}")
            continue
        image_id = ann.get("image_id")
        if id_problem(image_id, "image_id") is not None or image_id not in records:
            problems.report(path, f"{_where(j, ann)}: image_id {brief(image_id)} is not in 'images'")
            continue
        record = records[image_id]
        if image_id in bad:
            continue
        problem = annotation_problem(ann, record, known)
        if problem is not None:
            problems.report(path, f"{_where(j, ann)} of image {record.image_path.name}: {problem}")
            bad.add(image_id)
            continue
        if ann["segmentation"] == []:
            empty += 1
            continue
        record.annotations.append(ann)
    if empty:
        logger.warning("%s: dropped %d annotations without a usable polygon", path, empty)
    return [r for image_id, r in records.items() if image_id not in bad]


def check_instances(annotations: list[dict], height: int, width: int, record: Record,
                    source: Path | None = None) -> None:
    """Raise unless every segmentation fits the image's actual size (records built without
    ``height`` / ``width`` meet it only here) and the dense masks fit the memory budget."""
    check_mask_budget(len(annotations), height, width, source or record.image_path,
                      f"image {record.image_path.name}: ")
    for k, ann in enumerate(annotations):
        problem = segmentation_problem(ann["segmentation"], height, width)
        if problem is not None:
            which = f"annotation (id {brief(ann['id'])})" if "id" in ann else f"annotation {k}"
            raise DatasetError(source or record.image_path, f"{which} of image {record.image_path.name}: {problem}")


def decode_instances(annotations: list[dict], height: int, width: int, record: Record,
                     source: Path | None = None) -> np.ndarray:
    """``[N, H, W]`` bool masks of COCO segmentations, checked first (``check_instances``)."""
    check_instances(annotations, height, width, record, source)
    return decode_segmentations([ann["segmentation"] for ann in annotations], height, width)


@dataclass
class InstanceDecoder:
    """Target of an image with COCO-style instance annotations (no void pixels)."""

    contiguous: dict[int, int]
    is_thing: list[bool]
    source: Path | None = None  # the annotation file, named by load-time errors

    def __call__(self, record: Record, height: int, width: int) -> Target:
        if not record.annotations:
            return Target.empty(height, width)
        return self._target(record, decode_instances(record.annotations, height, width, record, self.source))

    def with_polygons(self, record: Record, height: int, width: int) -> tuple[Target, list[Polygons | None]]:
        """The target with the masks of polygon segments left empty, and those segments' rings
        (None for RLE segments, which are decoded here): training rasterises polygons after the
        augmentation, at the output size, as the official mappers do."""
        anns = record.annotations
        if not anns:
            return Target.empty(height, width), []
        check_instances(anns, height, width, record, self.source)
        polygons = [polygon_arrays(a["segmentation"]) if isinstance(a["segmentation"], list) else None for a in anns]
        dense = [k for k, p in enumerate(polygons) if p is None]
        masks = np.zeros((len(anns), height, width), dtype=bool)  # untouched rows cost no memory
        if dense:
            masks[dense] = decode_segmentations([anns[k]["segmentation"] for k in dense], height, width)
        return self._target(record, masks), polygons

    def _target(self, record: Record, masks: np.ndarray) -> Target:
        labels = [self.contiguous[a["category_id"]] for a in record.annotations]
        return make_target(masks, labels, [self.is_thing[c] for c in labels],
                           [bool(a.get("iscrowd", 0)) for a in record.annotations],
                           np.zeros(masks.shape[1:], dtype=bool))


def instance_split(data: Any, path: Path, resolve: Callable[[dict], Path | str], *, format: str, name: str,
                   skip_bad: bool, extra: Callable[[dict], dict] | None = None) -> DatasetSplit:
    """A split from a parsed COCO-style instance JSON (shared by COCO and LVIS)."""
    problems = Problems(skip_bad)
    categories = parse_categories(data, path)
    records = image_records(data, path, resolve, problems)
    if extra is not None:
        for entry in json_list(data, "images", path):
            if isinstance(entry, dict) and id_problem(entry.get("id"), "id") is None and entry["id"] in records:
                records[entry["id"]].extra.update(extra(entry))
    kept = attach_annotations(data, path, records, categories, problems)
    contiguous = {c.id: i for i, c in enumerate(categories)}
    decoder = InstanceDecoder(contiguous, [c.isthing for c in categories], path)
    return DatasetSplit(name=name, categories=categories, records=kept, format=format, skip_bad=skip_bad,
                        decoder=decoder, polygon_decoder=decoder.with_polygons, skipped=problems.skipped)


def read_coco_instances(annotations: str | Path, images: str | Path, *, name: str = "",
                        skip_bad: bool = False) -> DatasetSplit:
    """COCO instances JSON + image folder; crowd regions come out with ``iscrowd`` True."""
    path = Path(annotations)
    return instance_split(read_json(path), path, file_in(Path(images), FileIndex()), format="coco_instances",
                          name=name, skip_bad=skip_bad)
