"""PQ equals panopticapi's pq_compute on random and adversarial predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former.evaluation.panoptic import PanopticEvaluator, pq_from_files

evaluation = pytest.importorskip("panopticapi.evaluation")

CATEGORIES = [{"id": 1, "name": "a", "isthing": 1}, {"id": 3, "name": "b", "isthing": 1},
              {"id": 17, "name": "c", "isthing": 0}, {"id": 90, "name": "d", "isthing": 0}]


def _to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def _scene(rng: np.random.Generator, h: int, w: int, crowd: bool, void: float):
    """A map of rectangles with random categories; ids are random (non-contiguous)."""
    ids = np.zeros((h, w), dtype=np.int64)
    segments = []
    for _ in range(rng.integers(0, 7)):
        seg_id = int(rng.integers(1, 2**20))
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        ids[y:y + int(rng.integers(3, h // 2)), x:x + int(rng.integers(3, w // 2))] = seg_id
        segments.append({"id": seg_id, "category_id": int(rng.choice([c["id"] for c in CATEGORIES])),
                         "iscrowd": int(crowd and rng.random() < 0.3)})
    ids[rng.random((h, w)) < void] = 0
    present = set(np.unique(ids).tolist())
    segments = [s for s in segments if s["id"] in present]
    for s in segments:
        s["area"] = int((ids == s["id"]).sum())
    return ids, segments


def _perturb(rng, ids, segments):
    """A prediction: the ground truth shifted, relabelled sometimes, plus noise segments."""
    pred = np.roll(ids, shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
    segs = [{"id": s["id"], "category_id": s["category_id"] if rng.random() < 0.8 else 3} for s in segments]
    extra = int(rng.integers(2**20, 2**21))
    pred[rng.integers(0, 10):rng.integers(12, 20), 5:15] = extra
    segs.append({"id": extra, "category_id": 17})
    present = set(np.unique(pred).tolist())
    return pred, [s for s in segs if s["id"] in present]


def _reference(tmp_path, images):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    pairs, gt_anns, pred_anns = [], [], []
    for i, (gt_ids, gt_segs, pred_ids, pred_segs) in enumerate(images):
        Image.fromarray(_to_rgb(gt_ids)).save(gt_dir / f"{i}.png")
        Image.fromarray(_to_rgb(pred_ids)).save(pred_dir / f"{i}.png")
        gt_ann = {"image_id": i, "file_name": f"{i}.png", "segments_info": gt_segs}
        pred_ann = {"image_id": i, "file_name": f"{i}.png", "segments_info": pred_segs}
        pairs.append((gt_ann, pred_ann))
        gt_anns.append(gt_ann)
        pred_anns.append(pred_ann)
    categories = {c["id"]: c for c in CATEGORIES}
    stat = evaluation.pq_compute_single_core(0, pairs, str(gt_dir), str(pred_dir), categories)
    ref = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        ref[name], per_class = stat.pq_average(categories, isthing=isthing)
        if isthing is None:
            ref["per_class"] = per_class
    (tmp_path / "gt.json").write_text(json.dumps({"annotations": gt_anns, "categories": CATEGORIES}, default=int))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": pred_anns}, default=int))
    return ref


def _assert_equal(ours, ref):
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            assert abs(ours[group][key] - ref[group][key]) <= 1e-6, (group, key, ours[group], ref[group])
    for cat, values in ref["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert abs(ours["per_class"][cat][key] - values[key]) <= 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_random_predictions_match_panopticapi(tmp_path, seed):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(4):
        gt_ids, gt_segs = _scene(rng, 40, 50, crowd=True, void=0.05)
        pred_ids, pred_segs = _perturb(rng, gt_ids, gt_segs)
        images.append((gt_ids, gt_segs, pred_ids, pred_segs))
    ref = _reference(tmp_path, images)
    evaluator = PanopticEvaluator(CATEGORIES)
    for gt_ids, gt_segs, pred_ids, pred_segs in images:
        evaluator.update(gt_ids, gt_segs, pred_ids, pred_segs)
    _assert_equal(evaluator.compute(), ref)
    _assert_equal(pq_from_files(tmp_path / "gt.json", tmp_path / "gt", tmp_path / "pred.json", tmp_path / "pred"),
                  ref)


def test_adversarial_cases_match_panopticapi(tmp_path):
    h, w = 30, 30
    gt = np.zeros((h, w), dtype=np.int64)
    gt[:15] = 5
    gt[15:, :10] = 6
    gt[15:, 10:] = 0  # void
    gt_segs = [{"id": 5, "category_id": 17, "iscrowd": 0, "area": 450},
               {"id": 6, "category_id": 1, "iscrowd": 1, "area": 150}]
    images = [
        (gt, gt_segs, np.zeros((h, w), dtype=np.int64), []),  # empty prediction
        (np.zeros((h, w), dtype=np.int64), [], gt.copy(), [{"id": 5, "category_id": 17}, {"id": 6, "category_id": 1}]),
    ]
    mostly_void = np.zeros((h, w), dtype=np.int64)
    mostly_void[12:, :] = 9  # covers void, the crowd region and a bit of stuff
    images.append((gt, gt_segs, mostly_void, [{"id": 9, "category_id": 1}]))
    thing = np.zeros((h, w), dtype=np.int64)
    thing[5:10, 5:10] = 3  # a matched thing, so that no group is empty (panopticapi divides by zero then)
    images.append((thing, [{"id": 3, "category_id": 3, "iscrowd": 0, "area": 25}], thing,
                   [{"id": 3, "category_id": 3}]))
    ref = _reference(tmp_path, images)
    evaluator = PanopticEvaluator(CATEGORIES)
    for item in images:
        evaluator.update(*item)
    _assert_equal(evaluator.compute(), ref)


def test_empty_group_gives_zero_instead_of_dividing_by_zero():
    evaluator = PanopticEvaluator(CATEGORIES)
    ids = np.zeros((4, 4), dtype=np.int64)
    ids[:2] = 1
    evaluator.update(ids, [{"id": 1, "category_id": 17, "iscrowd": 0}], ids, [{"id": 1, "category_id": 17}])
    result = evaluator.compute()
    assert result["Things"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
    assert result["Stuff"]["pq"] == 1.0 and result["All"]["n"] == 1


def test_prediction_errors_name_the_problem():
    evaluator = PanopticEvaluator(CATEGORIES)
    ids = np.ones((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="segment id 1 is in the map but not in its segments"):
        evaluator.update(ids, [{"id": 1, "category_id": 1, "iscrowd": 0}], ids, [], source="x.png")
    with pytest.raises(ValueError, match="unknown category id 4"):
        evaluator.update(ids, [{"id": 1, "category_id": 1, "iscrowd": 0}], ids, [{"id": 1, "category_id": 4}])
