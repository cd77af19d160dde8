"""The demo of each real-world data path: synthetic files written with the format's own library ->
train -> evaluate -> predict, on the CPU in minutes, checking what each path promises.

- ``volume``: CT-like NIfTI scans (and the same scans as DICOM series); slice-wise training,
  per-class Dice / HD95 per volume beside mIoU, and label volumes written with the input's geometry.
- ``raster``: a georeferenced 4-band 16-bit GeoTIFF; training on random windows, evaluation on a
  held-out raster, tiled prediction to a label GeoTIFF and GeoJSON polygons in the raster's CRS.
- ``multispectral``: 4-band 16-bit TIFF tiles; a model whose stem takes the four bands.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.config import TrainConfig, apply_overrides
from mask2former.errors import ConfigError

PATH_KINDS = ("volume", "raster", "multispectral")  # synth's kinds but its default "coco" (the main demo)
# per path: iterations and crop of the demo recipe (the data's images are small)
SETTINGS: dict[str, dict[str, Any]] = {
    "volume": {"max_iter": 300, "input.crop_size": [64, 64], "input.min_scale": 0.8, "input.max_scale": 1.25},
    "raster": {"max_iter": 300, "input.crop_size": [128, 128]},
    "multispectral": {"max_iter": 300, "input.crop_size": [64, 64], "input.min_scale": 0.8,
                      "input.max_scale": 1.25},
}


def path_recipe(kind: str, iters: int | None = None) -> TrainConfig:
    """The ``demo`` preset's recipe with the path's crop and iterations."""
    from mask2former.presets import training_recipe

    if kind not in PATH_KINDS:
        raise ConfigError(f"demo kind {kind!r}: expected one of {', '.join(PATH_KINDS)}")
    changes = dict(SETTINGS[kind])
    if iters is not None:
        changes["max_iter"] = iters
    return apply_overrides(training_recipe("demo"), changes)


def run_path_demo(kind: str, output: str | os.PathLike, *, iters: int | None = None) -> dict[str, Any]:
    """Run the ``kind`` demo under ``output``; returns (and writes to ``summary.json``) its figures."""
    from mask2former.engine.evaluate import evaluate_checkpoint
    from mask2former.engine.train import train

    config = path_recipe(kind, iters)
    out = Path(output)
    started = time.perf_counter()
    data, inputs = _write_data(kind, out / "data")
    t0 = time.perf_counter()
    checkpoint = train(config, data, out / "train", resume=True)
    train_seconds = time.perf_counter() - t0
    metrics = evaluate_checkpoint(checkpoint, data, out / "eval", progress=True,
                                  command=f"mask2former eval --checkpoint {checkpoint} --data {data} "
                                          f"--output {out / 'eval'}")
    summary: dict[str, Any] = {
        "kind": kind, "data": str(data),
        "train_command": f"mask2former train --data {data} --preset demo --iters {config.max_iter} "
                         f"--set input.crop_size={config.input.crop_size[0]},{config.input.crop_size[1]} "
                         f"--output {out / 'train'}",
        "iterations": config.max_iter, "batch_size": config.batch_size, "train_seconds": round(train_seconds, 1),
        "metrics": metrics}
    summary["predict"] = _predict(kind, checkpoint, inputs, out / "predictions")
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _write_data(kind: str, root: Path) -> tuple[Path, list[Path]]:
    """The dataset's DATA.yaml and the files ``predict`` runs on (the held-out ones)."""
    if kind == "volume":
        from mask2former.data.synthetic_volume import write_synthetic_volumes

        nifti = root / "nifti.yaml"
        if not nifti.exists():
            write_synthetic_volumes(root, num_train=6, num_val=2)
        return nifti, sorted((root / "nifti" / "images" / "val").iterdir()) + \
            sorted((root / "dicom" / "images" / "val").iterdir())[:1]
    if kind == "raster":
        from mask2former.data.synthetic_raster import write_synthetic_raster

        if not (root / "DATA.yaml").exists():
            write_synthetic_raster(root, height=1200, width=1400, tile=256, bands=4, dtype="uint16")
        return root / "DATA.yaml", [root / "val_image.tif"]
    from mask2former.data.synthetic_multispectral import write_multispectral

    if not (root / "DATA.yaml").exists():
        write_multispectral(root, num_train=60, num_val=12)
    return root / "DATA.yaml", sorted((root / "images" / "val").iterdir())[:4]


def _predict(kind: str, checkpoint: Path, inputs: list[Path], out: Path) -> dict[str, Any]:
    """``predict`` on the held-out files, and the path's promise checked on what it wrote."""
    from mask2former.inference.predict_files import predict_files

    tasks = "semantic" if kind == "volume" else "all"
    report = predict_files(checkpoint, inputs, out, tasks, strict=True)
    result: dict[str, Any] = {"inputs": [str(p) for p in inputs], "written": len(report.written)}
    if kind == "volume":
        from mask2former.data.volumes import read_geometry
        from mask2former.inference.predict_volumes import output_path

        kept = []
        for source in inputs:
            a, b = read_geometry(source), read_geometry(output_path(source, out))
            kept.append({"input": str(source), "output": str(output_path(source, out)),
                         "same_shape": a.shape == b.shape,
                         "affine_max_difference_mm": float(np.abs(a.affine - b.affine).max())})
        result["geometry"] = kept
    elif kind == "raster":
        from rasterio.crs import CRS

        from mask2former.data.geotiff import read_raster_info

        image = read_raster_info(inputs[0])
        labels = read_raster_info(out / "geo" / f"{inputs[0].stem}_semantic.tif")
        features = json.loads((out / "geo" / f"{inputs[0].stem}_instances.geojson").read_text())["features"]
        result["georeference"] = {"same_crs": image.crs == labels.crs,
                                  "same_transform": image.transform == labels.transform,
                                  "same_size": (image.height, image.width) == (labels.height, labels.width),
                                  "crs": CRS.from_wkt(image.crs).to_string() if image.crs else None,
                                  "instances": len(features)}
    return result


def path_results_table(summary: dict[str, Any]) -> str:
    """The path demo's headline figures as a few text lines."""
    m, p = summary["metrics"], summary["predict"]
    lines = [f"Mask2Former 'demo' preset on synthetic {summary['kind']} data, {summary['iterations']} iterations x "
             f"batch {summary['batch_size']} ({summary['train_seconds'] / 60:.1f} min training), held-out split:"]
    for label, key, unit in (("Dice", "dice", " %"), ("HD95", "hd95", " mm"), ("mIoU", "semantic.mIoU", ""),
                             ("PQ", "panoptic.PQ", ""), ("mask AP", "instance.AP", "")):
        if key in m:
            value = m[key]
            lines.append(f"  {label:8s} {'n/a' if value is None or value != value else f'{value:6.2f}'}{unit}")
    for row in p.get("geometry", []):
        lines.append(f"  {Path(row['output']).name}: same shape {row['same_shape']}, affine differs by at most "
                     f"{row['affine_max_difference_mm']:.2g} mm")
    if "georeference" in p:
        g = p["georeference"]
        lines.append(f"  label GeoTIFF: CRS {g['crs']} kept {g['same_crs']}, transform kept {g['same_transform']}, "
                     f"size kept {g['same_size']}; {g['instances']} instances as GeoJSON polygons")
    return "\n".join(lines)
