"""``compare``: Mask2Former against torchvision's Mask R-CNN and DeepLabV3 (and their heuristic
panoptic combination) on one dataset, with the same iteration budget, input size and backbone start
(the same ResNet file, or random initialisation), scored by the same evaluator; writes ``report.md``
with tables, plots and side-by-side predictions."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.backbone_weights import BackboneWeights, locate_backbone_weights, read_backbone_weights
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
from mask2former.data.data_yaml import build_split, for_model, load_data_config
from mask2former.data.datasets import DatasetSplit
from mask2former.engine.scoring import PredictStream, model_predictions, per_image, predict_and_score
from mask2former.engine.train import adopt_dataset, train
from mask2former.errors import ConfigError
from mask2former.evaluation.tasks import metric_rules, tasks_for
from mask2former.exported_model import exported_format
from mask2former.inference.predictor import Predictor
from mask2former.modeling import Mask2Former
from mask2former.structures import ImageResult
from mask2former.weights import load_model

logger = logging.getLogger("mask2former")
RANDOM = "random initialisation"


@dataclass
class ModelRun:
    """One compared model: how it was obtained, its scores, per-class scores, cost, predictions."""

    name: str
    tasks: tuple[str, ...]
    source: str  # "trained here: N iterations" or the checkpoint path
    start: str = RANDOM  # the file its backbone started from
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    cost: Cost | None = None
    train_seconds: float = float("nan")  # NaN: loaded, not trained in this run
    predictions: list[ImageResult] = field(default_factory=list)


@dataclass
class _Bench:
    """What every compared model is scored on: the val split, the first ``keep`` predictions kept
    for pictures, and one sample image whose prediction is timed."""

    split: DatasetSplit
    keep: int
    sample: np.ndarray

    def score(self, run: ModelRun, predict: PredictStream, cost: Callable[[], Cost]) -> ModelRun:
        """Score ``run`` on every val image, then measure its cost."""
        scored = predict_and_score(self.split, predict, run.tasks, keep=self.keep)
        run.metrics, run.per_class, run.predictions = scored.metrics, scored.per_class, scored.examples
        run.cost = cost()
        return run

    def mapped(self, predict: PredictStream) -> PredictStream:
        """``predict`` fed what Mask2Former's predictor feeds its model: each val image on the
        model's scale by the split's intensity rule (8-bit images as they are; a volume's slices by
        the whole volume's ranges), since torchvision's models take 0-255 values alone."""
        return lambda images: predict(self.split.training_image(i) for i, _ in enumerate(images))

    def mapped_sample(self) -> np.ndarray:
        return self.split.training_image(0)


@dataclass
class _Baselines:
    """How both baselines are built and trained: Mask2Former's budget, inputs and sample order."""

    config: TrainConfig
    split: DatasetSplit  # train
    backbone: str
    width: int
    optimizer: str
    lr: float
    rois_per_image: int
    progress: bool
    start: str = RANDOM  # the file their ResNet starts from, or why random initialisation
    state: Mapping[str, torch.Tensor] | None = None  # that file's ResNet tensors, torchvision names

    @property
    def budget(self) -> str:
        return f"trained here: {self.config.max_iter} iterations x batch {self.config.batch_size}"

    @property
    def suffix(self) -> str:
        return "" if self.width == 256 else f", width {self.width}"

    def train(self, adapter: Any, name: str) -> float:
        """Train ``adapter``; returns the seconds it took."""
        t0 = time.perf_counter()
        train_baseline(adapter, self.split, self.config, optimizer=self.optimizer, base_lr=self.lr,
                       progress=self.progress, name=name)
        return time.perf_counter() - t0


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
    data_config = for_model(load_data_config(data), config.model)  # Cityscapes: the class set the model learns
    if checkpoint is not None and exported_format(checkpoint) is not None:
        raise ConfigError(f"{checkpoint}: compare counts parameters and FLOPs in PyTorch; give it the checkpoint the "
                          "file was exported from (and `mask2former benchmark` for the exported file's speed)")
    train_split, val_split = build_split(data_config, "train"), build_split(data_config, "val")
    if train_split.pixels.channels != 3:
        raise ConfigError(f"{data}: compare trains torchvision's Mask R-CNN and DeepLabV3, which take 3-channel "
                          f"images, and this dataset has {train_split.pixels.channels} (channels); train and eval "
                          "Mask2Former on it alone, or compare on three of its bands")
    tasks = tasks_for(data_config.format, val_split.categories)
    config = adopt_dataset(config, train_split, data_config.format)
    located = locate_backbone_weights(config.model.backbone)  # the same file starts both sides
    backbone_file = read_backbone_weights(located) if located is not None else None
    start = None  # a given checkpoint: what it records
    if checkpoint is None:
        start = backbone_file.description if backbone_file is not None else RANDOM
        t0 = time.perf_counter()
        checkpoint = train(config, data, out / "mask2former", device=device, progress=progress)
        source = f"trained here: {config.max_iter} iterations x batch {config.batch_size}"
        checkpoint_seconds = time.perf_counter() - t0
    else:
        source = f"checkpoint {checkpoint}" + (f" ({checkpoint_note})" if checkpoint_note else "")
    bench = _Bench(val_split, num_examples, val_split.load(0)[0])
    baselines = _Baselines(config, train_split, _baseline_backbone(config, baseline_backbone),
                           config.model.pixel_decoder.conv_dim if baseline_width == "auto" else int(baseline_width),
                           baseline_optimizer, config.solver.base_lr if baseline_lr is None else baseline_lr,
                           rois_per_image, progress)
    baselines.start, baselines.state = _baseline_start(backbone_file, baselines.backbone)
    runs = [_mask2former_run(bench, checkpoint, tasks, source, checkpoint_seconds, device, start),
            *_baseline_runs(bench, baselines, tasks)]
    provenance = _provenance(data, data_config.format, train_split, val_split, config, baselines, runs,
                             command or " ".join(["mask2former", *sys.argv[1:]]), device)
    from mask2former.compare.report import write_report

    report = write_report(out, runs, val_split.categories, val_split, provenance, tasks)
    _write_results_json(out / "results.json", provenance, runs)
    return report


def _baseline_backbone(config: TrainConfig, asked: str) -> str:
    """``auto``: Mask2Former's own ResNet depth, ResNet-50 for other backbones."""
    if asked != "auto":
        return asked
    b = config.model.backbone
    return f"resnet{b.depth}" if b.name == "resnet" else "resnet50"


def _mask2former_run(bench: _Bench, checkpoint: str | os.PathLike, tasks: tuple[str, ...], source: str,
                     seconds: float, device: str, start: str | None) -> ModelRun:
    model = load_model(checkpoint, device=device)
    assert isinstance(model, Mask2Former)  # exported files are refused above
    predictor = Predictor(model, device=device)
    run = ModelRun("Mask2Former", tasks, source, start=start or _recorded_start(checkpoint, model),
                   train_seconds=seconds)
    return bench.score(run, model_predictions(predictor, tasks),
                       lambda: measure(model, lambda: predictor(bench.sample, task=tasks)))


def _recorded_start(checkpoint: str | os.PathLike, model: Mask2Former) -> str:
    """The backbone start a given checkpoint records: ours store their training config; official
    ``.pkl`` files and HuggingFace folders do not say."""
    if Path(checkpoint).suffix == ".pkl" or Path(checkpoint).is_dir():
        return "not recorded in the checkpoint"
    return model.config.backbone.weights or RANDOM


def _baseline_start(weights: BackboneWeights | None, backbone: str
                    ) -> tuple[str, Mapping[str, torch.Tensor] | None]:
    """(what the report says, the tensors) for the baselines' ResNet: Mask2Former's backbone file
    when it is a ResNet of their depth, else random initialisation and why."""
    if weights is None:
        return RANDOM, None
    found = weights.architecture
    if found.name != "resnet":
        return f"{RANDOM} ({weights.path.name} is a {found.name} file; the baselines' {backbone} cannot use it)", None
    if f"resnet{found.depth}" != backbone:
        return f"{RANDOM} ({weights.path.name} is a ResNet-{found.depth}; the baselines use {backbone})", None
    return weights.description, weights.state


def _baseline_runs(bench: _Bench, baselines: _Baselines, tasks: tuple[str, ...]) -> list[ModelRun]:
    """Mask R-CNN where instances are scored, DeepLabV3 where pixels are, and their heuristic
    panoptic merge where both trained and panoptic is scored."""
    categories = bench.split.categories
    runs, mask_rcnn, deeplab = [], None, None
    if "instance" in tasks:
        mask_rcnn, run = _mask_rcnn_run(bench, baselines, [i for i, c in enumerate(categories) if c.isthing])
        runs.append(run)
    if "semantic" in tasks or "panoptic" in tasks:
        deeplab, run = _deeplab_run(bench, baselines, len(categories))
        runs.append(run)
    if "panoptic" in tasks and mask_rcnn is not None and deeplab is not None:
        runs.append(_merged_run(bench, baselines, mask_rcnn, deeplab, runs[-2].train_seconds + runs[-1].train_seconds))
    return runs


def _mask_rcnn_run(bench: _Bench, baselines: _Baselines, thing_classes: list[int]
                   ) -> tuple[MaskRCNNAdapter, ModelRun]:
    config, inference = baselines.config, baselines.config.model.inference
    torch.manual_seed(config.seed)  # the baselines' random init, whatever ran before in this process
    det = build_mask_rcnn(len(thing_classes), min_size=config.input.crop_size[0],
                          max_size=max(config.input.crop_size), backbone=baselines.backbone,
                          rois_per_image=baselines.rois_per_image, width=baselines.width,
                          backbone_state=baselines.state, source=baselines.start)
    adapter = MaskRCNNAdapter(det, thing_classes)
    seconds = baselines.train(adapter, "mask_rcnn")
    transform: Any = det.transform  # torchvision's GeneralizedRCNNTransform
    transform.min_size, transform.max_size = (inference.min_size,), inference.max_size  # the test size
    run = ModelRun(f"Mask R-CNN ({baselines.backbone} FPN{baselines.suffix})", ("instance",),
                   f"{baselines.budget}; {baselines.rois_per_image} RoIs per image", start=baselines.start,
                   train_seconds=seconds)
    predict = per_image(lambda im: ImageResult(im.shape[0], im.shape[1],
                                               instance=adapter.predict(im, inference.topk_per_image)))
    sample = bench.mapped_sample()
    return adapter, bench.score(run, bench.mapped(predict), lambda: measure(det, lambda: adapter.predict(sample)))


def _deeplab_run(bench: _Bench, baselines: _Baselines, num_classes: int) -> tuple[DeepLabAdapter, ModelRun]:
    inference = baselines.config.model.inference
    torch.manual_seed(baselines.config.seed)
    seg = build_deeplab(num_classes, backbone=baselines.backbone, width=baselines.width,
                        backbone_state=baselines.state, source=baselines.start)
    adapter = DeepLabAdapter(seg, num_classes, min_size=inference.min_size, max_size=inference.max_size)
    seconds = baselines.train(adapter, "deeplabv3")
    run = ModelRun(f"DeepLabV3 ({baselines.backbone}{baselines.suffix})", ("semantic",), baselines.budget,
                   start=baselines.start, train_seconds=seconds)
    predict = per_image(lambda im: ImageResult(im.shape[0], im.shape[1], semantic=adapter.predict(im)))
    sample = bench.mapped_sample()
    return adapter, bench.score(run, bench.mapped(predict), lambda: measure(seg, lambda: adapter.predict(sample)))


def _merged_run(bench: _Bench, baselines: _Baselines, mask_rcnn: MaskRCNNAdapter, deeplab: DeepLabAdapter,
                seconds: float) -> ModelRun:
    """Panoptic from the two baselines by the standard heuristic merge (Panoptic FPN)."""
    inference = baselines.config.model.inference
    thing_flags = [c.isthing for c in bench.split.categories]
    scale = (inference.min_size / 800) ** 2  # the reference stuff-area threshold is for 800 px images
    stuff_area = max(1, int(4096 * scale))

    def combined(im: np.ndarray) -> ImageResult:
        inst = mask_rcnn.predict(im, inference.topk_per_image)
        sem = deeplab.predict(im)
        pan = heuristic_panoptic(inst, sem.labels, thing_flags, stuff_area_threshold=stuff_area)
        return ImageResult(im.shape[0], im.shape[1], semantic=sem, instance=inst, panoptic=pan)

    run = ModelRun("Mask R-CNN + DeepLabV3 (heuristic merge)", ("panoptic",), baselines.budget + " (each)",
                   start=baselines.start, train_seconds=seconds)
    both = torch.nn.ModuleList([mask_rcnn.model, deeplab.model])
    sample = bench.mapped_sample()
    return bench.score(run, bench.mapped(per_image(combined)), lambda: measure(both, lambda: combined(sample)))


def _provenance(data: str | os.PathLike, data_format: str, train_split: DatasetSplit, val_split: DatasetSplit,
                config: TrainConfig, baselines: _Baselines, runs: list[ModelRun], command: str,
                device: str) -> dict[str, Any]:
    """Where every number in the report comes from."""
    inference = config.model.inference
    return {
        "dataset": str(Path(data).resolve()), "format": data_format, "split": "val",
        "val_images": len(val_split), "train_images": len(train_split), "command": command,
        "input_size": f"crop {config.input.crop_size[0]}x{config.input.crop_size[1]} "
                      f"({config.input.augmentation}); test short side {inference.min_size}, "
                      f"long side <= {inference.max_size}",
        "iterations": config.max_iter, "batch_size": config.batch_size,
        "baselines": f"{baselines.backbone}, width {baselines.width}, {baselines.rois_per_image} RoIs per image "
                     f"(Mask R-CNN), {baselines.optimizer} lr {baselines.lr:g}",
        "backbone start": "; ".join(f"{r.name}: {r.start}" for r in runs),
        "device": device, "threads": torch.get_num_threads(), "metric_rules": metric_rules(data_format),
    }


def _write_results_json(path: Path, provenance: dict[str, Any], runs: list[ModelRun]) -> None:
    path.write_text(json.dumps({"provenance": provenance, "models": [
        {"name": r.name, "source": r.source, "backbone_start": r.start, "tasks": r.tasks, "metrics": r.metrics,
         "per_class": r.per_class, "cost": vars(r.cost) if r.cost else None,
         "train_seconds": None if math.isnan(r.train_seconds) else r.train_seconds} for r in runs]}, indent=1))
