"""Scoring predictions against one target structure, for every task a dataset format allows.

Ground truth for every task is derived from the reader's ``Target`` (a segment-id map with crowd
flags for PQ, COCO instances (things only) for mask AP, a label map with 255 = void for mIoU),
unless the dataset gives the file the official evaluation reads for a task: the annotations of
a COCO instances JSON for mask AP (its ``area`` and crowd flags), a semantic label map for mIoU,
the raw instanceIds for Cityscapes AP. So every dataset format is scored by the same code, under
the reference tools' rules, and which rules those are depends on the format alone
(``metric_rules``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mask2former import metadata
from mask2former.config import CategoryInfo
from mask2former.errors import DatasetError
from mask2former.evaluation.cityscapes_instance import CityscapesInstanceEvaluator
from mask2former.evaluation.instance import InstanceAPEvaluator
from mask2former.evaluation.panoptic import PanopticEvaluator
from mask2former.evaluation.semantic import SemanticEvaluator
from mask2former.formats import IGNORE_LABEL
from mask2former.structures import ImageResult, Target

FORMAT_TASKS = {
    "coco_panoptic": ("semantic", "instance", "panoptic"),
    "cityscapes": ("semantic", "instance", "panoptic"),
    "folder": ("semantic", "instance", "panoptic"),
    "geotiff": ("semantic", "instance", "panoptic"),  # label rasters: thing classes split by connected components
    "semantic": ("semantic",),
    "coco_instances": ("instance",),
    "lvis": ("instance",),
}


def tasks_for(data_format: str, categories: Sequence[CategoryInfo]) -> tuple[str, ...]:
    """Tasks the annotations of a format can score: instance and panoptic need thing classes
    annotated per instance; semantic needs every pixel labelled (not COCO/LVIS instances, nor
    Cityscapes' 8-class instance set, which labels things only)."""
    tasks = FORMAT_TASKS.get(data_format, ("semantic",))
    if not any(c.isthing for c in categories):
        tasks = tuple(t for t in tasks if t == "semantic")
    elif data_format == "cityscapes" and all(c.isthing for c in categories):
        tasks = ("instance",)
    return tasks


def metric_rules(data_format: str) -> str:
    """Which reference's rules the reported numbers follow, for the reports' provenance."""
    if data_format == "cityscapes":
        return "PQ: panopticapi; instance AP and mIoU: cityscapesscripts"
    instance = "LVIS AP: lvis" if data_format == "lvis" else "mask AP: pycocotools COCOeval"
    return f"PQ: panopticapi; {instance}; mIoU: detectron2 SemSegEvaluator"


def _cityscapes_evaluated_ids() -> list[int]:
    """The labelIds of the 19 evaluated Cityscapes classes: cityscapesscripts counts every other
    labelId as void, whichever classes a model predicts (8 for the instance models)."""
    return [c.id for c in metadata.load_categories("cityscapes")]


class TaskEvaluators:
    """One evaluator per requested task, fed ``(target, result)`` pairs; ``merge`` adds another
    process's. Instance AP follows the format: cityscapesscripts' rules for Cityscapes (from each
    image's raw instanceIds map), the ``lvis`` package on ``lvis_annotations`` for LVIS (required:
    scoring LVIS with COCO's rules would report a different number under the same name), COCO's
    otherwise."""

    def __init__(self, categories: Sequence[CategoryInfo], tasks: Sequence[str], data_format: str = "", *,
                 lvis_annotations: str | os.PathLike | None = None) -> None:
        self.categories = list(categories)
        self.ids = [c.id for c in self.categories]  # contiguous class -> dataset category id
        self.tasks = tuple(tasks)
        cityscapes = data_format == "cityscapes"
        if data_format == "lvis" and "instance" in self.tasks and lvis_annotations is None:
            raise ValueError("LVIS AP needs the dataset's annotation file (lvis_annotations)")
        self.semantic = (SemanticEvaluator(len(self.categories), ignore_label=IGNORE_LABEL,
                                           class_names=[c.name for c in self.categories],
                                           convention="cityscapes" if cityscapes else "detectron2")
                         if "semantic" in self.tasks else None)
        things = [c for c in self.categories if c.isthing]
        self.cityscapes = (CityscapesInstanceEvaluator([c.id for c in things], _cityscapes_evaluated_ids())
                           if cityscapes and "instance" in self.tasks else None)
        self.instance = (InstanceAPEvaluator([{"id": c.id, "name": c.name} for c in things],
                                             lvis_annotations=lvis_annotations)
                         if "instance" in self.tasks and not cityscapes else None)
        self.panoptic = (PanopticEvaluator([{"id": c.id, "name": c.name, "isthing": c.isthing}
                                            for c in self.categories]) if "panoptic" in self.tasks else None)

    @property
    def needs_instance_ids(self) -> bool:
        """Whether ``update`` needs each image's raw Cityscapes ``*_instanceIds.png`` map."""
        return self.cityscapes is not None

    def update(self, image_id: int | str, target: Target, result: ImageResult, *,
               instance_ids: np.ndarray | None = None, instance_annotations: Sequence[dict] | None = None,
               semantic_labels: np.ndarray | None = None) -> None:
        """Score one image; ``image_id`` is the dataset's (LVIS matches it against its file).
        ``instance_annotations`` (the image's annotations of a COCO instances JSON) and
        ``semantic_labels`` (``[H, W]`` classes, 255 = void) replace the ground truth derived
        from ``target`` for mask AP and mIoU."""
        if self.semantic is not None and result.semantic is not None:
            labels = target.semantic_map(IGNORE_LABEL).numpy() if semantic_labels is None else semantic_labels
            self.semantic.update(result.semantic.labels.cpu().numpy(), labels)
        if self.panoptic is not None and result.panoptic is not None:
            self.panoptic.update(*self._panoptic_inputs(target, result))
        if result.instance is None:
            return
        inst = result.instance
        masks, category_ids = inst.masks.cpu().numpy(), [self.ids[int(k)] for k in inst.labels]
        if self.cityscapes is not None:
            if instance_ids is None:
                raise DatasetError(str(image_id), "Cityscapes instance AP needs the image's *_instanceIds.png map")
            self.cityscapes.update(instance_ids, masks, category_ids, inst.scores.tolist())
        elif self.instance is not None:
            if instance_annotations is not None:
                height, width = target.ignore.shape
                self.instance.add_json_ground_truth(image_id, height, width, instance_annotations)
            else:
                things = target.is_thing
                self.instance.add_ground_truth(image_id, target.masks[things].numpy(),
                                               [self.ids[int(k)] for k in target.labels[things]],
                                               target.iscrowd[things].tolist())
            self.instance.add_detections(image_id, masks, category_ids, inst.scores.tolist(),
                                         inst.boxes.cpu().numpy())

    def _panoptic_inputs(self, target: Target, result: ImageResult) -> tuple[np.ndarray, list, np.ndarray, list]:
        """(ground-truth segment map, its segments, predicted map, its segments) in dataset ids."""
        assert result.panoptic is not None
        gt_ids = np.zeros(tuple(target.ignore.shape), dtype=np.int64)
        gt_segments = []
        for j, (mask, label, crowd) in enumerate(zip(target.masks, target.labels, target.iscrowd)):
            gt_ids[mask.numpy()] = j + 1
            gt_segments.append({"id": j + 1, "category_id": self.ids[int(label)], "iscrowd": int(crowd)})
        pred_segments = [{"id": s.id, "category_id": self.ids[s.label]} for s in result.panoptic.segments_info]
        return gt_ids, gt_segments, result.panoptic.segments.cpu().numpy().astype(np.int64), pred_segments

    def merge(self, other: TaskEvaluators) -> None:
        """Add another process's accumulated images (same categories, tasks and format)."""
        for name in ("semantic", "panoptic", "cityscapes", "instance"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if (mine is None) != (theirs is None):
                raise ValueError(f"cannot merge evaluators of different tasks ({self.tasks} and {other.tasks})")
            if mine is not None:
                mine.merge(theirs)

    def compute(self) -> dict[str, float]:
        """Every number in percent, keyed ``panoptic.PQ``, ``instance.AP``, ``semantic.mIoU``..."""
        return self.compute_with_per_class()[0]

    def compute_with_per_class(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """(metrics, per-class metrics keyed ``panoptic.PQ`` / ``instance.AP`` / ``semantic.IoU``
        -> class name -> value), all in percent."""
        names = {c.id: c.name for c in self.categories}
        metrics: dict[str, float] = {}
        per_class: dict[str, dict[str, float]] = {}
        if self.panoptic is not None:
            pq = self.panoptic.compute()
            for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
                for name in ("pq", "sq", "rq"):
                    metrics[f"panoptic.{name.upper()}{suffix}"] = 100.0 * pq[group][name]
            per_class["panoptic.PQ"] = {names[k]: 100.0 * v["pq"] for k, v in pq["per_class"].items()
                                        if v["tp"] + v["fp"] + v["fn"] > 0}
        if self.cityscapes is not None:
            cs = self.cityscapes.compute()
            metrics.update({"instance.AP": cs["AP"], "instance.AP50": cs["AP50"]})
            per_class["instance.AP"] = {names[k]: v for k, v in cs["per_class"].items()}
        elif self.instance is not None:
            values, by_id = self.instance.compute()
            metrics.update({f"instance.{k}": v for k, v in values.items()})
            if by_id is not None:
                per_class["instance.AP"] = {names[k]: v for k, v in by_id.items()}
        if self.semantic is not None:
            sem = self.semantic.compute()
            for name in ("mIoU", "fwIoU", "mACC", "pACC"):
                metrics[f"semantic.{name}"] = float(sem[name])
            per_class["semantic.IoU"] = {k: v for k, v in sem["IoU"].items() if v == v}  # drop NaN (absent)
        return metrics, per_class
