"""``predict``: checkpoint + image files or folders -> result files (what the CLI runs).

One bad image never costs the good ones and never passes silently: an image that cannot be read
or prepared (one of the project's input errors) is reported as it happens, skipped, and listed in
the returned ``PredictionReport``; the index files list exactly the images written. Anything else
(a bug, out of memory, Ctrl-C) stops the run, and the index still lists what was written.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mask2former.data.image import list_images, read_image
from mask2former.data.tile_grid import DEFAULT_OVERLAP, DEFAULT_TILE
from mask2former.device import resolve_device
from mask2former.errors import ConfigError, Mask2FormerError, brief
from mask2former.inference.predictor import Predictor, check_batch_size, parse_tasks
from mask2former.inference.tiled_files import predict_tiled_file, wants_tiles
from mask2former.inference.tiling import TileOptions
from mask2former.inference.writers import ResultWriter, check_score_threshold
from mask2former.progress import Progress
from mask2former.weights import load_model

logger = logging.getLogger("mask2former")

SUMMARY_FILES = 10  # failed files named in the one-line summary (each was named as it happened)


@dataclass
class PredictionReport:
    """What a ``predict`` run wrote and what it could not: ``failed`` holds ``(file, reason)``."""

    output: Path
    total: int = 0
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line: ``N of M images failed: <file>: <reason> | ...``, or what was written."""
        if not self.failed:
            return f"wrote results for {len(self.written)} of {self.total} images to {self.output}"
        named = " | ".join(f"{path}: {reason}" for path, reason in self.failed[:SUMMARY_FILES])
        more = len(self.failed) - SUMMARY_FILES
        tail = f" | and {more} more (named above)" if more > 0 else ""
        return (f"{len(self.failed)} of {self.total} images failed: {named}{tail} (results for the other "
                f"{len(self.written)} are in {self.output})")


def _unique_stems(paths: list[Path]) -> list[str]:
    """File stems, made unique with the parent folder name where two inputs share one."""
    stems = [p.stem for p in paths]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [f"{p.parent.name}_{p.stem}" if seen[p.stem] > 1 else p.stem for p in paths]


def _reason(error: Mask2FormerError, path: Path) -> str:
    """The error's message without the leading ``<path>: `` the report already names."""
    message = str(error)
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def predict_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
            task: str | Sequence[str] = "panoptic", *, preset: str | None = None, device: str = "cpu",
            batch_size: int = 1, overlays: bool = True, score_threshold: float = 0.5, strict: bool = False,
            progress: bool = False, tile: int | None = None, overlap: float = DEFAULT_OVERLAP,
            axis: int | str = "auto", precision: str = "fp32", max_frames: int | None = None) -> PredictionReport:
    """Run a checkpoint over images and write results under ``output`` (see ``writers``).

    A bad image is logged, skipped and listed in the report's ``failed``; with ``strict`` the first
    one stops the run by raising its error. Options, the device and the inputs are checked before
    the model loads; the output folder is locked for the run and its index merged (``ResultWriter``).

    ``tile``: georeferenced rasters are predicted tiled (``tile`` pixels, default the model's test
    size ``inference.min_size``, so tiles are not resized; 0: never tile),
    and so is any image larger than ``tile`` when it is given; windows overlap by ``overlap``
    (see ``tiled_files``). Tiled files run after the others; instances scoring below
    ``score_threshold`` are dropped in each tile before merging.

    Medical volumes (``.nii`` / ``.nii.gz`` files, DICOM series folders) are predicted slice by
    slice along ``axis`` into label volumes of the input's format and geometry (``predict_volumes``).

    Videos (``.mp4``, ``.avi``, ... files) and cameras (``camera:N``) are predicted frame by frame
    into an annotated video and per-frame results with instance tracks (``video``), up to
    ``max_frames`` frames each.
    """
    from mask2former.inference.predict_volumes import is_volume_input, predict_volume_files
    from mask2former.inference.video import is_video_input

    if any(is_volume_input(p) for p in inputs):  # label volumes in the input's format, not image results
        done = predict_volume_files(checkpoint, inputs, output, preset=preset, device=device, batch_size=batch_size,
                                    axis=axis, strict=strict, precision=precision)
        return PredictionReport(Path(output), total=len(done.written) + len(done.failed), written=done.written,
                                failed=[(Path(f.path), f.problem) for f in done.failed])
    if any(is_video_input(p) for p in inputs):  # annotated videos and per-frame results with tracks
        return _predict_videos(checkpoint, inputs, output, task, preset=preset, device=device, precision=precision,
                               score_threshold=score_threshold, strict=strict, progress=progress,
                               max_frames=max_frames)
    tasks = parse_tasks(task)
    batch_size = check_batch_size(batch_size)
    score_threshold = check_score_threshold(score_threshold)
    options = _tile_options(tile, overlap, score_threshold)
    resolve_device(device)
    paths = list_images(list(inputs))
    model = load_model(checkpoint, preset=preset, device=device, precision=precision)
    predictor = Predictor(model, device=device, batch_size=batch_size)
    if not tile:  # tiles at the model's test size are predicted at the raster's own resolution
        options = replace(options, tile=max(32, predictor.inference.min_size))
    report = PredictionReport(Path(output), total=len(paths))
    stems = dict(zip(paths, _unique_stems(paths)))
    tiled = [p for p in paths if wants_tiles(p, tile)]
    tiled_set = set(tiled)
    plain = [p for p in paths if p not in tiled_set]
    with ResultWriter(output, predictor.config, tasks, overlays=overlays, score_threshold=score_threshold) as writer:
        try:
            with contextlib.ExitStack() as stack:
                step: Callable[[int], object] | None = None
                if progress:
                    from tqdm.contrib.logging import logging_redirect_tqdm

                    stack.enter_context(logging_redirect_tqdm())
                    step = stack.enter_context(Progress(total=len(paths), desc="predict", unit="img")).update
                _run(predictor, writer, plain, stems, tasks, report, strict=strict, overlays=overlays, step=step)
                _run_tiled(predictor, writer, tiled, stems, tasks, options, report, strict=strict, overlays=overlays,
                           step=step)
        except Mask2FormerError:
            if not strict:
                raise
            logger.warning("stopped at the first bad image (strict): results for %d of %d images are in %s",
                           len(report.written), len(paths), output)
            raise
    logger.info("wrote results for %d of %d images to %s", len(report.written), len(paths), output)
    return report


def _predict_videos(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                    task: str | Sequence[str], *, preset: str | None, device: str, precision: str,
                    score_threshold: float, strict: bool, progress: bool, max_frames: int | None) -> PredictionReport:
    from mask2former.inference.video import is_video_input, predict_video

    tasks = parse_tasks(task)
    if len(tasks) != 1:
        raise ConfigError("a video is annotated for one task: --task semantic, instance or panoptic")
    others = [str(p) for p in inputs if not is_video_input(p)]
    if others:
        raise ConfigError(f"videos and images cannot be mixed in one run ({brief(others)} are not videos)")
    score_threshold = check_score_threshold(score_threshold)
    model = load_model(checkpoint, preset=preset, device=device, precision=precision)
    predictor = Predictor(model, device=device)
    report = PredictionReport(Path(output), total=len(inputs))
    for source in inputs:
        try:
            done = predict_video(predictor, source, output, tasks[0], score_threshold=score_threshold,
                                 max_frames=max_frames, progress=progress)
        except Mask2FormerError as error:
            if strict:
                raise
            logger.error("%s", error)
            report.failed.append((Path(source), str(error)))
            continue
        report.written.append(Path(done.video))
    return report


def _tile_options(tile: int | None, overlap: float, score_threshold: float) -> TileOptions:
    """The tiling options, checked before anything loads (``tile`` None or 0: a placeholder size
    until the model's is known)."""
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
        raise ConfigError(f"--tile: expected a whole number of pixels >= 32 (0: never tile), got {brief(tile)}")
    return TileOptions(tile=tile or DEFAULT_TILE, overlap=overlap, min_score=score_threshold)


def _run_tiled(predictor: Predictor, writer: ResultWriter, paths: list[Path], stems: dict[Path, str],
               tasks: tuple[str, ...], options: TileOptions, report: PredictionReport, *, strict: bool,
               overlays: bool, step: Callable[[int], object] | None) -> None:
    """Predict and write each file tiled, reporting bad ones into ``report``."""
    for path in paths:
        try:
            predict_tiled_file(predictor, writer, path, stems[path], tasks, options, overlays=overlays)
        except Mask2FormerError as error:
            if strict:
                raise
            reason = _reason(error, path)
            report.failed.append((path, reason))
            logger.warning("skipped %s: %s", path, reason)
        else:
            report.written.append(path)
        if step is not None:
            step(1)


def _run(predictor: Predictor, writer: ResultWriter, paths: list[Path], all_stems: dict[Path, str],
         tasks: tuple[str, ...], report: PredictionReport, *, strict: bool, overlays: bool,
         step: Callable[[int], object] | None) -> None:
    """Read, predict and write every image in order, reporting bad ones into ``report``."""
    stems = [all_stems[p] for p in paths]
    fed: list[int] = []  # fed[j]: the path index of the j-th image handed to the predictor
    images: dict[int, np.ndarray] = {}  # by feed position, until written

    def fail(i: int, error: Mask2FormerError) -> None:
        reason = _reason(error, paths[i])
        report.failed.append((paths[i], reason))
        logger.warning("skipped %s: %s", paths[i], reason)
        if step is not None:
            step(1)

    def feed() -> Iterator[np.ndarray]:
        for i, path in enumerate(paths):
            try:
                image = read_image(path)
                predictor.test_size(image.shape[0], image.shape[1], name=str(path))
            except Mask2FormerError as error:
                if strict:
                    raise
                fail(i, error)
                continue
            images[len(fed)] = image
            fed.append(i)
            yield image

    def prepare_failed(j: int, error: Mask2FormerError) -> None:
        images.pop(j, None)
        fail(fed[j], error)

    results = predictor.iter_predict_indexed(feed(), tasks, on_error=None if strict else prepare_failed)
    for j, result in results:
        i, image = fed[j], images.pop(j)
        result.file_name = paths[i].name
        writer.add(result, stems[i], image if overlays else None)
        report.written.append(paths[i])
        if step is not None:
            step(1)
