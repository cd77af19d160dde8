"""``compare``: Mask2Former against torchvision's Mask R-CNN and DeepLabV3 (and their heuristic
panoptic combination) on one dataset, with the same iteration budget and input size, scored by the
same evaluator; writes ``report.md`` with tables, plots and side-by-side predictions."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.benchmark import Cost, measure
from mask2former.compare.baselines import (
    DeepLabAdapter,
    MaskRCNNAdapter,
    build_deeplab,
    build_mask_rcnn,
    heuristic_panoptic,
)
from mask2former.compare.train_baselines import train_baseline
from mask2former.config import TrainConfig
from mask2former.data.data_yaml import build_split, load_data_config
from mask2former.engine.evaluate import TaskEvaluators, metric_rules, tasks_for
from mask2former.engine.train import adopt_dataset, train
from mask2former.inference.predictor import Predictor
from mask2former.structures import ImageResult
from mask2former.weights import load_model

logger = logging.getLogger("mask2former")


@dataclass
class ModelRun:
    """One compared model: how it was obtained, its scores, per-class scores, cost, predictions."""

    name: str
    tasks: tuple[str, ...]
    source: str  # "trained here: N iterations" or the checkpoint path
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    cost: Cost | None = None
    train_seconds: float = float("nan")  # NaN: loaded, not trained in this run
    predictions: list[ImageResult] = field(default_factory=list)


def _predict_split(split: Any, predict: Any, evaluators: TaskEvaluators, keep: int) -> list[ImageResult]:
    kept = []
    for i in range(len(split)):
        image, target = split.load(i)
        result = predict(image)
        evaluators.update(i, target, result, split.records[i])
        if i < keep:
            kept.append(result)
    return kept


def compare(data: str | os.PathLike, output: str | os.PathLike, *, config: TrainConfig,
            checkpoint: str | os.PathLike | None = None, baseline_backbone: str = "auto",
            baseline_optimizer: str = "adamw", baseline_lr: float | None = None, rois_per_image: int = 512,
            baseline_width: int | str = "auto", checkpoint_note: str = "", checkpoint_seconds: float = float("nan"),
            num_examples: int = 4,
            device: str = "cpu", progress: bool = True, command: str | None = None) -> Path:
    """Train (or load, with ``checkpoint``) Mask2Former, train the baselines with the same budget,
    evaluate all on the val split, measure their cost, and write the report to ``output``.

    ``baseline_backbone="auto"`` gives the baselines Mask2Former's own ResNet depth (ResNet-50 for
    Swin models), and ``baseline_width="auto"`` gives their FPN / ASPP / heads Mask2Former's
    pixel-decoder width (256 for every zoo preset, 64 for ``demo``), so that the comparison is of
    the heads, not of the backbones or the widths. ``baseline_lr=None`` trains the baselines with
    Mask2Former's own base learning rate (AdamW, poly decay): a lower one handicaps them (on the
    demo data, 1e-4 instead of the preset's 4e-4 cost Mask R-CNN 15 AP and DeepLabV3 23 mIoU).
    ``checkpoint_note`` and ``checkpoint_seconds`` say how a given ``checkpoint`` was trained and
    how long it took, where the caller knows (the demo trains it just before)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    command = command or " ".join(["mask2former", *sys.argv[1:]])
    data_config = load_data_config(data)
    train_split, val_split = build_split(data_config, "train"), build_split(data_config, "val")
    categories = val_split.categories
    tasks = tasks_for(data_config.format, categories)
    config = adopt_dataset(config, train_split, data_config.format)
    inference = config.model.inference
    thing_flags = [c.isthing for c in categories]
    thing_classes = [i for i, flag in enumerate(thing_flags) if flag]
    if baseline_backbone == "auto":
        b = config.model.backbone
        baseline_backbone = f"resnet{b.depth}" if b.name == "resnet" else "resnet50"
    width = config.model.pixel_decoder.conv_dim if baseline_width == "auto" else int(baseline_width)
    if baseline_lr is None:
        baseline_lr = config.solver.base_lr
    suffix = "" if width == 256 else f", width {width}"
    runs: list[ModelRun] = []

    # --- Mask2Former
    t0 = time.perf_counter()
    if checkpoint is None:
        checkpoint = train(config, data, out / "mask2former", device=device, progress=progress)
        source = f"trained here: {config.max_iter} iterations x batch {config.batch_size}"
        m2f_seconds = time.perf_counter() - t0
    else:
        source = f"checkpoint {checkpoint}" + (f" ({checkpoint_note})" if checkpoint_note else "")
        m2f_seconds = checkpoint_seconds  # NaN (n/a) unless the caller knows
    model = load_model(checkpoint, device=device)
    predictor = Predictor(model, device=device)
    m2f = ModelRun("Mask2Former", tasks, source, train_seconds=m2f_seconds)
    evaluators = TaskEvaluators(categories, tasks, data_config.format)
    m2f.predictions = _predict_split(val_split, lambda im: predictor(im, task=tasks), evaluators, num_examples)
    m2f.metrics, m2f.per_class = evaluators.compute_with_per_class()
    sample = val_split.load(0)[0]
    m2f.cost = measure(model, lambda: predictor(sample, task=tasks))
    runs.append(m2f)

    # --- baselines, same budget and inputs
    budget = f"trained here: {config.max_iter} iterations x batch {config.batch_size}"
    mask_rcnn = deeplab = None
    if "instance" in tasks:
        torch.manual_seed(config.seed)  # the baselines' random init, whatever ran before in this process
        det = build_mask_rcnn(len(thing_classes), min_size=config.input.crop_size[0],
                              max_size=max(config.input.crop_size), backbone=baseline_backbone,
                              rois_per_image=rois_per_image, width=width)
        mask_rcnn = MaskRCNNAdapter(det, thing_classes)
        t0 = time.perf_counter()
        train_baseline(mask_rcnn, train_split, config, optimizer=baseline_optimizer, base_lr=baseline_lr,
                       progress=progress, name="mask_rcnn")
        seconds = time.perf_counter() - t0
        det.transform.min_size, det.transform.max_size = (inference.min_size,), inference.max_size
        run = ModelRun(f"Mask R-CNN ({baseline_backbone} FPN{suffix})", ("instance",),
                       f"{budget}; {rois_per_image} RoIs per image", train_seconds=seconds)
        evaluators = TaskEvaluators(categories, ("instance",), data_config.format)
        run.predictions = _predict_split(val_split, lambda im: ImageResult(
            im.shape[0], im.shape[1], instance=mask_rcnn.predict(im, inference.topk_per_image)), evaluators,
            num_examples)
        run.metrics, run.per_class = evaluators.compute_with_per_class()
        run.cost = measure(det, lambda: mask_rcnn.predict(sample))
        runs.append(run)
    if "semantic" in tasks or "panoptic" in tasks:
        torch.manual_seed(config.seed)
        seg = build_deeplab(len(categories), backbone=baseline_backbone, width=width)
        deeplab = DeepLabAdapter(seg, len(categories), min_size=inference.min_size, max_size=inference.max_size)
        t0 = time.perf_counter()
        train_baseline(deeplab, train_split, config, optimizer=baseline_optimizer, base_lr=baseline_lr,
                       progress=progress, name="deeplabv3")
        seconds = time.perf_counter() - t0
        run = ModelRun(f"DeepLabV3 ({baseline_backbone}{suffix})", ("semantic",), budget, train_seconds=seconds)
        evaluators = TaskEvaluators(categories, ("semantic",), data_config.format)
        run.predictions = _predict_split(val_split, lambda im: ImageResult(
            im.shape[0], im.shape[1], semantic=deeplab.predict(im)), evaluators, num_examples)
        run.metrics, run.per_class = evaluators.compute_with_per_class()
        run.cost = measure(seg, lambda: deeplab.predict(sample))
        runs.append(run)
    if "panoptic" in tasks and mask_rcnn is not None and deeplab is not None:
        scale = (inference.min_size / 800) ** 2  # the reference stuff-area threshold is for 800 px images
        stuff_area = max(1, int(4096 * scale))

        def combined(im: np.ndarray) -> ImageResult:
            inst = mask_rcnn.predict(im, inference.topk_per_image)
            sem = deeplab.predict(im)
            pan = heuristic_panoptic(inst, sem.labels, thing_flags, stuff_area_threshold=stuff_area)
            return ImageResult(im.shape[0], im.shape[1], semantic=sem, instance=inst, panoptic=pan)

        run = ModelRun("Mask R-CNN + DeepLabV3 (heuristic merge)", ("panoptic",), budget + " (each)",
                       train_seconds=runs[-1].train_seconds + runs[-2].train_seconds)
        evaluators = TaskEvaluators(categories, ("panoptic",), data_config.format)
        run.predictions = _predict_split(val_split, combined, evaluators, num_examples)
        run.metrics, run.per_class = evaluators.compute_with_per_class()
        merged_params = torch.nn.ModuleList([mask_rcnn.model, deeplab.model])
        run.cost = measure(merged_params, lambda: combined(sample))
        runs.append(run)

    from mask2former.compare.report import write_report

    provenance = {
        "dataset": str(Path(data).resolve()), "format": data_config.format, "split": "val",
        "val_images": len(val_split), "train_images": len(train_split), "command": command,
        "input_size": f"crop {config.input.crop_size[0]}x{config.input.crop_size[1]} "
                      f"({config.input.augmentation}); test short side {inference.min_size}, "
                      f"long side <= {inference.max_size}",
        "iterations": config.max_iter, "batch_size": config.batch_size,
        "baselines": f"{baseline_backbone}, width {width}, {rois_per_image} RoIs per image (Mask R-CNN), "
                     f"{baseline_optimizer} lr {baseline_lr:g}, random init",
        "device": device, "threads": torch.get_num_threads(), "metric_rules": metric_rules(data_config.format),
    }
    report = write_report(out, runs, categories, val_split, provenance, tasks)
    (out / "results.json").write_text(json.dumps({"provenance": provenance, "models": [
        {"name": r.name, "source": r.source, "tasks": r.tasks, "metrics": r.metrics, "per_class": r.per_class,
         "cost": vars(r.cost) if r.cost else None,
         "train_seconds": None if math.isnan(r.train_seconds) else r.train_seconds} for r in runs]}, indent=1))
    return report
