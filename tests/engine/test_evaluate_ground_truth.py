"""A COCO panoptic split that names the official files beside its panoptic PNGs is scored against
them: mask AP is what pycocotools computes against the instances JSON (its ``area``, its crowd
regions), mIoU what the label PNGs give; ``mask2former eval`` says which file each number used."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask2former import build_model, get_preset, save_model
from mask2former.data.data_yaml import build_split
from mask2former.engine.evaluate import evaluate_checkpoint
from mask2former.engine.scoring import per_image, predict_and_score
from mask2former.evaluation.instance import STAT_NAMES
from mask2former.formats import encode_rle
from mask2former.structures import ImageResult, InstanceResult, SemanticResult
from tests.data.test_datasets import (
    CROWD,
    GROUND,
    GT_H,
    GT_W,
    OTHER,
    RECT_A,
    RECT_B,
    RECT_C,
    THING,
    _box,
    write_panoptic_with_ground_truth,
)


def _shifted(rect, dy: int, dx: int) -> np.ndarray:
    return np.roll(_box(rect), (dy, dx), (0, 1))


# per image: (mask, contiguous class, score); the crowd detection has the top score
DETECTIONS = {
    "a.png": [(_box(RECT_A), THING, 0.9), (_box(CROWD) & _shifted(CROWD, 0, 2), THING, 0.95),
              (_shifted(RECT_C, 1, 0), OTHER, 0.8)],
    "b.png": [(_shifted(RECT_B, 2, 1), THING, 0.7), (_box((0, 6, 0, 6)), THING, 0.6)],
}


def _semantic_prediction() -> np.ndarray:
    labels = np.full((GT_H, GT_W), GROUND)
    labels[_box(RECT_A)] = THING
    labels[_box(RECT_C)] = OTHER
    labels[:3, :10] = OTHER
    return labels


def _result(name: str) -> ImageResult:
    masks, labels, scores = zip(*DETECTIONS[name])
    instance = InstanceResult(torch.from_numpy(np.stack(masks)), torch.tensor(scores), torch.tensor(labels),
                              torch.zeros(len(masks), 4))
    semantic = torch.from_numpy(_semantic_prediction())
    return ImageResult(GT_H, GT_W, instance=instance, semantic=SemanticResult(torch.zeros(3, GT_H, GT_W), semantic))


def _scored(split, tasks):
    names = iter([r.image_path.name for r in split.records])
    return predict_and_score(split, per_image(lambda image: _result(next(names))), tasks).metrics


def _pycocotools(instances_json, image_ids: dict[str, str], category_ids: list[int]) -> dict[str, float]:
    """COCOeval on the JSON file itself, detections as detectron2 hands them over (no box)."""
    results = [{"image_id": image_ids[name], "category_id": category_ids[label], "segmentation": encode_rle(mask),
                "score": score} for name, dets in DETECTIONS.items() for mask, label, score in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(instances_json))
        evaluator = COCOeval(coco, coco.loadRes(results), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: 100 * float(v) if v >= 0 else -1.0 for name, v in zip(STAT_NAMES, evaluator.stats)}


def test_mask_ap_is_pycocotools_against_the_instances_json(tmp_path):
    data = write_panoptic_with_ground_truth(tmp_path)
    split = build_split(data, "val")
    ours = _scored(split, ("instance",))
    reference = _pycocotools(tmp_path / "instances_val.json", {"a.png": "ia", "b.png": "ib"}, [1, 5, 7])
    for name in STAT_NAMES:
        assert ours[f"instance.{name}"] == pytest.approx(reference[name], abs=1e-9), name
    # the panoptic-derived masks give other numbers: A is a medium object there (1600 px, not the
    # JSON's 10000) and the detection on the crowd region is a false positive
    data.write_text(data.read_text().replace("instances: instances_val.json, ", ""))
    derived = _scored(build_split(data, "val"), ("instance",))
    assert derived["instance.APl"] == -1.0 and reference["APl"] >= 0
    assert derived["instance.AP"] < ours["instance.AP"]


def test_miou_is_scored_against_the_label_pngs(tmp_path):
    data = write_panoptic_with_ground_truth(tmp_path)
    split = build_split(data, "val")
    ours = _scored(split, ("semantic",))
    # detectron2's SemSegEvaluator on the label PNGs (ADE-style: value - 1, 0 = void), by hand
    from PIL import Image

    conf = np.zeros((3, 3), np.int64)
    for record in split.records:
        raw = np.asarray(Image.open(tmp_path / "semantic/val" / record.image_path.name)).astype(np.int64)
        valid = raw > 0
        np.add.at(conf, (_semantic_prediction()[valid], raw[valid] - 1), 1)
    tp, gt, pred = conf.diagonal(), conf.sum(0), conf.sum(1)
    iou = tp[gt > 0] / (gt + pred - tp)[gt > 0]
    assert ours["semantic.mIoU"] == pytest.approx(100 * iou.mean())
    assert ours["semantic.pACC"] == pytest.approx(100 * tp.sum() / gt.sum())
    data.write_text(data.read_text().replace(", semantic: semantic/val", "").replace("reduce_zero_label: true\n", ""))
    assert _scored(build_split(data, "val"), ("semantic",))["semantic.mIoU"] != pytest.approx(ours["semantic.mIoU"])


def test_eval_reports_which_ground_truth_each_number_used(tmp_path):
    data = write_panoptic_with_ground_truth(tmp_path)
    split = build_split(data, "val")
    config = get_preset("tiny")
    config.categories, config.num_classes = list(split.categories), len(split.categories)
    config.inference.object_mask_threshold = 0.0
    checkpoint = save_model(build_model(config), tmp_path / "model.pt")
    metrics = evaluate_checkpoint(checkpoint, data, tmp_path / "out")
    assert {"panoptic.PQ", "instance.APl", "semantic.mIoU"} <= set(metrics)
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"| ground truth, instance | {tmp_path / 'instances_val.json'} (its area, crowd flags" in report
    assert f"| ground truth, semantic | label PNGs in {tmp_path / 'semantic/val'} |" in report
    assert f"| ground truth, panoptic | panoptic PNGs in {tmp_path / 'panoptic/val'} |" in report
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == pytest.approx(metrics, nan_ok=True)
