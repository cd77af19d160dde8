"""Evaluation entry points: ``evaluate`` (a model in memory, as training scores it) and
``evaluate_checkpoint`` (``mask2former eval``). Both are compositions of ``predict_and_score``,
so a checkpoint scores the same during training as afterwards; the task logic (which tasks a
format allows, the evaluators and their rules) lives in ``mask2former.evaluation``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former import distributed as dist
from mask2former.atomic_files import write_json_atomic
from mask2former.config import CategoryInfo, ModelConfig
from mask2former.data.datasets import DatasetSplit
from mask2former.data.volume_dataset import VolumeSplit
from mask2former.engine.scoring import ScoredSplit, model_predictions, predict_and_score
from mask2former.errors import ConfigError, DatasetError, brief
from mask2former.evaluation.tasks import metric_rules, tasks_for
from mask2former.exported_model import RunnableModel
from mask2former.inference.predictor import Predictor, tta_views
from mask2former.modeling import Mask2Former
from mask2former.precision import precision_of

if TYPE_CHECKING:
    from mask2former.data.data_yaml import DataConfig


def evaluate(model: Mask2Former, split: DatasetSplit, tasks: Sequence[str] | None = None, *, batch_size: int = 1,
             progress: bool = False) -> dict[str, float]:
    """Score ``model`` on every image of ``split`` (percent), on this process alone: training
    evaluates on its main process. ``tasks`` defaults to every task the split's annotations allow."""
    tasks = tasks_for(split.format, split.categories) if tasks is None else tuple(tasks)
    predictor = Predictor(model, batch_size=batch_size, device=next(model.parameters()).device)
    if isinstance(split, VolumeSplit):  # whole volumes: Dice and HD95 per volume beside mIoU
        from mask2former.inference.predict_volumes import evaluate_volumes

        return evaluate_volumes(predictor, split).metrics
    return predict_and_score(split, model_predictions(predictor, tasks), tasks,
                             progress="eval" if progress else None).metrics


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike,
                        output: str | os.PathLike | None = None, *, split: str = "val",
                        tasks: Sequence[str] | None = None, tta: bool = False, preset: str | None = None,
                        device: str = "cpu", batch_size: int = 1, progress: bool = False,
                        command: str = "", precision: str = "fp32") -> dict[str, float]:
    """``mask2former eval``: score a checkpoint on a dataset split for every task both the model
    and the annotations allow; with ``output``, write the predictions in the community formats,
    ``metrics.json`` and ``report.md``. Under torchrun the images are shared out across processes
    and the main process returns the metrics (the others an empty dict)."""
    from mask2former.data.data_yaml import build_split, for_model, load_data_config
    from mask2former.inference.writers import ResultWriter
    from mask2former.weights import load_model

    dist.init_from_env(device)
    data_config = load_data_config(data)
    if split not in data_config.splits:
        raise DatasetError(data, f"no split {brief(split)} (has {', '.join(data_config.splits)})")
    model = load_model(checkpoint, preset=preset, device=device, precision=precision)
    data_config = for_model(data_config, model.config)  # Cityscapes: the class set the model predicts
    dataset = build_split(data_config, split)
    chosen = _chosen_tasks(model.config, data_config.format, dataset.categories, tasks)
    _check_class_count(model.config, dataset.categories, checkpoint, data)
    if isinstance(dataset, VolumeSplit):
        return _evaluate_volume_split(model, dataset, output, device=device, batch_size=batch_size, provenance={
            "checkpoint": str(checkpoint), "precision": precision_of(model), "dataset": str(Path(data).resolve()),
            "format": data_config.format,
            "split": split, "volumes": len(dataset.cases), "slices": len(dataset), "tasks": "semantic",
            "metric rules": "mIoU: detectron2 SemSegEvaluator over all voxels; Dice, HD95 (mm): MONAI DiceMetric, "
                            "HausdorffDistanceMetric(percentile=95) defaults, per volume and class",
            "command": command or "mask2former eval"})
    predict = model_predictions(Predictor(model, device=device, batch_size=batch_size), chosen, tta=tta)
    writer = None
    if output is not None:  # files name the dataset's own category ids; the model's config stays as it is
        config = replace(model.config, categories=list(dataset.categories))
        writer = ResultWriter(output, config, chosen, overlays=False, owns_index=dist.is_main())
    try:
        scored = predict_and_score(dataset, predict, chosen, writer=writer, shard=True,
                                   progress=f"eval {split}" if progress else None)
        if writer is not None and output is not None and dist.is_main():
            writer.close()
            _write_results(Path(output), scored, {
                "checkpoint": str(checkpoint), "precision": precision_of(model),
                "dataset": str(Path(data).resolve()), "format": data_config.format, "split": split,
                "images": len(dataset), "tasks": ", ".join(chosen),
                **_ground_truth(data_config, split, chosen),
                "metric rules": metric_rules(data_config.format), "test size": _test_size(model.config, tta),
                "command": command or "mask2former eval", "processes": dist.world_size(),
            })
    finally:
        if writer is not None:
            writer.close()  # an index of what was written, also when a run stops early
    dist.cleanup()
    return scored.metrics


def _evaluate_volume_split(model: RunnableModel, dataset: VolumeSplit, output: str | os.PathLike | None, *,
                           device: str, batch_size: int, provenance: dict[str, Any]) -> dict[str, float]:
    """``mask2former eval`` on NIfTI / DICOM volumes: each volume predicted slice by slice and
    scored whole (``evaluate_volumes``); with ``output``, ``metrics.json`` (the metrics and a
    ``volumes`` list of per-volume rows), ``per_class.json`` and ``report.md``."""
    from mask2former.inference.predict_volumes import evaluate_volumes

    scores = evaluate_volumes(Predictor(model, device=device, batch_size=batch_size), dataset)
    if output is not None and dist.is_main():
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        rows = scores.volumes.rows()
        write_json_atomic(out / "metrics.json", {**scores.metrics, "volumes": rows})
        write_json_atomic(out / "per_class.json", scores.per_class)
        lines = ["# Evaluation", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in provenance.items()]
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f}{' mm' if k.startswith('hd95') else ' %'} |" for k, v in scores.metrics.items()]
        if rows:
            keys = list(rows[0])
            lines += ["", "Per volume (Dice %, HD95 mm):", "", "| " + " | ".join(keys) + " |",
                      "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(v if isinstance(v, str) else f"{v:.2f}" for v in row.values()) + " |"
                      for row in rows]
        (out / "report.md").write_text("\n".join(lines) + "\n")
    dist.cleanup()
    return scores.metrics


def _chosen_tasks(config: ModelConfig, data_format: str, categories: Sequence[CategoryInfo],
                  asked: Sequence[str] | None) -> tuple[str, ...]:
    """The asked tasks (default: all) that the annotations can score and the model predicts."""
    allowed = tasks_for(data_format, categories)
    inference = config.inference
    capable = tuple(t for t, on in (("semantic", inference.semantic_on), ("instance", inference.instance_on),
                                    ("panoptic", inference.panoptic_on)) if on)
    chosen = tuple(t for t in (asked or allowed) if t in allowed and t in capable)
    if not chosen:
        raise ConfigError(f"nothing to evaluate: the annotations allow {allowed or 'no task'}, the model predicts "
                          f"{capable or 'no task'}" + (f", asked for {tuple(asked)}" if asked else ""))
    return chosen


def _check_class_count(config: ModelConfig, categories: Sequence[CategoryInfo], checkpoint: str | os.PathLike,
                       data: str | os.PathLike) -> None:
    if [c.name for c in config.categories] and len(config.categories) != len(categories):
        raise DatasetError(data, f"has {len(categories)} classes but {checkpoint} predicts "
                                 f"{len(config.categories)}")


def _ground_truth(data_config: DataConfig, split: str, tasks: Sequence[str]) -> dict[str, str]:
    """Report rows naming the files each task was scored against, and the Cityscapes class set."""
    from mask2former.data.data_yaml import ground_truth_sources

    sources = ground_truth_sources(data_config, split)
    rows = {f"ground truth, {task}": sources[task] for task in tasks if task in sources}
    if data_config.cityscapes_classes is not None:
        rows["classes"] = f"Cityscapes {data_config.cityscapes_classes} set"
    return rows


def _test_size(config: ModelConfig, tta: bool) -> str:
    inference = config.inference
    text = f"short side {inference.min_size}, long side <= {inference.max_size}"
    if not tta:
        return text
    sizes, max_size = tta_views(config)
    return (f"{text}; semantic: the mean over views of that image resized to short side "
            f"{', '.join(map(str, sizes))} (long side <= {max_size}), each also flipped")


def _write_results(out: Path, scored: ScoredSplit, provenance: dict[str, Any]) -> None:
    """``metrics.json``, ``per_class.json`` and ``report.md`` (provenance, then the numbers)."""
    write_json_atomic(out / "metrics.json", scored.metrics)
    write_json_atomic(out / "per_class.json", scored.per_class)
    lines = ["# Evaluation", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in provenance.items()]
    lines += ["", "| metric | value (%) |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in scored.metrics.items()]
    for key, values in scored.per_class.items():
        lines += ["", f"Per class {key}:", "", "| class | value (%) |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in values.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
