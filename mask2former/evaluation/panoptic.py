"""Panoptic quality with panopticapi's rules (void, crowd, IoU > 0.5 matching, per class)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mask2former.errors import DatasetError
from mask2former.formats import rgb_to_id

OFFSET = 256 * 256 * 256
VOID = 0


class PanopticEvaluator:
    """Accumulates per-category TP / FP / FN / IoU over images; ``compute`` averages them."""

    def __init__(self, categories: Sequence[dict[str, Any]]) -> None:
        self.categories = {int(c["id"]): c for c in categories}
        self.stats: dict[int, list[float]] = {}  # category id -> [iou sum, tp, fp, fn] (picklable)

    def _stat(self, category_id: int) -> list[float]:
        return self.stats.setdefault(category_id, [0.0, 0, 0, 0])

    def update(self, gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray,
               pred_segments: Sequence[dict], source: str = "image") -> None:
        """One image. ``*_ids [H, W]`` segment-id maps (0 = void); segments: ``id``,
        ``category_id`` (+ ``iscrowd`` for ground truth)."""
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{source}: prediction {pred_ids.shape} and ground truth {gt_ids.shape} differ in size")
        gt_segms = {int(s["id"]): dict(s) for s in gt_segments}
        pred_segms = {int(s["id"]): dict(s) for s in pred_segments}
        for segs, ids, what in ((gt_segms, gt_ids, "ground truth"), (pred_segms, pred_ids, "prediction")):
            labels, counts = np.unique(ids, return_counts=True)
            present = set()
            for label, count in zip(labels.tolist(), counts.tolist()):
                if label == VOID:
                    continue
                if label not in segs:
                    raise ValueError(f"{source}: {what} segment id {label} is in the map but not in its segments")
                segs[label]["area"] = count
                present.add(label)
            for label, seg in segs.items():
                if seg["category_id"] not in self.categories:
                    raise ValueError(f"{source}: {what} segment {label} has unknown category id {seg['category_id']}")
                if label not in present:
                    if what == "prediction":
                        raise ValueError(f"{source}: prediction segment id {label} is listed but not in the map")
                    seg["area"] = 0
        combined = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
        labels, counts = np.unique(combined, return_counts=True)
        pairs = {(int(lab // OFFSET), int(lab % OFFSET)): int(c) for lab, c in zip(labels, counts)}
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in pairs.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            gt, pred = gt_segms[gt_label], pred_segms[pred_label]
            if gt.get("iscrowd", 0) == 1 or gt["category_id"] != pred["category_id"]:
                continue
            union = pred["area"] + gt["area"] - intersection - pairs.get((VOID, pred_label), 0)
            iou = intersection / union
            if iou > 0.5:
                stat = self._stat(gt["category_id"])
                stat[0] += iou
                stat[1] += 1
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_of_category = {}
        for gt_label, gt in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt.get("iscrowd", 0) == 1:
                crowd_of_category[gt["category_id"]] = gt_label
                continue
            self._stat(gt["category_id"])[3] += 1
        for pred_label, pred in pred_segms.items():
            if pred_label in pred_matched:
                continue
            ignored = pairs.get((VOID, pred_label), 0)
            if pred["category_id"] in crowd_of_category:
                ignored += pairs.get((crowd_of_category[pred["category_id"]], pred_label), 0)
            if ignored / pred["area"] > 0.5:  # mostly void or crowd of its own class: not a false positive
                continue
            self._stat(pred["category_id"])[2] += 1

    def merge(self, other: PanopticEvaluator) -> None:
        """Add another process's per-category sums (same categories)."""
        for category_id, values in other.stats.items():
            stat = self._stat(category_id)
            for k, value in enumerate(values):
                stat[k] += value

    def _average(self, isthing: bool | None) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
        pq = sq = rq = 0.0
        n = 0
        per_class = {}
        for cat_id, cat in self.categories.items():
            if isthing is not None and bool(cat.get("isthing", 0)) != isthing:
                continue
            iou, tp, fp, fn = self.stats.get(cat_id, (0.0, 0, 0, 0))
            if tp + fp + fn == 0:
                per_class[cat_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0}
                continue
            n += 1
            pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_c = iou / tp if tp else 0.0
            rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class[cat_id] = {"pq": pq_c, "sq": sq_c, "rq": rq_c, "tp": tp, "fp": fp, "fn": fn}
            pq, sq, rq = pq + pq_c, sq + sq_c, rq + rq_c
        if n == 0:
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}, per_class
        return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class

    def compute(self) -> dict[str, Any]:
        """Fractions (0-1), as panopticapi: All / Things / Stuff and per class."""
        result: dict[str, Any] = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            result[name], per_class = self._average(isthing)
            if isthing is None:
                result["per_class"] = per_class
        return result


def _read_panoptic_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - any decoder failure is a broken file
        raise DatasetError(path, f"cannot read panoptic PNG ({type(e).__name__}: {e})") from None
    return rgb_to_id(rgb)


def pq_from_files(gt_json: str | os.PathLike, gt_folder: str | os.PathLike, pred_json: str | os.PathLike,
                  pred_folder: str | os.PathLike) -> dict[str, Any]:
    """PQ of COCO panoptic predictions (JSON + PNG folder) against COCO panoptic ground truth,
    matched by ``image_id`` (like panopticapi's ``pq_compute``)."""
    def load(path: str | os.PathLike) -> dict:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read JSON ({e})") from None

    gt, pred = load(gt_json), load(pred_json)
    evaluator = PanopticEvaluator(gt["categories"])
    predictions = {a["image_id"]: a for a in pred["annotations"]}
    for ann in gt["annotations"]:
        if ann["image_id"] not in predictions:
            raise ValueError(f"{pred_json}: no prediction for image {ann['image_id']}")
        p = predictions[ann["image_id"]]
        gt_ids = _read_panoptic_png(Path(gt_folder) / ann["file_name"])
        pred_ids = _read_panoptic_png(Path(pred_folder) / p["file_name"])
        evaluator.update(gt_ids, ann["segments_info"], pred_ids, p["segments_info"],
                         source=str(Path(pred_folder) / p["file_name"]))
    return evaluator.compute()
