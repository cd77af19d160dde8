"""mIoU / fwIoU / mACC / pACC as detectron2's evaluator defines them, with ignore pixels."""

from __future__ import annotations

import numpy as np
import pytest

from mask2former.evaluation.semantic import SemanticEvaluator


def _independent(preds, gts, k, ignore=255):
    """Per-class counts by direct comparison (no confusion matrix)."""
    tp, gt_count, pred_count = np.zeros(k), np.zeros(k), np.zeros(k)
    for p, g in zip(preds, gts):
        valid = g != ignore
        for c in range(k):
            tp[c] += np.sum((p == c) & (g == c) & valid)
            gt_count[c] += np.sum((g == c) & valid)
            pred_count[c] += np.sum((p == c) & valid)
    present = gt_count > 0
    iou = tp[present] / (gt_count + pred_count - tp)[present]
    acc = tp[present] / gt_count[present]
    weights = gt_count[present] / gt_count.sum()
    return {"mIoU": 100 * iou.mean(), "fwIoU": 100 * (iou * weights).sum(), "mACC": 100 * acc.mean(),
            "pACC": 100 * tp.sum() / gt_count.sum()}


@pytest.mark.parametrize("seed", range(4))
def test_matches_independent_computation(seed):
    rng = np.random.default_rng(seed)
    k = 5
    preds, gts = [], []
    for _ in range(3):
        g = rng.integers(0, k - 1, (20, 30))  # class k-1 never in the ground truth: NaN, left out of means
        g[rng.random((20, 30)) < 0.2] = 255
        p = np.where(rng.random((20, 30)) < 0.7, np.where(g == 255, 0, g), rng.integers(0, k, (20, 30)))
        preds.append(p)
        gts.append(g)
    evaluator = SemanticEvaluator(k, 255)
    for p, g in zip(preds, gts):
        evaluator.update(p, g)
    ours, ref = evaluator.compute(), _independent(preds, gts, k)
    for key, value in ref.items():
        assert abs(ours[key] - value) < 1e-9, key
    assert np.isnan(ours["IoU"]["4"])


def test_all_void_and_bad_labels():
    evaluator = SemanticEvaluator(3)
    evaluator.update(np.zeros((4, 4), int), np.full((4, 4), 255))
    assert np.isnan(evaluator.compute()["mIoU"])
    with pytest.raises(ValueError, match="predicted labels outside"):
        evaluator.update(np.full((4, 4), 3), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="differ in size"):
        evaluator.update(np.zeros((4, 4), int), np.zeros((4, 5), int))
