"""``evaluate``: a model on a dataset split -> PQ / mask AP / mIoU, from our one target structure.

Ground truth for every task is derived from the reader's ``Target``: a segment-id map with crowd
flags for PQ, a COCO instances dict (things only) for mask AP, a label map with 255 = void for
mIoU. So every dataset format is evaluated by the same code, with the reference tools' rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mask2former.config import CategoryInfo
from mask2former.inference.predictor import Predictor
from mask2former.inference.writers import encode_rle
from mask2former.modeling import Mask2Former
from mask2former.structures import ImageResult, Target

FORMAT_TASKS = {
    "coco_panoptic": ("semantic", "instance", "panoptic"),
    "cityscapes": ("semantic", "instance", "panoptic"),
    "folder": ("semantic", "instance", "panoptic"),
    "semantic": ("semantic",),
    "coco_instances": ("instance",),
    "lvis": ("instance",),
}


def tasks_for(data_format: str, categories: Sequence[CategoryInfo]) -> tuple[str, ...]:
    """Tasks the annotations of a format can score: instance and panoptic need thing classes
    annotated per instance; semantic needs every pixel labelled (not COCO/LVIS instances)."""
    tasks = FORMAT_TASKS.get(data_format, ("semantic",))
    if not any(c.isthing for c in categories):
        tasks = tuple(t for t in tasks if t == "semantic")
    return tasks


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


class TaskEvaluators:
    """Accumulates per-image predictions against targets for the requested tasks."""

    def __init__(self, categories: Sequence[CategoryInfo], tasks: Sequence[str]) -> None:
        from mask2former.evaluation.panoptic import PanopticEvaluator
        from mask2former.evaluation.semantic import SemanticEvaluator

        self.categories = list(categories)
        self.ids = [c.id for c in self.categories]
        self.tasks = tuple(tasks)
        self.semantic = (SemanticEvaluator(len(self.categories), ignore_label=255,
                                           class_names=[c.name for c in self.categories])
                         if "semantic" in tasks else None)
        self.panoptic = PanopticEvaluator([{"id": c.id, "name": c.name, "isthing": c.isthing}
                                           for c in self.categories]) if "panoptic" in tasks else None
        self.gt_images: list[dict] = []
        self.gt_annotations: list[dict] = []
        self.results: list[dict] = []

    def update(self, image_id: int, target: Target, result: ImageResult) -> None:
        h, w = target.ignore.shape
        if self.semantic is not None and result.semantic is not None:
            self.semantic.update(result.semantic.labels.cpu().numpy(), target.semantic_map(255).numpy())
        if self.panoptic is not None and result.panoptic is not None:
            gt_ids = np.zeros((h, w), dtype=np.int64)
            gt_segments = []
            for j, (mask, label, crowd) in enumerate(zip(target.masks, target.labels, target.iscrowd)):
                gt_ids[mask.numpy()] = j + 1
                gt_segments.append({"id": j + 1, "category_id": self.ids[int(label)], "iscrowd": int(crowd)})
            pred_segments = [{"id": s.id, "category_id": self.ids[s.label]} for s in result.panoptic.segments_info]
            self.panoptic.update(gt_ids, gt_segments, result.panoptic.segments.cpu().numpy().astype(np.int64),
                                 pred_segments)
        if "instance" in self.tasks and result.instance is not None:
            self.gt_images.append({"id": image_id, "height": h, "width": w})
            for mask, label, crowd, thing in zip(target.masks, target.labels, target.iscrowd, target.is_thing):
                if not thing:
                    continue
                m = mask.numpy()
                self.gt_annotations.append({
                    "id": len(self.gt_annotations) + 1, "image_id": image_id, "category_id": self.ids[int(label)],
                    "segmentation": encode_rle(m), "area": float(m.sum()), "bbox": _bbox(m), "iscrowd": int(crowd),
                })
            inst = result.instance
            for k in range(inst.masks.shape[0]):
                x0, y0, x1, y1 = inst.boxes[k].tolist()
                self.results.append({"image_id": image_id, "category_id": self.ids[int(inst.labels[k])],
                                     "segmentation": encode_rle(inst.masks[k].cpu().numpy()),
                                     "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(inst.scores[k])})

    def compute(self) -> dict[str, float]:
        """Every number in percent, keyed ``panoptic.PQ``, ``instance.AP``, ``semantic.mIoU``..."""
        return self.compute_with_per_class()[0]

    def compute_with_per_class(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """(metrics, per-class metrics keyed ``panoptic.PQ`` / ``instance.AP`` / ``semantic.IoU``
        -> class name -> value), all in percent."""
        from mask2former.evaluation.instance import coco_evaluate

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
        if "instance" in self.tasks:
            things = [c for c in self.categories if c.isthing]
            gt = {"images": self.gt_images, "annotations": self.gt_annotations,
                  "categories": [{"id": c.id, "name": c.name} for c in things]}
            coco = coco_evaluate(gt, self.results, iou_types=("segm",))["segm"]
            metrics.update({f"instance.{k}": float(v) for k, v in coco.items() if k != "per_class"})
            per_class["instance.AP"] = {names[k]: v for k, v in coco["per_class"].items()}
        if self.semantic is not None:
            sem = self.semantic.compute()
            for name in ("mIoU", "fwIoU", "mACC", "pACC"):
                metrics[f"semantic.{name}"] = float(sem[name])
            per_class["semantic.IoU"] = {k: v for k, v in sem["IoU"].items() if v == v}  # drop NaN (absent)
        return metrics, per_class


@torch.inference_mode()
def evaluate(model: Mask2Former, split, tasks: Sequence[str], *, batch_size: int = 1,
             progress: bool = False) -> dict[str, float]:
    """Predict every image of ``split`` and score the requested tasks (percent)."""
    predictor = Predictor(model, batch_size=batch_size, device=next(model.parameters()).device)
    evaluators = TaskEvaluators(split.categories, tasks)
    targets: dict[int, Target] = {}

    def images():
        for i in range(len(split)):
            image, targets[i] = split.load(i)
            yield image

    results = predictor.iter_predict(images(), tasks)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(split), desc="eval", unit="img")
    for i, result in enumerate(results):
        evaluators.update(i, targets.pop(i), result)
    return evaluators.compute()
