"""COCO mask (and box) AP through pycocotools, from in-memory ground truth and results."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _for_iou_type(result: dict[str, Any], iou_type: str) -> dict[str, Any]:
    """As detectron2 feeds COCOeval: mask AP without ``bbox`` (so detection areas are mask areas),
    box AP with the box only (taken from the mask when missing)."""
    from pycocotools import mask as mask_utils

    d = dict(result)
    if iou_type == "segm":
        d.pop("bbox", None)
    else:
        if "bbox" not in d:
            d["bbox"] = [float(v) for v in mask_utils.toBbox(d["segmentation"])]
        d.pop("segmentation", None)
    return d


def coco_evaluate(gt: dict[str, Any], results: Sequence[dict[str, Any]],
                  iou_types: Sequence[str] = ("segm", "bbox")) -> dict[str, dict[str, Any]]:
    """The 12 COCO numbers per IoU type (percent; -1 where COCOeval has nothing to average, e.g.
    no ground truth of a size) and AP per category id. No detections at all: AP 0 everywhere
    COCOeval would average over ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = {"images": gt["images"], "annotations": gt["annotations"], "categories": gt["categories"],
                       "info": {}, "licenses": []}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    out: dict[str, dict[str, Any]] = {}
    for iou_type in iou_types:
        if not results:
            has_gt = bool(gt["annotations"])
            out[iou_type] = {name: (0.0 if has_gt else -1.0) for name in STAT_NAMES}
            out[iou_type]["per_class"] = {c["id"]: 0.0 for c in gt["categories"]}
            continue
        dets = [_for_iou_type(r, iou_type) for r in results]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(dets)
            evaluator = COCOeval(coco_gt, coco_dt, iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = {name: float(v) * 100 if v >= 0 else -1.0 for name, v in zip(STAT_NAMES, evaluator.stats)}
        precision = evaluator.eval["precision"]  # [T, R, K, A, M]
        per_class = {}
        for k, cat_id in enumerate(evaluator.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            per_class[cat_id] = float(np.mean(p)) * 100 if p.size else float("nan")
        stats["per_class"] = per_class
        out[iou_type] = stats
    return out


@contextlib.contextmanager
def _numpy_float_alias():
    """lvis 0.5.3 (the current release) still calls ``np.float``, removed in NumPy 1.24; provide
    the alias for the duration of the call only."""
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float


LVIS_STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"]


def lvis_evaluate(gt: str | os.PathLike | dict[str, Any], results: Sequence[dict[str, Any]],
                  iou_types: Sequence[str] = ("segm",), max_dets: int = 300) -> dict[str, dict[str, float]]:
    """LVIS AP with the rare / common / frequent split (APr, APc, APf), through the ``lvis``
    package on the dataset's own annotation file (its federated labels need
    ``neg_category_ids`` / ``not_exhaustive_category_ids`` and the category frequencies)."""
    try:
        from lvis import LVIS, LVISEval, LVISResults
    except ImportError:
        raise ImportError("LVIS evaluation needs the lvis package: pip install lvis") from None
    if isinstance(gt, dict):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(gt, f)
        path = f.name
    else:
        path = str(gt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            lvis_gt = LVIS(path)
    finally:
        if isinstance(gt, dict):
            os.unlink(path)
    out: dict[str, dict[str, float]] = {}
    for iou_type in iou_types:
        if not results:
            out[iou_type] = {name: 0.0 for name in LVIS_STAT_NAMES}
            continue
        dets = [_for_iou_type(r, iou_type) for r in results]
        with contextlib.redirect_stdout(io.StringIO()), _numpy_float_alias():
            evaluator = LVISEval(lvis_gt, LVISResults(lvis_gt, dets, max_dets=max_dets), iou_type)
            evaluator.run()
        out[iou_type] = {name: float(evaluator.results[name]) * 100 for name in LVIS_STAT_NAMES}
    return out
