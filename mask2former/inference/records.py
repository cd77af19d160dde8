"""One image's results as the community's records: COCO panoptic ``segments_info``, COCO results
entries with RLE masks, the category list. ``predict``'s files and ``serve``'s answers both read
these, so a file and an HTTP answer say the same thing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mask2former.config import ModelConfig
from mask2former.formats import bbox_xywh, encode_rle
from mask2former.inference.visualize import palette
from mask2former.structures import ImageResult


def dataset_ids(config: ModelConfig) -> list[int]:
    """The id each contiguous class has in the dataset's files (the class index when none is known)."""
    cats = config.categories
    return [c.id for c in cats] if cats else list(range(config.num_classes))


def class_colors(config: ModelConfig) -> np.ndarray:
    """``[K, 3]`` uint8: the dataset's colours where it has them, else the palette's."""
    cats = config.categories
    return palette(config.num_classes, [c.color for c in cats] if cats else None)


def category_records(config: ModelConfig) -> list[dict]:
    """COCO ``categories``: id, name, isthing, color."""
    ids, colors, flags = dataset_ids(config), class_colors(config), config.thing_flags
    return [{"id": ids[i], "name": config.class_names[i], "isthing": int(flags[i]),
             "color": [int(c) for c in colors[i]]} for i in range(config.num_classes)]


def panoptic_segments(result: ImageResult, ids: np.ndarray, category_ids: Sequence[int]) -> list[dict]:
    """COCO panoptic ``segments_info`` of ``result`` whose segment map is ``ids``."""
    assert result.panoptic is not None
    return [{"id": s.id, "category_id": category_ids[s.label], "iscrowd": 0, "area": s.area,
             "bbox": bbox_xywh(ids == s.id), "isthing": s.isthing, "score": round(s.score, 6)}
            for s in result.panoptic.segments_info]


def instance_records(result: ImageResult, category_ids: Sequence[int], image_id: int | str) -> list[dict]:
    """COCO results entries (RLE mask, XYWH box, score) of ``result``'s instances."""
    inst = result.instance
    assert inst is not None
    masks = inst.masks.cpu().numpy()
    entries = []
    for i in range(masks.shape[0]):
        x0, y0, x1, y1 = inst.boxes[i].tolist()
        entries.append({"image_id": image_id, "category_id": category_ids[int(inst.labels[i])],
                        "segmentation": encode_rle(masks[i]), "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": round(float(inst.scores[i]), 6)})
    return entries
