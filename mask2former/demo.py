"""The main job on an embedded default: synthetic data -> train -> evaluate -> predict -> compare.

Everything runs on the CPU from nothing (no downloads): ``mask2former synth`` writes the dataset,
the ``demo`` preset trains on it for ~10 minutes on 2 cores, ``eval`` scores the held-out split,
``predict`` draws overlays, and ``compare`` trains Mask R-CNN and DeepLabV3 with the same budget.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from mask2former.config import apply_overrides, parse_overrides
from mask2former.errors import ConfigError

logger = logging.getLogger("mask2former")


def run_demo(output: str | os.PathLike = "demo_output", *, iters: int | None = None, compare: bool = True,
             compare_iters: int | None = None, baseline_backbone: str = "auto", overrides: Sequence[str] = ()
             ) -> dict:
    """Run the demo and return the headline numbers; every step's files land under ``output``."""
    from mask2former.data.synthetic import write_synthetic
    from mask2former.engine.evaluate import evaluate_checkpoint
    from mask2former.engine.resume import ResumeConfigError
    from mask2former.engine.train import train
    from mask2former.inference.predict_files import predict_files
    from mask2former.presets import training_recipe

    out = Path(output)
    started = time.perf_counter()
    data = out / "data" / "data.yaml"
    if not data.exists():
        data = write_synthetic(out / "data")
    config = training_recipe("demo")
    changes = parse_overrides(list(overrides))
    if iters is not None:
        changes["max_iter"] = iters
    if changes:
        config = apply_overrides(config, changes)
    command = f"mask2former train --data {data} --preset demo --iters {config.max_iter} --output {out / 'train'}"
    t0 = time.perf_counter()
    try:
        checkpoint = train(config, data, out / "train", resume=True)  # an interrupted demo continues
    except ResumeConfigError as e:
        raise ConfigError(f"{out / 'train'} holds a demo run with other settings ({'; '.join(e.changes[:4])}): "
                          "remove that folder or choose another --output") from None
    train_seconds = time.perf_counter() - t0
    eval_command = f"mask2former eval --checkpoint {checkpoint} --data {data} --output {out / 'eval'}"
    metrics = evaluate_checkpoint(checkpoint, data, out / "eval", progress=True, command=eval_command)
    reduced = {}  # the same split at reduced precision: what it costs in accuracy, measured
    for precision in reduced_precisions():
        folder = out / f"eval_{precision}"
        reduced[precision] = evaluate_checkpoint(
            checkpoint, data, folder, progress=True, precision=precision,
            command=f"mask2former eval --checkpoint {checkpoint} --data {data} --output {folder} "
                    f"--precision {precision}")
    val_images = sorted((data.parent / "images" / "val").iterdir())[:6]
    predict_files(checkpoint, val_images, out / "predictions", "all", strict=True)  # our own images: none may fail
    summary = {"train_command": command, "train_seconds": round(train_seconds, 1), "iterations": config.max_iter,
               "batch_size": config.batch_size, "metrics": metrics, "reduced_precision_metrics": reduced}
    if compare:
        from mask2former.compare.run import compare as run_compare

        budget = config if compare_iters is None else apply_overrides(config, {"max_iter": compare_iters})
        report = run_compare(data, out / "compare", config=budget, checkpoint=checkpoint,
                             baseline_backbone=baseline_backbone, rois_per_image=128,
                             checkpoint_note=f"trained by this demo: {config.max_iter} iterations x batch "
                                             f"{config.batch_size}", checkpoint_seconds=train_seconds,
                             command=f"mask2former compare --data {data} --preset demo --checkpoint {checkpoint} "
                                     f"--iters {budget.max_iter} --baseline-backbone {baseline_backbone} "
                                     "--baseline-rois 128")
        summary["compare_report"] = str(report)
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def reduced_precisions() -> list[str]:
    """int8 (PyTorch dynamic quantization) always; bf16 where the CPU computes it natively (emulated,
    it would take many times the fp32 evaluation's time)."""
    from mask2former.cpu import native_bf16

    return ["bf16", "int8"] if native_bf16() else ["int8"]


def results_table(summary: dict) -> str:
    """The demo's headline numbers as a small text table, with the reduced precisions' deltas."""
    m = summary["metrics"]
    reduced = summary.get("reduced_precision_metrics") or {}
    rows = [("PQ", "panoptic.PQ"), ("PQ things", "panoptic.PQ_th"), ("PQ stuff", "panoptic.PQ_st"),
            ("mask AP", "instance.AP"), ("mask AP50", "instance.AP50"), ("mIoU", "semantic.mIoU")]
    lines = [f"Mask2Former 'demo' preset, {summary['iterations']} iterations x batch {summary['batch_size']} "
             f"({summary['train_seconds'] / 60:.1f} min training), synthetic val split:",
             f"  {'':10s} {'fp32':>6s}" + "".join(f" {p + ' (delta)':>15s}" for p in reduced)]
    for label, key in rows:
        if key in m:
            deltas = "".join(f" {r[key]:6.1f} ({r[key] - m[key]:+5.2f})" for r in reduced.values() if key in r)
            lines.append(f"  {label:10s} {m[key]:6.1f}{deltas}")
    return "\n".join(lines)
