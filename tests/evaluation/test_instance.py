"""COCO mask AP equals pycocotools' COCOeval run directly, including crowds, overlapping masks,
non-contiguous category ids and no detections."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask2former.evaluation.instance import STAT_NAMES, coco_evaluate, lvis_evaluate

CATS = [{"id": 3, "name": "a"}, {"id": 17, "name": "b"}, {"id": 90, "name": "c"}]


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    return rle


def _data(seed):
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for image_id in range(1, 5):
        h, w = 60, 80
        images.append({"id": image_id, "height": h, "width": w})
        for _ in range(rng.integers(1, 6)):
            m = np.zeros((h, w), bool)
            y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
            m[y:y + int(rng.integers(5, 40)), x:x + int(rng.integers(5, 50))] = True
            cat = int(rng.choice([c["id"] for c in CATS]))
            crowd = int(rng.random() < 0.15)
            ys, xs = np.nonzero(m)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "segmentation": _rle(m),
                         "area": float(m.sum()), "iscrowd": crowd,
                         "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]})
            for _ in range(rng.integers(0, 3)):  # overlapping, shifted detections
                d = np.roll(m, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), (0, 1))
                results.append({"image_id": image_id, "category_id": cat if rng.random() < 0.8 else 90,
                                "segmentation": _rle(d), "score": float(rng.random())})
    return {"images": images, "annotations": anns, "categories": CATS}, results


def _reference(gt, results, iou_type):
    results = json.loads(json.dumps(results))
    for r in results:
        if iou_type == "bbox":
            r["bbox"] = mask_utils.toBbox(r.pop("segmentation")).tolist()
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        dt = coco.loadRes(results)
        e = COCOeval(coco, dt, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def test_mask_and_box_ap_equal_cocoeval():
    for seed in range(4):
        gt, results = _data(seed)
        ours = coco_evaluate(gt, results)
        for iou_type in ("segm", "bbox"):
            ref = _reference(gt, results, iou_type)
            for name, value in zip(STAT_NAMES, ref):
                expected = value * 100 if value >= 0 else -1.0
                assert abs(ours[iou_type][name] - expected) <= 1e-6, (seed, iou_type, name)
        assert set(ours["segm"]["per_class"]) == {3, 17, 90}


def test_no_detections():
    gt, _ = _data(0)
    ours = coco_evaluate(gt, [])
    assert ours["segm"]["AP"] == 0.0 and ours["segm"]["per_class"][3] == 0.0


def test_lvis_ap_equals_lvis_eval(tmp_path):
    lvis = pytest.importorskip("lvis")
    gt, results = _data(1)
    freq = {3: "r", 17: "c", 90: "f"}
    gt["categories"] = [{**c, "frequency": freq[c["id"]], "image_count": 1, "instance_count": 1} for c in CATS]
    gt["annotations"] = [a for a in gt["annotations"] if not a["iscrowd"]]  # LVIS has no crowds
    for image in gt["images"]:
        image.update(neg_category_ids=[], not_exhaustive_category_ids=[])
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(gt))
    ours = lvis_evaluate(path, results)["segm"]
    np.float = float  # the lvis release still uses the alias NumPy removed
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            lvis_gt = lvis.LVIS(str(path))
            e = lvis.LVISEval(lvis_gt, lvis.LVISResults(lvis_gt, json.loads(json.dumps(results))), "segm")
            e.run()
    finally:
        del np.float
    for name in ("AP", "APr", "APc", "APf", "AP50"):
        assert abs(ours[name] - 100 * e.results[name]) < 1e-9, name
