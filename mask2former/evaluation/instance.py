"""COCO mask (and box) AP through pycocotools, from in-memory ground truth and results; LVIS AP
through the ``lvis`` package; ``InstanceAPEvaluator`` accumulates images for either."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from mask2former.formats import bbox_xywh, encode_rle

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
        stats: dict[str, Any] = {name: float(v) * 100 if v >= 0 else -1.0
                                 for name, v in zip(STAT_NAMES, evaluator.stats)}
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
        np.float = float
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


class InstanceAPEvaluator:
    """Mask AP over accumulated images, with pycocotools' COCOeval on ground truth gathered from
    the images, or with ``lvis_annotations`` by the ``lvis`` package on the dataset's own file
    (its federated labels are not in the images' masks). Category ids are the dataset's."""

    def __init__(self, categories: Sequence[dict[str, Any]], *,
                 lvis_annotations: str | os.PathLike | None = None) -> None:
        self.categories = [{"id": c["id"], "name": c["name"]} for c in categories]
        self.lvis_annotations = None if lvis_annotations is None else str(lvis_annotations)
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    def add_ground_truth(self, image_id: int | str, masks: np.ndarray, category_ids: Sequence[int],
                         iscrowd: Sequence[bool]) -> None:
        """One image's instances, ``masks [N, H, W]`` bool. LVIS reads its own file instead."""
        if self.lvis_annotations is not None:
            return
        self.images.append({"id": image_id, "height": int(masks.shape[1]), "width": int(masks.shape[2])})
        for mask, category_id, crowd in zip(masks, category_ids, iscrowd):
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id, "category_id": int(category_id),
                "segmentation": encode_rle(mask), "area": float(mask.sum()), "bbox": bbox_xywh(mask),
                "iscrowd": int(crowd),
            })

    def add_json_ground_truth(self, image_id: int | str, height: int, width: int,
                              annotations: Sequence[dict[str, Any]]) -> None:
        """One image's annotations from a COCO instances JSON, as pycocotools reads the file: its
        ``area`` (which decides the size ranges), ``iscrowd`` and segmentation (polygons are
        rasterised at ``height x width``); only the annotation ids are renumbered."""
        if self.lvis_annotations is not None:
            return
        self.images.append({"id": image_id, "height": int(height), "width": int(width)})
        for ann in annotations:
            self.annotations.append({**ann, "id": len(self.annotations) + 1, "image_id": image_id})

    def add_detections(self, image_id: int | str, masks: np.ndarray, category_ids: Sequence[int],
                       scores: Sequence[float], boxes: np.ndarray) -> None:
        """One image's detections: ``masks [N, H, W]`` bool, ``boxes [N, 4]`` XYXY."""
        for mask, category_id, score, (x0, y0, x1, y1) in zip(masks, category_ids, scores, boxes.tolist()):
            self.results.append({"image_id": image_id, "category_id": int(category_id),
                                 "segmentation": encode_rle(mask), "bbox": [x0, y0, x1 - x0, y1 - y0],
                                 "score": float(score)})

    def merge(self, other: InstanceAPEvaluator) -> None:
        """Add another process's images (annotation ids renumbered after ours)."""
        offset = len(self.annotations)
        self.images += other.images
        self.annotations += [{**a, "id": a["id"] + offset} for a in other.annotations]
        self.results += other.results

    def compute(self) -> tuple[dict[str, float], dict[int, float] | None]:
        """The numbers in percent (COCO's 12 or LVIS's 9) and COCO AP per category id (LVIS: None)."""
        if self.lvis_annotations is not None:
            return lvis_evaluate(self.lvis_annotations, self.results)["segm"], None
        gt = {"images": self.images, "annotations": self.annotations, "categories": self.categories}
        coco = coco_evaluate(gt, self.results, iou_types=("segm",))["segm"]
        return {k: float(v) for k, v in coco.items() if k != "per_class"}, coco["per_class"]
