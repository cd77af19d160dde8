"""The comparison report: markdown tables, PNG plots and side-by-side predictions, every number
labelled with the dataset, split, checkpoint / training budget and command that produced it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mask2former.config import CategoryInfo
from mask2former.data.intensity import display_image
from mask2former.inference.visualize import overlay, palette

if TYPE_CHECKING:  # types only: run.py imports this module
    from mask2former.compare.run import ModelRun
    from mask2former.data.datasets import DatasetSplit

TASK_COLUMNS = {
    "panoptic": ["panoptic.PQ", "panoptic.SQ", "panoptic.RQ", "panoptic.PQ_th", "panoptic.PQ_st"],
    "instance": ["instance.AP", "instance.AP50", "instance.AP75", "instance.APs", "instance.APm", "instance.APl"],
    "semantic": ["semantic.mIoU", "semantic.fwIoU", "semantic.mACC", "semantic.pACC"],
}
PER_CLASS = {"panoptic": "panoptic.PQ", "instance": "instance.AP", "semantic": "semantic.IoU"}
HEADLINE_NAMES = {"panoptic.PQ": "PQ", "instance.AP": "mask AP", "semantic.mIoU": "mIoU"}  # TASK_COLUMNS[t][0]


def _fmt(value: Any) -> str:
    if isinstance(value, float):  # NaN: class absent; -1: COCO's "no ground truth of this size"
        return "n/a" if math.isnan(value) or value == -1.0 else f"{value:.1f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _plot_accuracy_latency(runs: Sequence[ModelRun], tasks: Sequence[str], path: Path) -> None:
    """One panel per task: its headline metric (0-100 %) against CPU latency, one colour per model
    in every panel, named in a shared legend (labels next to the points overlap and get cut)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {r.name: f"C{i}" for i, r in enumerate(runs)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        key = TASK_COLUMNS[task][0]
        for run in runs:
            if key in run.metrics and run.cost is not None and math.isfinite(run.metrics[key]):
                ax.scatter(run.cost.latency_ms, run.metrics[key], s=60, color=colours[run.name], label=run.name)
        ax.set_xlim(left=0, right=1.15 * max((r.cost.latency_ms for r in runs if r.cost is not None), default=1.0))
        ax.set_ylim(0, 100)
        ax.set_xlabel("CPU latency per image (ms)")
        ax.set_ylabel(f"{key} (%)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.collections}
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 2), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.1 * math.ceil(len(handles) / 2), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_per_class(runs: Sequence[ModelRun], task: str, names: Sequence[str], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = PER_CLASS[task]
    with_values = [r for r in runs if key in r.per_class]
    if not with_values:
        return False
    classes = [n for n in names if any(n in r.per_class[key] for r in with_values)]
    width = 0.8 / len(with_values)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(classes) * len(with_values)), 3.6))
    for k, run in enumerate(with_values):
        values = [run.per_class[key].get(c, float("nan")) for c in classes]
        ax.bar(np.arange(len(classes)) + k * width, values, width, label=run.name)
    ax.set_xticks(np.arange(len(classes)) + width * (len(with_values) - 1) / 2)
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{key} per class")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _side_by_side(runs: Sequence[ModelRun], task: str, split: DatasetSplit, categories: Sequence[CategoryInfo],
                  count: int, path: Path) -> bool:
    """Rows: validation images; columns: the image then each model's prediction for ``task``."""
    names = [c.name for c in categories]
    colors = palette(len(categories), [c.color for c in categories])
    models = [r for r in runs if task in r.tasks and r.predictions]
    if not models:
        return False
    rows = []
    for i in range(min(count, len(models[0].predictions))):
        image, _ = split.load(i)
        tiles = [display_image(image, split.pixels)]
        tiles += [np.asarray(overlay(image, r.predictions[i], task, names, colors, pixels=split.pixels))
                  for r in models]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return True


def summary_table(runs: Sequence[ModelRun], tasks: Sequence[str]) -> str:
    """One row per model: the headline number of each task it was scored on, and its cost."""
    headline = [TASK_COLUMNS[t][0] for t in ("panoptic", "instance", "semantic") if t in tasks]
    header = ["model", *[HEADLINE_NAMES[k] for k in headline], "params (M)", "GFLOPs", "latency (ms)",
              "peak memory (MB)", "training (min)"]
    rows = []
    for r in runs:
        cost = [r.cost.params_m, r.cost.gflops, r.cost.latency_ms, r.cost.peak_memory_mb] if r.cost else [""] * 4
        rows.append([r.name, *[r.metrics.get(k, "") for k in headline], *cost, r.train_seconds / 60])
    return _table(header, rows)


def write_report(out: Path, runs: Sequence[ModelRun], categories: Sequence[CategoryInfo], split: DatasetSplit,
                 provenance: dict[str, Any], tasks: Sequence[str]) -> Path:
    """``out/report.md`` plus its figures; returns the markdown path."""
    names = [c.name for c in categories]
    lines = ["# Mask2Former vs traditional models", ""]
    lines += ["Every number below was measured in this run:", ""]
    lines += [_table(["", ""], [[k, v] for k, v in provenance.items()]), ""]
    lines += ["Models:", ""]
    lines += [_table(["model", "weights", "backbone start", "training time (s)"],
                     [[r.name, r.source, r.start, r.train_seconds] for r in runs]), ""]
    unknown_time = any(math.isnan(r.train_seconds) for r in runs)
    lines += ["## Summary", "", summary_table(runs, tasks), "",
              "Accuracy in % on the val split; cost on the CPU for one validation image end to end (details "
              "below)" + ("; training time n/a for a model loaded from a checkpoint of unknown training time"
                          if unknown_time else "") + ".", ""]
    for task in tasks:
        columns = TASK_COLUMNS[task]
        scored = [r for r in runs if any(c in r.metrics for c in columns)]
        if not scored:
            continue
        lines += [f"## {task.capitalize()} segmentation ({provenance['split']} split, "
                  f"{provenance['val_images']} images, in %)", ""]
        lines += [_table(["model", *[c.split(".", 1)[1] for c in columns]],
                         [[r.name, *[r.metrics.get(c, float("nan")) for c in columns]] for r in scored]), ""]
        key = PER_CLASS[task]
        per_class = [r for r in scored if key in r.per_class]
        if per_class:
            lines += [f"Per class ({key.split('.', 1)[1]}):", ""]
            listed = [n for n in names if any(n in r.per_class[key] for r in per_class)]
            lines += [_table(["class", *[r.name for r in per_class]],
                             [[n, *[r.per_class[key].get(n, float("nan")) for r in per_class]] for n in listed]), ""]
            if _plot_per_class(per_class, task, names, out / f"per_class_{task}.png"):
                lines += [f"![per-class {task}](per_class_{task}.png)", ""]
        if _side_by_side(runs, task, split, categories, 4, out / f"examples_{task}.png"):
            shown = ", ".join(r.name for r in runs if task in r.tasks and r.predictions)
            lines += [f"Validation images, left to right: image, {shown}:", "",
                      f"![{task} examples](examples_{task}.png)", ""]
    lines += ["## Cost (CPU, one image of the validation split, end to end)", ""]
    lines += [_table(["model", "parameters (M)", "GFLOPs", "latency (ms)", "peak tensor memory (MB)"],
                     [[r.name, r.cost.params_m, r.cost.gflops, r.cost.latency_ms, r.cost.peak_memory_mb]
                      for r in runs if r.cost is not None]), ""]
    lines += ["GFLOPs count matrix multiplications and convolutions (torch's FlopCounterMode); gathers such as "
              "the deformable attention's sampling are not counted. Latency is the median of 5 runs after a "
              "warm-up, including pre- and post-processing; peak tensor memory is the most PyTorch tensor memory "
              "held at once during one call (activations and temporaries, weights excluded; from the "
              "allocations torch's profiler records).", ""]
    _plot_accuracy_latency(runs, tasks, out / "accuracy_vs_latency.png")
    lines += ["![accuracy vs latency](accuracy_vs_latency.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
