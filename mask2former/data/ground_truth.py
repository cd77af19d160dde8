"""Ground truth that a split's evaluation reads beside its training annotations, as officially.

The official evaluation scores a COCO or ADE20K panoptic model's mask AP with pycocotools against
the dataset's instances JSON (``instances_val2017.json``, ``ade20k_instance_val.json``): its
``area`` decides the size ranges, its crowd regions are ignored, its polygons are rasterised by
pycocotools; and ADE20K panoptic mIoU against the semantic label PNGs. Neither equals masks
derived from the panoptic PNGs. ``attach_instances`` and ``attach_semantic`` match those files to
the split's images and leave in each record's ``extra`` what scoring needs (``INSTANCES``,
``SEMANTIC``). Evaluation uses them whole: ``skip_bad`` does not apply here, as a number scored on
part of the ground truth would be another number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.coco import area_bbox_problem, flag_problem, id_problem, image_size_problem, json_list
from mask2former.data.coco_masks import segmentation_problem
from mask2former.data.datasets import DatasetError, DatasetSplit, FileIndex, Record, read_json
from mask2former.data.files import NOT_FOUND
from mask2former.data.semantic import VOID, LabelMapDecoder
from mask2former.errors import brief
from mask2former.formats import IGNORE_LABEL

INSTANCES, SEMANTIC = "instances", "semantic"  # keys of Record.extra


@dataclass
class InstancesGroundTruth:
    """One image's part of an instances JSON: ``height`` / ``width`` as the JSON gives them (None
    when absent) and its annotations verbatim (``area``, ``iscrowd``, ``segmentation``)."""

    source: Path
    height: int | None
    width: int | None
    annotations: list[dict[str, Any]]

    def size_problem(self, height: int, width: int) -> str | None:
        """Why the JSON cannot describe an image of ``height x width`` (polygons are rasterised
        at the JSON's size, predictions are at the image's), or None."""
        if self.height is None or (self.height, self.width) == (height, width):
            return None
        return f"says the image is {self.height}x{self.width} (HxW), the image file is {height}x{width}"


@dataclass
class SemanticGroundTruth:
    """One image's semantic label PNG and the split's value -> class table (shared)."""

    path: Path
    image_path: Path
    decoder: LabelMapDecoder

    def read(self, height: int, width: int) -> np.ndarray:
        """``[H, W]`` int64 contiguous classes, ``IGNORE_LABEL`` where void."""
        classes = self.decoder.classes(Record(image_path=self.image_path, image_id="", mask_path=self.path),
                                       height, width)
        return np.where(classes == VOID, IGNORE_LABEL, classes).astype(np.int64)


# --------------------------------------------------------------------------- instances JSON


def attach_instances(split: DatasetSplit, path: str | os.PathLike) -> None:
    """Match the images of an instances JSON to ``split``'s records (by file stem; entries
    without a ``file_name`` by id) and give each record its annotations; every category of the
    JSON must be a thing class of the split (its predictions are scored against it)."""
    path = Path(path)
    data = read_json(path)
    categories = _json_categories(data, path, split)
    entries = _matched_images(data, path, split.records)
    annotations = _annotations(data, path, list(entries.values()), categories)
    for index, entry in entries.items():
        split.records[index].extra[INSTANCES] = InstancesGroundTruth(
            path, entry.get("height"), entry.get("width"), annotations.get(entry["id"], []))


def own_instances(split: DatasetSplit, path: str | os.PathLike) -> None:
    """A COCO instances split scored against its own JSON annotations (their ``area`` and crowd
    flags), as pycocotools scores the official COCO instance models."""
    for record in split.records:
        record.extra[INSTANCES] = InstancesGroundTruth(Path(path), record.height, record.width, record.annotations)


def _json_categories(data: Any, path: Path, split: DatasetSplit) -> set[int]:
    things = {c.id for c in split.categories if c.isthing}
    ids = set()
    for i, c in enumerate(json_list(data, "categories", path)):
        category = c.get("id") if isinstance(c, dict) else None
        if type(category) is not int:
            raise DatasetError(path, f"categories[{i}]: expected an object with an integer 'id', got {brief(c)}")
        if category not in things:
            raise DatasetError(path, f"categories[{i}]: id {category} is not a thing class of the split's "
                                     f"annotations (thing ids: {brief(sorted(things))})")
        ids.add(category)
    return ids


def _matched_images(data: Any, path: Path, records: list[Record]) -> dict[int, dict[str, Any]]:
    """Record index -> its ``images`` entry: the entry of the same file stem (the suffix may
    differ); an entry without a ``file_name``, by the record's image id."""
    by_stem: dict[str, dict[str, Any] | None] = {}  # None: the stem occurs twice
    by_id: dict[Any, dict[str, Any]] = {}
    seen: set[Any] = set()
    for i, entry in enumerate(json_list(data, "images", path)):
        problem = _image_problem(entry, seen)
        if problem is not None:
            raise DatasetError(path, f"images[{i}]: {problem}")
        seen.add(entry["id"])
        if isinstance(entry.get("file_name"), str) and entry["file_name"]:
            stem = Path(entry["file_name"]).stem
            by_stem[stem] = None if stem in by_stem else entry
        else:
            by_id[entry["id"]] = entry
    matched: dict[int, dict[str, Any]] = {}
    owner: dict[Any, Path] = {}
    for index, record in enumerate(records):
        stem = Path(record.image_path).stem
        if stem in by_stem and by_stem[stem] is None:
            raise DatasetError(path, f"several images are named {stem}.*: cannot tell which is {record.image_path}")
        entry = by_stem.get(stem) or by_id.get(record.image_id)
        if entry is None:
            raise DatasetError(path, f"has no image {stem}.* (nor an image id {brief(record.image_id)} without a "
                                     "file_name): every image of the split needs its entry")
        if entry["id"] in owner:
            raise DatasetError(path, f"image id {brief(entry['id'])} matches both {owner[entry['id']]} and "
                                     f"{record.image_path}")
        owner[entry["id"]], matched[index] = record.image_path, entry
    return matched


def _image_problem(entry: Any, seen: set[Any]) -> str | None:
    if not isinstance(entry, dict) or "id" not in entry:
        return "expected an object with 'id' and 'file_name'"
    problem = id_problem(entry["id"], "'id'") or image_size_problem(entry)
    if problem is None and entry["id"] in seen:
        problem = f"duplicate image id {brief(entry['id'])}"
    return problem


def _annotations(data: Any, path: Path, matched: list[dict[str, Any]], categories: set[int]
                 ) -> dict[Any, list[dict[str, Any]]]:
    """JSON image id -> its annotations, for the matched images, each checked for what
    pycocotools reads (a NaN coordinate would crash it, a missing ``area`` stop it)."""
    sizes = {e["id"]: (e.get("height"), e.get("width")) for e in matched}
    out: dict[Any, list[dict[str, Any]]] = {}
    for j, ann in enumerate(json_list(data, "annotations", path, required=False)):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if id_problem(image_id, "image_id") is not None or image_id not in sizes:
            continue  # not an image of this split: not scored here
        assert isinstance(ann, dict)
        problem = _annotation_problem(ann, categories, *sizes[image_id])
        if problem is not None:
            raise DatasetError(path, f"annotations[{j}] (image id {brief(image_id)}): {problem}")
        out.setdefault(image_id, []).append(ann)
    return out


def _annotation_problem(ann: dict[str, Any], categories: set[int], height: int | None, width: int | None
                        ) -> str | None:
    category = ann.get("category_id")
    if type(category) is not int or category not in categories:
        return f"category_id {brief(category)} is not in the file's 'categories'"
    if "area" not in ann:
        return "missing 'area' (pycocotools assigns the size ranges by it)"
    problem = area_bbox_problem(ann) or (flag_problem(ann["iscrowd"], "'iscrowd'") if "iscrowd" in ann else None)
    return problem or segmentation_problem(ann.get("segmentation"), height, width)


# --------------------------------------------------------------------------- semantic label PNGs


def attach_semantic(split: DatasetSplit, folder: str | os.PathLike, images: str | os.PathLike, *,
                    ignore_label: int = IGNORE_LABEL, reduce_zero_label: bool = False) -> None:
    """Give each record its label PNG: ``folder / <image path relative to images>`` with suffix
    ``.png``. Pixel values are the split's classes in order (0..K-1), ``ignore_label`` void;
    ``reduce_zero_label`` (ADE20K's raw files): 1..K, and 0 void too."""
    folder, images = Path(folder), Path(images)
    decoder = _label_decoder(len(split.categories), ignore_label, reduce_zero_label, folder)
    files = FileIndex()
    for record in split.records:
        label_path = folder / Path(record.image_path).relative_to(images).with_suffix(".png")
        problem = files.problem(label_path)
        if problem is not None:
            raise DatasetError(record.image_path, f"semantic label PNG {label_path} "
                                                  + ("not found" if problem == NOT_FOUND else problem))
        record.extra[SEMANTIC] = SemanticGroundTruth(label_path, record.image_path, decoder)


def _label_decoder(k: int, ignore_label: int, reduce_zero_label: bool, folder: Path) -> LabelMapDecoder:
    offset = int(reduce_zero_label)
    if offset <= ignore_label < k + offset:
        raise DatasetError(folder, f"ignore_label {ignore_label} is also the pixel value of class "
                                   f"{ignore_label - offset} of the {k}")
    table = {v: v - offset for v in range(offset, k + offset)}
    table[ignore_label] = VOID
    if reduce_zero_label:
        table[0] = VOID
    first = "1" if reduce_zero_label else "0"
    hint = (f" ({first}..{k - 1 + offset} for the {k} classes, {ignore_label}"
            + (" and 0" if reduce_zero_label else "") + " = ignore)")
    return LabelMapDecoder(table, [False] * k, hint=hint)
