"""Volumes in, label volumes out: slice-wise prediction with the input's geometry kept.

Each slice along the slice axis (default the acquisition axis) goes through the ``Predictor`` as
an image on the model's scale: the model's intensity rule with ranges fixed once from the whole
volume (``volume_dataset.volume_ranges``), with neighbouring slices as channels for a model of
``2 K + 1`` channels (2.5D). The semantic labels are written back into a volume of the input's
shape, in the input's format: a NIfTI file with the input's header, or a DICOM series with each
input slice's geometry (``data.volumes.write_label_volume``). ``evaluate_volumes`` scores such
predictions per volume (Dice, HD95 in mm) and over all voxels (mIoU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mask2former.data.intensity import OnModelScale
from mask2former.data.volume_dataset import (
    VolumeSplit,
    context_for,
    put_slice,
    resolve_axis,
    slice_input,
    take_slice,
    volume_ranges,
)
from mask2former.data.volumes import Volume, is_nifti, read_volume, volume_name, write_label_volume
from mask2former.errors import ConfigError, DatasetError, ImageError
from mask2former.evaluation.semantic import SemanticEvaluator
from mask2former.evaluation.volume_metrics import VolumeMetrics
from mask2former.formats import IGNORE_LABEL
from mask2former.inference.predictor import Predictor

logger = logging.getLogger("mask2former")


def predict_volume(predictor: Predictor, volume: Volume, *, axis: int | str = "auto") -> np.ndarray:
    """``[I, J, K]`` class indices (the predictor's contiguous ids) of every voxel of ``volume``,
    predicted slice by slice along ``axis`` (``"auto"``: the acquisition axis)."""
    along = resolve_axis(axis, volume.geometry)
    pixels = predictor.pixels
    context = context_for(pixels.channels)
    source = str(volume.source)
    try:
        ranges = volume_ranges(volume.array, pixels, source)
    except ImageError as e:
        raise DatasetError(volume.source, str(e).removeprefix(f"{source}: ")) from None
    labels = np.zeros(volume.shape, dtype=np.int32)

    def slices() -> Iterator[OnModelScale]:
        for k in range(volume.shape[along]):
            stack = take_slice(volume.array, along, k, context)
            yield OnModelScale(slice_input(stack, ranges, pixels.channels, f"{source} slice {k}"))

    for k, result in enumerate(predictor.iter_predict(slices(), "semantic")):
        assert result.semantic is not None  # asked for
        put_slice(labels, along, k, result.semantic.labels.cpu().numpy())
    return labels


def is_volume_input(path: str | os.PathLike) -> bool:
    """A ``.nii`` / ``.nii.gz`` file, or a folder that holds a DICOM series (files, the first of
    them a DICOM file) or volumes (NIfTI files or series folders)."""
    path = Path(path)
    if is_nifti(path):
        return True
    if not path.is_dir():
        return False
    try:
        children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError:
        return False
    if any(is_nifti(p) for p in children):
        return True
    files = [p for p in children if p.is_file()]
    if files and not any(p.is_dir() for p in children):
        return _is_dicom(files[0])
    return any(p.is_dir() and is_volume_input(p) for p in children[:20])


def _is_dicom(path: Path) -> bool:
    """The file has DICOM's ``DICM`` marker after its 128-byte preamble."""
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def output_path(source: Path, output_dir: Path) -> Path:
    """Where a volume's labels go, in its own format: ``<name>.nii.gz`` / ``<name>.nii`` for a
    NIfTI file, a series folder ``<name>`` for a DICOM series."""
    if not is_nifti(source):
        return output_dir / volume_name(source)
    suffix = ".nii" if str(source).lower().endswith(".nii") else ".nii.gz"
    return output_dir / f"{volume_name(source)}{suffix}"


def list_volumes(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Each input as given if it is a NIfTI file or a DICOM series folder (a folder of files
    none of which is NIfTI); a folder holding NIfTI files or sub-folders is expanded into those."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            try:
                children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            except OSError as e:
                raise DatasetError(path, f"cannot list the folder ({e.strerror or e})") from None
            volumes = [p for p in children if p.is_dir() or is_nifti(p)]
            if volumes:
                out.extend(volumes)
                continue
        out.append(path)
    return out


@dataclass
class VolumeFailure:
    path: str
    problem: str


@dataclass
class PredictedVolumes:
    written: list[Path] = field(default_factory=list)
    failed: list[VolumeFailure] = field(default_factory=list)


def predict_volumes(predictor: Predictor, inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
                    axis: int | str = "auto", strict: bool = False) -> PredictedVolumes:
    """Predict every volume of ``inputs`` and write its label volume into ``output_dir`` in the
    input's format (label value = the class's category id). A volume that cannot be read is
    reported and skipped, or stops the run with ``strict``; the caller exits non-zero if
    ``failed`` is not empty."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = predictor.config
    ids = np.array([c.id for c in config.categories] or range(config.num_classes), np.int64)
    names = [c.name for c in config.categories] or [str(i) for i in range(config.num_classes)]
    names_by_id = names if ids.tolist() == list(range(len(ids))) else []  # label value i is names[i]
    if not predictor.inference.semantic_on:
        raise ConfigError("predicting label volumes needs a model with semantic output "
                          "(model.inference.semantic_on)")
    report = PredictedVolumes()
    for path in list_volumes(inputs):
        try:
            volume = read_volume(path)
            labels = ids[predict_volume(predictor, volume, axis=axis)]
            target = output_path(path, out)
            report.written.append(write_label_volume(labels, volume.geometry, target, class_names=names_by_id))
            logger.info("%s -> %s", path, target)
        except (DatasetError, ImageError) as e:
            if strict:
                raise
            report.failed.append(VolumeFailure(str(path), str(e)))
            logger.error("%s", e)
    return report


def predict_volume_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                         output_dir: str | os.PathLike, *, preset: str | None = None, device: str = "cpu",
                         batch_size: int = 1, axis: int | str = "auto", strict: bool = False,
                         precision: str = "fp32") -> PredictedVolumes:
    """``mask2former predict`` on volumes: load the checkpoint and ``predict_volumes``."""
    from mask2former.weights import load_model

    axis = parse_axis(axis)
    model = load_model(checkpoint, preset=preset, device=device, precision=precision)
    return predict_volumes(Predictor(model, device=device, batch_size=batch_size), inputs, output_dir, axis=axis,
                           strict=strict)


def parse_axis(value: int | str) -> int | str:
    """``auto`` or a slice axis 0, 1, 2 (also as text, from a command line)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("0", "1", "2"):
        return int(text)
    raise ConfigError(f"slice axis: expected auto, 0, 1 or 2, got {value!r}")


@dataclass
class VolumeScores:
    """What ``evaluate_volumes`` measured: ``metrics`` (``dice`` %, ``hd95`` mm, per class
    ``dice/<class>``, ``hd95/<class>``, and ``semantic.mIoU`` etc. over all voxels), ``per_class``
    (``semantic.IoU``) and the per-volume scores."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    volumes: VolumeMetrics


def evaluate_volumes(predictor: Predictor, split: VolumeSplit, *, include_background: bool = False) -> VolumeScores:
    """Predict each volume of ``split`` (along its own slice axis) and score it: Dice and HD95 per
    class and volume (MONAI's definitions, see ``evaluation.volume_metrics``), and the semantic
    metrics (mIoU) over every voxel; the label volume's ``ignore_label`` voxels are not scored
    by mIoU."""
    assert split.cache is not None
    names = [c.name for c in split.categories]
    ignore = getattr(split.decoder, "ignore_label", IGNORE_LABEL)
    scores = VolumeMetrics(names, include_background=include_background)
    semantic = SemanticEvaluator(len(names), ignore_label=IGNORE_LABEL if ignore is None else ignore,
                                 class_names=names)
    for index, case in enumerate(split.cases):
        if case.label is None:
            raise DatasetError(case.image, "no label volume to score against")
        image, truth = split.cache.get(index)
        assert truth is not None
        gt = truth.astype(np.int64)
        void = gt == ignore if ignore is not None else np.zeros(gt.shape, bool)
        bad = ~void & ((gt < 0) | (gt >= len(names)))
        if bad.any():
            raise DatasetError(case.label, f"label volume holds values {np.unique(gt[bad])[:10].tolist()} that are "
                                           f"not class indices (0..{len(names) - 1})")
        pred = predict_volume(predictor, Volume(array=image, geometry=case.geometry), axis=case.axis)
        scores.update(case.name, pred, gt, case.geometry.spacing)
        semantic.update(pred, gt)
    sem = semantic.compute()
    metrics = {f"semantic.{k}": float(sem[k]) for k in ("mIoU", "fwIoU", "mACC", "pACC")}
    metrics.update(scores.compute())
    per_class = {"semantic.IoU": {k: v for k, v in sem["IoU"].items() if v == v}}
    return VolumeScores(metrics, per_class, scores)
