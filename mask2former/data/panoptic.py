"""COCO panoptic annotations (JSON + PNG folder) -> Targets.

A PNG pixel's segment id is ``R + 256 G + 256^2 B``; id 0 is void (ignored). ``segments_info``
gives each segment's category and crowd flag; the category's ``isthing`` gives ``is_thing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.coco import (
    area_bbox_problem,
    file_in,
    flag_problem,
    id_problem,
    image_records,
    json_list,
    parse_categories,
)
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    FileIndex,
    Problems,
    Record,
    check_mask_budget,
    check_size,
    make_target,
    read_json,
    read_rgb_png,
)
from mask2former.data.files import NOT_FOUND
from mask2former.errors import brief
from mask2former.formats import rgb_to_id
from mask2former.structures import Target

MAX_SEGMENT_ID = 256**3 - 1  # the largest id an RGB pixel can hold


@dataclass
class PanopticDecoder:
    """Target of an image from its panoptic PNG and ``segments_info``."""

    contiguous: dict[int, int]
    is_thing: list[bool]

    def __call__(self, record: Record, height: int, width: int) -> Target:
        if record.mask_path is None:  # an image without an annotation entry
            return Target.empty(height, width)
        ids = rgb_to_id(read_rgb_png(record.mask_path))
        check_size(ids, record.mask_path, record, height, width)
        segments = record.annotations
        segment_ids = np.array([s["id"] for s in segments], dtype=np.int64)
        present = np.unique(ids)
        present = present[present != 0]
        absent = np.setdiff1d(segment_ids, present)
        if absent.size:
            raise DatasetError(record.mask_path, f"segment ids {absent.tolist()[:10]} of segments_info are absent "
                                                 "from the PNG")
        unlisted = np.setdiff1d(present, segment_ids)
        if unlisted.size:
            raise DatasetError(record.mask_path, f"PNG holds segment ids {unlisted.tolist()[:10]} that are not in "
                                                 "segments_info")
        labels = [self.contiguous[s["category_id"]] for s in segments]
        check_mask_budget(len(segments), height, width, record.mask_path)
        masks = ids[None] == segment_ids[:, None, None]  # [N, H, W]
        return make_target(masks, labels, [self.is_thing[c] for c in labels],
                           [bool(s.get("iscrowd", 0)) for s in segments], ids == 0)


def _check_segments(segments: Any, known: set[int]) -> str | None:
    if not isinstance(segments, list):
        return f"'segments_info' must be a list, got {brief(segments)}"
    seen: set[int] = set()
    for k, s in enumerate(segments):
        if not isinstance(s, dict) or type(s.get("id")) is not int or not 0 < s["id"] <= MAX_SEGMENT_ID:
            return f"segments_info[{k}]: expected an object with an integer 'id' in 1..{MAX_SEGMENT_ID}"
        if s["id"] in seen:
            return f"segments_info[{k}]: duplicate segment id {s['id']}"
        seen.add(s["id"])
        category = s.get("category_id")
        problem = None if type(category) is int and category in known else f"unknown category_id {brief(category)}"
        problem = problem or (flag_problem(s["iscrowd"], "'iscrowd'") if "iscrowd" in s else None)
        problem = problem or area_bbox_problem(s)
        if problem is not None:
            return f"segments_info[{k}] (id {s['id']}): {problem}"
    return None


def _set_png(ann: dict, record: Record, masks: Path) -> str | None:
    """Set ``record.mask_path`` from the annotation's ``file_name`` (default: the image's stem +
    .png), or say why that name is unusable."""
    file_name = ann.get("file_name")
    if file_name is None:
        file_name = Path(record.image_path).with_suffix(".png").name
    elif not isinstance(file_name, str) or not file_name:
        return f"'file_name' must be a non-empty string, got {brief(file_name)}"
    record.mask_path = masks / file_name
    return None


def _png_problem(record: Record, files: FileIndex) -> str | None:
    assert record.mask_path is not None
    problem = files.problem(record.mask_path)
    if problem is None:
        return None
    return (f"panoptic PNG not found: {record.mask_path}" if problem == NOT_FOUND
            else f"panoptic PNG {record.mask_path} {problem}")


def read_coco_panoptic(annotations: str | Path, images: str | Path, masks: str | Path, *, name: str = "",
                       skip_bad: bool = False) -> DatasetSplit:
    """COCO panoptic JSON, image folder and panoptic PNG folder (``annotations[i].file_name``)."""
    path, masks = Path(annotations), Path(masks)
    data = read_json(path)
    problems, files = Problems(skip_bad), FileIndex()
    categories = parse_categories(data, path, isthing_default=True)
    known = {c.id for c in categories}
    records = image_records(data, path, file_in(Path(images), files), problems)
    bad: set[Any] = set()
    for j, ann in enumerate(json_list(data, "annotations", path)):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if id_problem(image_id, "image_id") is not None or image_id not in records:
            problems.report(path, f"annotations[{j}]: image_id {brief(image_id)} is not in 'images'")
            continue
        record = records[image_id]
        problem: str | None
        if record.mask_path is not None:
            problem = "a second annotation for the same image"
        else:
            problem = (_set_png(ann, record, masks) or _check_segments(ann.get("segments_info"), known)
                       or _png_problem(record, files))
        if problem is not None:
            problems.report(path, f"annotations[{j}] of image {record.image_path.name}: {problem}")
            bad.add(image_id)
            continue
        record.annotations = ann["segments_info"]
    contiguous = {c.id: i for i, c in enumerate(categories)}
    return DatasetSplit(name=name, categories=categories, format="coco_panoptic", skip_bad=skip_bad,
                        records=[r for i, r in records.items() if i not in bad],
                        decoder=PanopticDecoder(contiguous, [c.isthing for c in categories]), skipped=problems.skipped)
