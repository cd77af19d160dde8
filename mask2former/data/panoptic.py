"""COCO panoptic annotations (JSON + PNG folder) -> Targets.

A PNG pixel's segment id is ``R + 256 G + 256^2 B``; id 0 is void (ignored). ``segments_info``
gives each segment's category and crowd flag; the category's ``isthing`` gives ``is_thing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.coco import file_in, image_records, json_list, parse_categories
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    FileIndex,
    Problems,
    Record,
    check_size,
    make_target,
    read_json,
    read_rgb_png,
)
from mask2former.structures import Target


def rgb_to_id(png: np.ndarray) -> np.ndarray:
    """``[H, W]`` int64 segment ids of an ``[H, W, 3]`` panoptic PNG."""
    png = png.astype(np.int64)
    return png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]


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
        masks = ids[None] == segment_ids[:, None, None]  # [N, H, W]
        return make_target(masks, labels, [self.is_thing[c] for c in labels],
                           [bool(s.get("iscrowd", 0)) for s in segments], ids == 0)


def _check_segments(segments: Any, known: set[int]) -> str | None:
    if not isinstance(segments, list):
        return "'segments_info' must be a list"
    seen: set[int] = set()
    for k, s in enumerate(segments):
        if not isinstance(s, dict) or not isinstance(s.get("id"), int) or s["id"] <= 0:
            return f"segments_info[{k}]: expected an object with a positive integer 'id'"
        if s["id"] in seen:
            return f"segments_info[{k}]: duplicate segment id {s['id']}"
        seen.add(s["id"])
        if s.get("category_id") not in known:
            return f"segments_info[{k}] (id {s['id']}): unknown category_id {s.get('category_id')!r}"
    return None


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
        if image_id not in records:
            problems.report(path, f"annotations[{j}]: image_id {image_id!r} is not in 'images'")
            continue
        record = records[image_id]
        if record.mask_path is not None:
            problem = "a second annotation for the same image"
        else:
            file_name = ann.get("file_name") or Path(record.image_path).with_suffix(".png").name
            record.mask_path = masks / file_name
            problem = _check_segments(ann.get("segments_info"), known)
            if problem is None and not files.exists(record.mask_path):
                problem = f"panoptic PNG not found: {record.mask_path}"
        if problem is not None:
            problems.report(path, f"annotations[{j}] of image {record.image_path.name}: {problem}")
            bad.add(image_id)
            continue
        record.annotations = ann["segments_info"]
    contiguous = {c.id: i for i, c in enumerate(categories)}
    return DatasetSplit(name=name, categories=categories, format="coco_panoptic", skip_bad=skip_bad,
                        records=[r for i, r in records.items() if i not in bad],
                        decoder=PanopticDecoder(contiguous, [c.isthing for c in categories]), skipped=problems.skipped)
