"""Cityscapes instance AP under the rules of cityscapesscripts' instance-level evaluation, the
numbers the paper reports for Cityscapes (AP averaged over IoU 0.50:0.95, and AP50).

It differs from COCO AP: ground truth comes from the raw ``*_instanceIds.png`` (``id >= 1000``
is an instance of labelId ``id // 1000``; a thing labelId below 1000 is a group region); instances
under 100 pixels are not scored; a match needs IoU *strictly* above the threshold; an unmatched
prediction is not a false positive when more than the threshold's share of it lies on void, group
or small-instance pixels; every prediction matching an already matched instance is a false
positive; and the precision-recall curve is integrated step-wise over unique scores, not
interpolated at 101 recall points. Everything is computed in memory: no mask PNGs, no text files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OVERLAPS = np.arange(0.5, 1.0, 0.05)  # the reference's thresholds, float for float
MIN_REGION_SIZE = 100
LABEL_IDS = range(34)  # Cityscapes labelIds 0..33; those not evaluated are void


@dataclass
class _GroundTruth:
    inst_id: int
    pixels: int
    matches: list[tuple[float, int, int]] = field(default_factory=list)  # (score, pred pixels, intersection)


@dataclass
class _Detection:
    score: float
    pixels: int
    void: int
    matches: list[tuple[int, int, int]] = field(default_factory=list)  # (gt inst id, gt pixels, intersection)


class CityscapesInstanceEvaluator:
    """Accumulates images; ``compute`` gives AP, AP50 and AP per thing labelId, in percent.

    ``thing_ids`` are the evaluated thing labelIds; ``evaluated_ids`` all evaluated labelIds
    (the others, among 0..33, are void)."""

    def __init__(self, thing_ids: Sequence[int], evaluated_ids: Sequence[int]) -> None:
        self.thing_ids = [int(i) for i in thing_ids]
        self.void_ids = np.array([i for i in LABEL_IDS if i not in set(evaluated_ids)], dtype=np.int64)
        # per thing labelId, per image: (ground truths, detections)
        self.images: dict[int, list[tuple[list[_GroundTruth], list[_Detection]]]] = {i: [] for i in self.thing_ids}

    def update(self, instance_ids: np.ndarray, masks: np.ndarray, label_ids: Sequence[int],
               scores: Sequence[float]) -> None:
        """``instance_ids [H, W]`` the image's instanceIds map; ``masks [N, H, W]`` bool predictions
        with their labelIds and scores."""
        instance_ids = np.asarray(instance_ids).astype(np.int64, copy=False)
        ids, counts = np.unique(instance_ids, return_counts=True)
        label_of = np.where(ids >= 1000, ids // 1000, ids)
        gts = {c: [_GroundTruth(int(i), int(n)) for i, n, lab in zip(ids, counts, label_of) if lab == c]
               for c in self.thing_ids}
        dets: dict[int, list[_Detection]] = {c: [] for c in self.thing_ids}
        for mask, label, score in zip(masks, label_ids, scores):
            label = int(label)
            if label not in dets:
                continue
            under = instance_ids[np.asarray(mask, dtype=bool)]
            if under.size == 0:
                continue
            values, overlap = np.unique(under, return_counts=True)
            det = _Detection(float(score), int(under.size), int(overlap[np.isin(values, self.void_ids)].sum()))
            by_id = dict(zip(values.tolist(), overlap.tolist()))
            for gt in gts[label]:
                inter = by_id.get(gt.inst_id, 0)
                if inter > 0:
                    gt.matches.append((det.score, det.pixels, inter))
                    det.matches.append((gt.inst_id, gt.pixels, inter))
            dets[label].append(det)
        for c in self.thing_ids:
            self.images[c].append((gts[c], dets[c]))

    def merge(self, other: CityscapesInstanceEvaluator) -> None:
        """Add another process's images (same thing classes)."""
        for c in self.thing_ids:
            self.images[c] += other.images[c]

    def average_precisions(self) -> np.ndarray:
        """``[classes, overlaps]`` AP in [0, 1]; NaN for a class without ground truth."""
        return np.array([[_class_ap(self.images[c], float(t)) for t in OVERLAPS] for c in self.thing_ids])

    def compute(self) -> dict[str, Any]:
        """``AP`` and ``AP50`` (means over classes with ground truth) and ``per_class`` AP by labelId."""
        ap = self.average_precisions()
        has_gt = ~np.isnan(ap[:, 0])
        mean = (lambda a: 100.0 * float(a[has_gt].mean())) if has_gt.any() else (lambda a: float("nan"))
        return {"AP": mean(ap), "AP50": mean(ap[:, 0]),
                "per_class": {c: 100.0 * float(ap[k].mean()) for k, c in enumerate(self.thing_ids) if has_gt[k]}}


def _class_ap(images: list[tuple[list[_GroundTruth], list[_Detection]]], threshold: float) -> float:
    is_true: list[int] = []
    scores: list[float] = []
    missed = 0
    have_gt = have_det = False
    for gts, dets in images:
        scored = [g for g in gts if g.inst_id >= 1000 and g.pixels >= MIN_REGION_SIZE]
        have_gt |= bool(scored)
        have_det |= bool(dets)
        for gt in scored:
            hits = [s for s, pixels, inter in gt.matches if inter / (gt.pixels + pixels - inter) > threshold]
            if not hits:
                missed += 1
                continue
            best = hits[0]
            for s in hits[1:]:  # all but the best-scored match are false positives
                is_true.append(0)
                scores.append(min(best, s))
                best = max(best, s)
            is_true.append(1)
            scores.append(best)
        for det in dets:
            if any(inter / (pixels + det.pixels - inter) > threshold for _, pixels, inter in det.matches):
                continue
            ignored = det.void + sum(inter * ((gid < 1000) + (pixels < MIN_REGION_SIZE))
                                     for gid, pixels, inter in det.matches)
            if ignored / det.pixels <= threshold:
                is_true.append(0)
                scores.append(det.score)
    if not have_gt:
        return float("nan")
    if not have_det or not is_true:  # (the reference stops with an IndexError on the second case)
        return 0.0
    order = np.argsort(scores, kind="stable")
    sorted_scores = np.asarray(scores)[order]
    below = np.concatenate([[0], np.cumsum(np.asarray(is_true)[order])])  # true entries below index i
    first = np.unique(sorted_scores, return_index=True)[1]
    n, n_true = len(sorted_scores), below[-1]
    tp = n_true - below[first]
    precision = np.append(tp / (n - first), 1.0)
    recall = np.append(tp / (n_true + missed), 0.0)
    padded = np.concatenate([recall[:1], recall, [0.0]])
    steps = 0.5 * padded[:-2] - 0.5 * padded[2:]
    return float(np.dot(precision, steps))
