"""TaskEvaluators: images scored in two processes and merged give the numbers of one process
(every task, after the pickling ``all_gather_object`` does); LVIS is never silently scored by
COCO's rules; the format decides the tasks and the rules."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from mask2former.config import CategoryInfo
from mask2former.evaluation.instance import LVIS_STAT_NAMES, STAT_NAMES
from mask2former.evaluation.tasks import TaskEvaluators, metric_rules, tasks_for
from mask2former.structures import ImageResult, InstanceResult, PanopticResult, Segment, SemanticResult, Target

H, W = 32, 40
CATEGORIES = [CategoryInfo(id=7, name="cat", isthing=True), CategoryInfo(id=20, name="dog", isthing=True),
              CategoryInfo(id=31, name="grass", isthing=False)]
TASKS = ("semantic", "instance", "panoptic")


def _box(rng: np.random.Generator) -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    y, x = int(rng.integers(0, H - 8)), int(rng.integers(0, W - 8))
    mask[y:y + int(rng.integers(4, 16)), x:x + int(rng.integers(4, 20))] = True
    return mask


def _image(seed: int) -> tuple[Target, ImageResult]:
    """A target (stuff everywhere, two or three things on top) and a prediction that finds some
    things, shifted, with random scores."""
    rng = np.random.default_rng(seed)
    things = [_box(rng) for _ in range(int(rng.integers(2, 4)))]
    stuff = ~torch.stack(things).any(0)
    labels = [int(rng.integers(0, 2)) for _ in things]
    target = Target(masks=torch.stack([*things, stuff]), labels=torch.tensor([*labels, 2]),
                    is_thing=torch.tensor([True] * len(things) + [False]),
                    iscrowd=torch.tensor([bool(rng.random() < 0.2) for _ in things] + [False]),
                    ignore=torch.zeros(H, W, dtype=torch.bool))
    found = [k for k in range(len(things)) if rng.random() < 0.8]
    masks = torch.stack([things[k].roll(int(rng.integers(-2, 3)), dims=1) for k in found]) if found \
        else torch.zeros(0, H, W, dtype=torch.bool)
    instance = InstanceResult(masks=masks, scores=torch.tensor(rng.random(len(found)), dtype=torch.float32),
                              labels=torch.tensor([labels[k] for k in found], dtype=torch.long),
                              boxes=torch.tensor([[0.0, 0.0, W, H]] * len(found)).reshape(-1, 4))
    segments = torch.zeros(H, W, dtype=torch.int32)
    infos = []
    for k, mask in enumerate(masks):
        segments[mask & (segments == 0)] = k + 1
        infos.append(Segment(k + 1, labels[found[k]], True, 1.0, int((segments == k + 1).sum())))
    segments[segments == 0] = len(infos) + 1
    infos.append(Segment(len(infos) + 1, 2, False, 1.0, int((segments == len(infos) + 1).sum())))
    infos = [s for s in infos if (segments == s.id).any()]
    semantic = target.semantic_map(0).clone()
    semantic[: int(rng.integers(0, 6))] = int(rng.integers(0, 3))
    return target, ImageResult(H, W, semantic=SemanticResult(torch.zeros(3, H, W), semantic), instance=instance,
                               panoptic=PanopticResult(segments, infos))


def test_two_processes_merged_give_the_numbers_of_one():
    images = [(100 + i, *_image(i)) for i in range(6)]
    one = TaskEvaluators(CATEGORIES, TASKS)
    for image_id, target, result in images:
        one.update(image_id, target, result)
    first, second = TaskEvaluators(CATEGORIES, TASKS), TaskEvaluators(CATEGORIES, TASKS)
    for k, (image_id, target, result) in enumerate(images):
        (first if k % 2 == 0 else second).update(image_id, target, result)
    first.merge(pickle.loads(pickle.dumps(second)))
    expected, expected_per_class = one.compute_with_per_class()
    merged, merged_per_class = first.compute_with_per_class()
    assert merged == pytest.approx(expected, rel=1e-12)  # (IoU sums added in another order)
    assert merged_per_class.keys() == expected_per_class.keys()
    for key, values in expected_per_class.items():
        assert merged_per_class[key] == pytest.approx(values, rel=1e-12), key
    assert 0 < expected["panoptic.PQ"] < 100 and 0 < expected["instance.AP"] < 100  # nothing trivial
    assert 0 < expected["semantic.mIoU"] < 100
    assert set(expected_per_class) == {"panoptic.PQ", "instance.AP", "semantic.IoU"}
    # the halves alone score differently: the merge did add the other process's images
    assert TaskEvaluators.compute(pickle.loads(pickle.dumps(second))) != expected


def test_merge_refuses_evaluators_of_other_tasks():
    with pytest.raises(ValueError, match="different tasks"):
        TaskEvaluators(CATEGORIES, TASKS).merge(TaskEvaluators(CATEGORIES, ("semantic",)))


def test_lvis_is_scored_on_its_file_never_by_coco_rules(tmp_path):
    pytest.importorskip("lvis")
    with pytest.raises(ValueError, match="annotation file"):
        TaskEvaluators(CATEGORIES, ("instance",), "lvis")
    target, result = _image(3)
    from mask2former.formats import bbox_xywh, encode_rle

    things = [k for k in range(len(target)) if target.is_thing[k] and not target.iscrowd[k]]
    gt = {"images": [{"id": 42, "height": H, "width": W, "neg_category_ids": [], "not_exhaustive_category_ids": []}],
          "annotations": [{"id": n + 1, "image_id": 42, "category_id": CATEGORIES[int(target.labels[k])].id,
                           "segmentation": encode_rle(target.masks[k].numpy()), "area": int(target.masks[k].sum()),
                           "bbox": bbox_xywh(target.masks[k].numpy())} for n, k in enumerate(things)],
          "categories": [{"id": c.id, "name": c.name, "frequency": f} for c, f in zip(CATEGORIES[:2], "rc")]}
    (tmp_path / "lvis.json").write_text(json.dumps(gt))
    evaluators = TaskEvaluators(CATEGORIES, ("instance",), "lvis", lvis_annotations=tmp_path / "lvis.json")
    evaluators.update(42, target, result)
    metrics = evaluators.compute()
    assert set(metrics) == {f"instance.{name}" for name in LVIS_STAT_NAMES}
    coco = TaskEvaluators(CATEGORIES, ("instance",), "coco_instances")
    coco.update(42, target, result)
    assert set(coco.compute()) == {f"instance.{name}" for name in STAT_NAMES}


def test_the_format_decides_tasks_and_rules():
    assert tasks_for("coco_panoptic", CATEGORIES) == TASKS
    assert tasks_for("lvis", CATEGORIES) == ("instance",)
    assert tasks_for("folder", [c for c in CATEGORIES if not c.isthing]) == ("semantic",)
    assert "LVIS AP: lvis" in metric_rules("lvis") and "cityscapesscripts" in metric_rules("cityscapes")
