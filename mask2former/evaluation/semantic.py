"""mIoU, fwIoU, mACC and pACC as detectron2's SemSegEvaluator computes them; for Cityscapes, IoU
as cityscapesscripts' pixel-level evaluation averages it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SemanticEvaluator:
    """Accumulates a ``(K+1) x (K+1)`` confusion matrix (rows: prediction, columns: ground truth,
    the last column collecting ignored pixels) over images.

    The two references differ in one case: a class predicted somewhere but absent from every
    ground truth. detectron2 leaves it out of mIoU; cityscapesscripts scores it IoU 0 and averages
    it in (``convention="cityscapes"``). On a full benchmark split every class is present and
    both agree; on a few images they do not."""

    def __init__(self, num_classes: int, ignore_label: int = 255, class_names: Sequence[str] | None = None,
                 convention: str = "detectron2") -> None:
        if convention not in ("detectron2", "cityscapes"):
            raise ValueError(f"unknown mIoU convention {convention!r} (expected 'detectron2' or 'cityscapes')")
        self.convention = convention
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.conf = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """``pred`` and ``gt`` ``[H, W]`` integer label maps; ``gt == ignore_label`` is not scored."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        k = self.num_classes
        gt = gt.astype(np.int64).copy()
        gt[gt == self.ignore_label] = k
        pred = pred.astype(np.int64)
        if gt.min(initial=0) < 0 or gt.max(initial=0) > k:
            raise ValueError(f"ground-truth labels outside 0..{k - 1} (and {self.ignore_label} = ignore)")
        if pred.min(initial=0) < 0 or pred.max(initial=0) >= k:
            raise ValueError(f"predicted labels outside 0..{k - 1}")
        counts = np.bincount((k + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(k + 1) ** 2)
        self.conf += counts.reshape(k + 1, k + 1)

    def merge(self, other: SemanticEvaluator) -> None:
        """Add another process's confusion matrix (same classes)."""
        if other.conf.shape != self.conf.shape:
            raise ValueError(f"cannot merge a {other.num_classes}-class evaluator into a {self.num_classes}-class one")
        self.conf += other.conf

    def compute(self) -> dict:
        """Percent. Classes absent from the ground truth have NaN accuracy and (detectron2's
        convention) NaN IoU, left out of the means; classes neither in the ground truth nor predicted
        are NaN in both conventions."""
        conf = self.conf.astype(np.float64)
        tp = conf.diagonal()[:-1]
        pos_gt = conf[:-1, :-1].sum(0)
        pos_pred = conf[:-1, :-1].sum(1)
        acc = np.full(self.num_classes, np.nan)
        iou = np.full(self.num_classes, np.nan)
        acc_valid = pos_gt > 0
        acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
        union = pos_gt + pos_pred - tp
        iou_valid = (union > 0) if self.convention == "cityscapes" else acc_valid & (union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]
        total = pos_gt.sum()
        weights = pos_gt / total if total else np.zeros_like(pos_gt)
        result = {
            "mIoU": 100 * (iou[iou_valid].sum() / iou_valid.sum() if iou_valid.any() else np.nan),
            "fwIoU": 100 * (iou[iou_valid] * weights[iou_valid]).sum(),
            "mACC": 100 * (acc[acc_valid].sum() / acc_valid.sum() if acc_valid.any() else np.nan),
            "pACC": 100 * (tp.sum() / total if total else np.nan),
        }
        result["IoU"] = {n: 100 * float(v) for n, v in zip(self.class_names, iou)}
        result["ACC"] = {n: 100 * float(v) for n, v in zip(self.class_names, acc)}
        return result
