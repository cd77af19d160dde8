"""``evaluate``: a model on a dataset split -> PQ / mask AP / mIoU, from our one target structure.

Ground truth for every task is derived from the reader's ``Target``: a segment-id map with crowd
flags for PQ, a COCO instances dict (things only) for mask AP, a label map with 255 = void for
mIoU. So every dataset format is evaluated by the same code, with the reference tools' rules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.atomic_files import write_json_atomic
from mask2former.config import CategoryInfo
from mask2former.data.datasets import Record, read_label_map
from mask2former.errors import ConfigError, DatasetError, brief
from mask2former.formats import IGNORE_LABEL, bbox_xywh, encode_rle
from mask2former.inference.predictor import Predictor
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


def metric_rules(data_format: str) -> str:
    """Which reference's rules the reported numbers follow, for the reports' provenance."""
    if data_format == "cityscapes":
        return "PQ: panopticapi; instance AP and mIoU: cityscapesscripts"
    instance = "LVIS AP: lvis" if data_format == "lvis" else "mask AP: pycocotools COCOeval"
    return f"PQ: panopticapi; {instance}; mIoU: detectron2 SemSegEvaluator"


class TaskEvaluators:
    """Accumulates per-image predictions against targets for the requested tasks."""

    def __init__(self, categories: Sequence[CategoryInfo], tasks: Sequence[str], data_format: str = "") -> None:
        from mask2former.evaluation.cityscapes_instance import CityscapesInstanceEvaluator
        from mask2former.evaluation.panoptic import PanopticEvaluator
        from mask2former.evaluation.semantic import SemanticEvaluator

        self.categories = list(categories)
        self.ids = [c.id for c in self.categories]
        self.tasks = tuple(tasks)
        cityscapes = data_format == "cityscapes"
        self.semantic = (SemanticEvaluator(len(self.categories), ignore_label=IGNORE_LABEL,
                                           class_names=[c.name for c in self.categories],
                                           convention="cityscapes" if cityscapes else "detectron2")
                         if "semantic" in tasks else None)
        # Cityscapes instance AP is scored by cityscapesscripts' rules (the paper's numbers), from
        # the raw instanceIds file of each record, not by COCO's.
        self.cityscapes = (CityscapesInstanceEvaluator([c.id for c in self.categories if c.isthing], self.ids)
                           if cityscapes and "instance" in tasks else None)
        self.panoptic = PanopticEvaluator([{"id": c.id, "name": c.name, "isthing": c.isthing}
                                           for c in self.categories]) if "panoptic" in tasks else None
        self.gt_images: list[dict] = []
        self.gt_annotations: list[dict] = []
        self.results: list[dict] = []
        self.lvis_annotations: str | None = None  # LVIS: score against the dataset's own file

    def update(self, image_id: int | str, target: Target, result: ImageResult, record: Record | None = None) -> None:
        """Score one image; ``record`` (the dataset's) is needed for Cityscapes instance AP."""
        h, w = target.ignore.shape
        if self.semantic is not None and result.semantic is not None:
            self.semantic.update(result.semantic.labels.cpu().numpy(), target.semantic_map(IGNORE_LABEL).numpy())
        if self.panoptic is not None and result.panoptic is not None:
            gt_ids = np.zeros((h, w), dtype=np.int64)
            gt_segments = []
            for j, (mask, label, crowd) in enumerate(zip(target.masks, target.labels, target.iscrowd)):
                gt_ids[mask.numpy()] = j + 1
                gt_segments.append({"id": j + 1, "category_id": self.ids[int(label)], "iscrowd": int(crowd)})
            pred_segments = [{"id": s.id, "category_id": self.ids[s.label]} for s in result.panoptic.segments_info]
            self.panoptic.update(gt_ids, gt_segments, result.panoptic.segments.cpu().numpy().astype(np.int64),
                                 pred_segments)
        if self.cityscapes is not None and result.instance is not None:
            if record is None or "instance_path" not in record.extra:
                raise DatasetError(str(image_id), "Cityscapes instance AP needs the record's *_instanceIds.png")
            inst = result.instance
            self.cityscapes.update(read_label_map(record.extra["instance_path"]), inst.masks.cpu().numpy(),
                                   [self.ids[int(k)] for k in inst.labels], inst.scores.tolist())
        elif "instance" in self.tasks and result.instance is not None:
            self.gt_images.append({"id": image_id, "height": h, "width": w})
            for mask, label, crowd, thing in zip(target.masks, target.labels, target.iscrowd, target.is_thing):
                if not thing:
                    continue
                m = mask.numpy()
                self.gt_annotations.append({
                    "id": len(self.gt_annotations) + 1, "image_id": image_id, "category_id": self.ids[int(label)],
                    "segmentation": encode_rle(m), "area": float(m.sum()), "bbox": bbox_xywh(m), "iscrowd": int(crowd),
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
        if self.cityscapes is not None:
            cs = self.cityscapes.compute()
            metrics.update({"instance.AP": cs["AP"], "instance.AP50": cs["AP50"]})
            per_class["instance.AP"] = {names[k]: v for k, v in cs["per_class"].items()}
        elif "instance" in self.tasks and self.lvis_annotations is not None:
            from mask2former.evaluation.instance import lvis_evaluate

            lvis = lvis_evaluate(self.lvis_annotations, self.results)["segm"]
            metrics.update({f"instance.{k}": v for k, v in lvis.items()})
        elif "instance" in self.tasks:
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
    evaluators = TaskEvaluators(split.categories, tasks, split.format)
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
        evaluators.update(i, targets.pop(i), result, split.records[i])
    return evaluators.compute()


def _merge(into: TaskEvaluators, other: TaskEvaluators) -> None:
    """Add another process's accumulated state (same categories and tasks)."""
    if into.semantic is not None and other.semantic is not None:
        into.semantic.conf += other.semantic.conf
    if into.panoptic is not None and other.panoptic is not None:
        for cat, (iou, tp, fp, fn) in other.panoptic.stats.items():
            stat = into.panoptic.stats.setdefault(cat, [0.0, 0, 0, 0])
            stat[0] += iou
            stat[1] += tp
            stat[2] += fp
            stat[3] += fn
    offset = len(into.gt_annotations)
    into.gt_images += other.gt_images
    into.gt_annotations += [{**a, "id": a["id"] + offset} for a in other.gt_annotations]
    into.results += other.results
    if into.cityscapes is not None and other.cityscapes is not None:
        into.cityscapes.merge(other.cityscapes)


def run_evaluation(checkpoint: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike | None = None,
                   *, split: str = "val", tasks: Sequence[str] | None = None, tta: bool = False,
                   preset: str | None = None, device: str = "cpu", batch_size: int = 1, progress: bool = False,
                   command: str = "") -> dict[str, float]:
    """``mask2former eval``: score a checkpoint on a dataset split for every task both the model
    and the annotations allow; with ``output``, write the predictions in the community formats,
    ``metrics.json`` and ``report.md``. Under torchrun the images are shared out across processes."""
    from mask2former.data.data_yaml import build_split, load_data_config
    from mask2former.engine import distributed as dist
    from mask2former.inference.writers import ResultWriter
    from mask2former.weights import load_model

    multi = dist.init_from_env(device)
    data_config = load_data_config(data)
    if split not in data_config.splits:
        raise DatasetError(data, f"no split {brief(split)} (has {', '.join(data_config.splits)})")
    dataset = build_split(data_config, split)
    model = load_model(checkpoint, preset=preset, device=device)
    allowed = tasks_for(data_config.format, dataset.categories)
    capable = tuple(t for t, on in (("semantic", model.config.inference.semantic_on),
                                    ("instance", model.config.inference.instance_on),
                                    ("panoptic", model.config.inference.panoptic_on)) if on)
    chosen = tuple(t for t in (tasks or allowed) if t in allowed and t in capable)
    if not chosen:
        raise ConfigError(f"nothing to evaluate: the annotations allow {allowed or 'no task'}, the model predicts "
                          f"{capable or 'no task'}" + (f", asked for {tuple(tasks)}" if tasks else ""))
    if [c.name for c in model.config.categories] and len(model.config.categories) != len(dataset.categories):
        raise DatasetError(data, f"has {len(dataset.categories)} classes but {checkpoint} predicts "
                                 f"{len(model.config.categories)}")
    predictor = Predictor(model, device=device, batch_size=batch_size)
    evaluators = TaskEvaluators(dataset.categories, chosen, data_config.format)
    if data_config.format == "lvis":
        evaluators.lvis_annotations = str(data_config.splits[split]["annotations"])
    writer = None
    if output is not None:
        config = model.config
        config.categories = list(dataset.categories)  # write the dataset's own category ids
        writer = ResultWriter(output, config, chosen, overlays=False, owns_index=dist.is_main())
    try:
        rank, world = dist.rank(), dist.world_size()
        mine = list(range(rank, len(dataset), world))
        targets: dict[int, tuple[Target, np.ndarray]] = {}

        def images():
            for i in mine:
                image, target = dataset.load(i)
                targets[i] = (target, image)
                yield image

        non_tta = tuple(t for t in chosen if not (tta and t == "semantic"))
        results = predictor.iter_predict(images(), non_tta or ("semantic",))
        if progress and dist.is_main():
            from tqdm import tqdm

            results = tqdm(results, total=len(mine), desc=f"eval {split}", unit="img")
        for i, result in zip(mine, results):
            target, image = targets.pop(i)
            if tta and "semantic" in chosen:
                result.semantic = predictor.semantic_tta(image).semantic
            record = dataset.records[i]
            evaluators.update(record.image_id, target, result, record)
            if writer is not None:
                result.file_name = record.image_path.name
                writer.add(result, Path(record.image_path).stem, image_id=record.image_id)
        if multi:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, (evaluators, writer))
            if dist.is_main():
                for other_eval, other_writer in gathered[1:]:
                    _merge(evaluators, other_eval)
                    if writer is not None:
                        writer.images += other_writer.images
                        writer.panoptic_annotations += other_writer.panoptic_annotations
                        writer.instances += other_writer.instances
        metrics, per_class = evaluators.compute_with_per_class() if dist.is_main() else ({}, {})
        if dist.is_main() and output is not None:
            out = Path(output)
            writer.close()
            write_json_atomic(out / "metrics.json", metrics)
            write_json_atomic(out / "per_class.json", per_class)
            _write_eval_report(out, metrics, per_class, {
                "checkpoint": str(checkpoint), "dataset": str(Path(data).resolve()), "format": data_config.format,
                "split": split, "images": len(dataset), "tasks": ", ".join(chosen),
                "metric rules": metric_rules(data_config.format),
                "test size": f"short side {model.config.inference.min_size}, long side <= "
                             f"{model.config.inference.max_size}" + (" (semantic: multi-scale + flip)" if tta else ""),
                "command": command or "mask2former eval", "processes": world,
            })
    finally:
        if writer is not None:
            writer.close()  # an index of what was written, also when a run stops early
    dist.cleanup()
    return metrics


def _write_eval_report(out: Path, metrics: dict[str, float], per_class: dict[str, dict[str, float]],
                       provenance: dict[str, Any]) -> None:
    lines = ["# Evaluation", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in provenance.items()]
    lines += ["", "| metric | value (%) |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in metrics.items()]
    for key, values in per_class.items():
        lines += ["", f"Per class {key}:", "", "| class | value (%) |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in values.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
