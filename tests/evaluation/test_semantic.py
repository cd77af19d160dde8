"""mIoU / fwIoU / mACC / pACC as detectron2's evaluator defines them, with ignore pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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


@pytest.mark.parametrize("seed", range(3))
def test_cityscapes_convention_equals_cityscapesscripts(seed, tmp_path):
    """Ground truth in labelIds (void ids included), predictions in the 19 train ids, one class
    predicted but absent from the ground truth: mean class IoU equals cityscapesscripts'."""
    reference = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    from cityscapesscripts.helpers.labels import labels

    evaluated = [lab.id for lab in labels if not lab.ignoreInEval and lab.id >= 0]  # trainId order
    train_id = np.full(256, 255)
    train_id[evaluated] = np.arange(len(evaluated))
    rng = np.random.default_rng(seed)
    evaluator = SemanticEvaluator(len(evaluated), 255, convention="cityscapes")
    pred_files, gt_files = [], []
    for k in range(3):
        gt = rng.choice([0, 4, 7, 8, 11, 21, 23, 24, 26], size=(24, 32))  # 0, 4: void
        pred = np.where(rng.random(gt.shape) < 0.6, train_id[gt], rng.integers(0, len(evaluated), gt.shape))
        pred[pred == 255] = 0
        pred[0, 0] = 18  # bicycle and motorcycle: predicted, never in the ground truth
        pred[0, 1] = 17
        evaluator.update(pred, train_id[gt])
        gt_files.append(str(tmp_path / f"c_000000_{k:06d}_gtFine_labelIds.png"))
        pred_files.append(str(tmp_path / f"c_000000_{k:06d}_pred.png"))
        Image.fromarray(gt.astype(np.uint8)).save(gt_files[-1])
        Image.fromarray(np.asarray(evaluated)[pred].astype(np.uint8)).save(pred_files[-1])
    args = reference.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    ref = reference.evaluateImgLists(pred_files, gt_files, args)
    ours = evaluator.compute()
    assert ours["mIoU"] == pytest.approx(100 * ref["averageScoreClasses"], abs=1e-9)
    for lab in labels:
        if lab.id in evaluated:
            expected = ref["classScores"][lab.name]
            got = ours["IoU"][str(evaluated.index(lab.id))] / 100
            assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-12), lab.name
    detectron2 = SemanticEvaluator(len(evaluated), 255)
    detectron2.conf = evaluator.conf
    assert detectron2.compute()["mIoU"] > ours["mIoU"]  # it leaves the two absent classes out
