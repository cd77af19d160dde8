"""Cityscapes instance AP equals cityscapesscripts' evalInstanceLevelSemanticLabeling on random
and adversarial predictions (groups, void, small instances, duplicates, tied scores, empty images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mask2former.evaluation.cityscapes_instance import CityscapesInstanceEvaluator

reference = pytest.importorskip("cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling")

THINGS = [24, 25, 26, 27, 28, 31, 32, 33]  # person ... bicycle
EVALUATED = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, *THINGS]
STUFF = [0, 4, 7, 8, 11, 21, 23]  # 0 and 4 are void
SCENE_THINGS = [24, 26, 33, 29]  # few classes, so that false positives meet ground truth; 29 caravan is void


def _rect(rng: np.random.Generator, h: int, w: int, small: bool = False) -> tuple[slice, slice]:
    rh = int(rng.integers(3, 9 if small else h // 2))
    rw = int(rng.integers(3, 9 if small else w // 2))
    y, x = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
    return slice(y, y + rh), slice(x, x + rw)


def _scene(rng: np.random.Generator, h: int = 48, w: int = 64):
    """An instanceIds map (stuff blocks, instances ``label * 1000 + k``, group regions, caravans,
    small instances) and predictions around its instances plus random ones."""
    ids = np.full((h, w), int(rng.choice(STUFF)), dtype=np.int64)
    for _ in range(4):
        ids[_rect(rng, h, w)] = int(rng.choice(STUFF))
    instances, groups = [], []
    for k in range(int(rng.integers(0, 8))):
        label = int(rng.choice(SCENE_THINGS))
        region = _rect(rng, h, w, small=rng.random() < 0.2)
        if rng.random() < 0.15:
            ids[region] = label  # a group region ("cars")
            groups.append((label, region))
        else:
            ids[region] = label * 1000 + k
            instances.append((label, region))
    preds = []
    for label, (ys, xs) in instances:
        for _ in range(int(rng.integers(0, 3))):  # 0..2 detections per instance: misses and duplicates
            mask = np.zeros((h, w), dtype=bool)
            dy, dx = rng.integers(-3, 4, size=2)
            mask[max(ys.start + dy, 0):ys.stop + dy, max(xs.start + dx, 0):xs.stop + dx] = True
            wrong = rng.random() < 0.1
            preds.append((mask, int(rng.choice(THINGS)) if wrong else label, float(rng.random())))
    for label, (ys, xs) in groups:  # detections on part of a group: ignored, not false positives
        if rng.random() < 0.8:
            mask = np.zeros((h, w), dtype=bool)
            mask[ys.start:ys.start + max((ys.stop - ys.start) // 3, 1), xs] = True
            preds.append((mask, label, float(rng.random())))
    for _ in range(int(rng.integers(0, 4))):  # background detections, some on void
        mask = np.zeros((h, w), dtype=bool)
        mask[_rect(rng, h, w)] = True
        preds.append((mask, int(rng.choice(SCENE_THINGS[:3])), float(rng.random())))
    if rng.random() < 0.2:
        preds.append((np.zeros((h, w), dtype=bool), THINGS[0], 0.9))  # empty mask
    if rng.random() < 0.3:
        preds = [(m, lab, round(s, 1)) for m, lab, s in preds]  # tied scores
    return ids, preds


def _ours(scenes) -> dict:
    evaluator = CityscapesInstanceEvaluator(THINGS, EVALUATED)
    for ids, preds in scenes:
        masks = np.stack([p[0] for p in preds]) if preds else np.zeros((0, *ids.shape), dtype=bool)
        evaluator.update(ids, masks, [p[1] for p in preds], [p[2] for p in preds])
    return evaluator.compute() | {"matrix": evaluator.average_precisions()}


def _reference(scenes, tmp_path, monkeypatch) -> dict:
    """Write the scenes as cityscapesscripts expects (16-bit instanceIds PNGs, one text file per
    image listing mask PNG, labelId, score) and run its evaluator."""
    monkeypatch.chdir(tmp_path)  # it writes matches.json into the working directory
    monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)  # gone in numpy 2.4
    monkeypatch.setattr(reference, "writeDict2JSON", lambda *a: None)  # its JSON dumps fail on numpy ints
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt_files, pred_files = [], []
    for k, (ids, preds) in enumerate(scenes):
        base = f"city_000000_{k:06d}"
        gt_files.append(str(gt_dir / f"{base}_gtFine_instanceIds.png"))
        Image.fromarray(ids.astype(np.uint16)).save(gt_files[-1])
        lines = []
        for j, (mask, label, score) in enumerate(preds):
            Image.fromarray(mask.astype(np.uint8) * 255).save(pred_dir / f"{base}_{j}.png")
            lines.append(f"{base}_{j}.png {label} {score!r}\n")
        pred_files.append(str(pred_dir / f"{base}.txt"))
        (pred_dir / f"{base}.txt").write_text("".join(lines))
    args = reference.args
    args.predictionPath = str(pred_dir.resolve())
    args.gtInstancesFile = str(tmp_path / "gt_instances.json")
    args.JSONOutput, args.quiet, args.colorized = False, True, False
    result = reference.evaluateImgLists(pred_files, gt_files, args)
    return result


@pytest.mark.parametrize("seed", range(8))
def test_ap_equals_cityscapesscripts(seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    scenes = [_scene(rng) for _ in range(6)]
    ours = _ours(scenes)
    ref = _reference(scenes, tmp_path, monkeypatch)
    np.testing.assert_allclose(ours["matrix"], np.asarray(ref["resultApMatrix"])[0], atol=1e-9)
    assert ours["AP"] == pytest.approx(100 * ref["averages"]["allAp"], abs=1e-7)
    assert ours["AP50"] == pytest.approx(100 * ref["averages"]["allAp50%"], abs=1e-7)
    for name_id, value in ours["per_class"].items():
        name = reference.id2label[name_id].name
        assert value == pytest.approx(100 * ref["averages"]["classes"][name]["ap"], abs=1e-7)


def test_perfect_predictions_score_100_and_empty_images_are_fine(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    scenes = []
    for _ in range(4):
        ids, _ = _scene(rng)
        inst = [i for i in np.unique(ids) if i >= 1000 and i // 1000 in THINGS]
        scenes.append((ids, [(ids == i, int(i // 1000), 0.5) for i in inst]))
    scenes.append((np.zeros((48, 64), dtype=np.int64), []))  # an empty image
    ours = _ours(scenes)
    ref = _reference(scenes, tmp_path, monkeypatch)
    assert ours["AP"] == pytest.approx(100 * ref["averages"]["allAp"], abs=1e-7)
    assert ours["AP"] == pytest.approx(100.0)  # small instances are not scored: all found ones are big


def test_iou_exactly_at_a_threshold_is_not_a_match(tmp_path, monkeypatch):
    """IoU 0.5, 0.6, 0.75 and 0.8 exactly (k of a 200-pixel instance): the reference needs IoU above
    the threshold, and its thresholds are ``arange(0.5, 1, 0.05)`` with their rounding."""
    scenes = []
    for k in (100, 120, 150, 160):
        ids = np.full((40, 40), 7, dtype=np.int64)
        ids[:20, :10] = 26001
        mask = np.zeros((1, 40, 40), dtype=bool)
        mask[0, :20, :10].flat[:k] = True
        scenes.append((ids, [(mask[0], 26, 0.5)]))
    ours = _ours(scenes)
    ref = _reference(scenes, tmp_path, monkeypatch)
    np.testing.assert_allclose(ours["matrix"], np.asarray(ref["resultApMatrix"])[0], atol=1e-9)


def test_only_ignored_detections_give_zero_not_a_crash():
    """A class with ground truth whose detections all lie on void: AP 0 (the reference raises)."""
    ids = np.zeros((40, 40), dtype=np.int64)  # void
    ids[:20, :20] = 26001
    on_void = np.zeros((1, 40, 40), dtype=bool)
    on_void[0, 25:, 25:] = True
    evaluator = CityscapesInstanceEvaluator(THINGS, EVALUATED)
    evaluator.update(ids, on_void, [26], [0.9])
    result = evaluator.compute()
    assert result["AP"] == 0.0 and result["per_class"] == {26: 0.0}


def test_no_ground_truth_at_all_is_nan_not_zero():
    evaluator = CityscapesInstanceEvaluator(THINGS, EVALUATED)
    evaluator.update(np.full((8, 8), 7), np.ones((1, 8, 8), dtype=bool), [24], [0.5])
    result = evaluator.compute()
    assert np.isnan(result["AP"]) and result["per_class"] == {}
