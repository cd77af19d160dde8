"""``predict`` on files too large for one pass: georeferenced rasters and, with ``--tile``, any
image larger than the tile.

Rasters are read a window at a time (``data.geotiff.RasterSource``) and give, under
``geo/`` beside the usual outputs: ``<stem>_semantic.tif`` (class ids, written block by block as
the tiler finishes blocks), ``<stem>_panoptic.tif`` (segment ids, written tile core by tile core
once the segments are merged) and ``<stem>_instances.geojson`` (polygons in the raster's CRS).
The usual PNG / JSON outputs are written for images up to ``USUAL_OUTPUT_MAX_PIXELS`` (a
full-size panoptic PNG of a 20000 x 20000 raster would take gigabytes to encode); a larger
raster gets its georeferenced outputs only, and no image-sized map is held.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from mask2former.data.image import open_image, read_image
from mask2former.data.intensity import apply_ranges, rule_ranges
from mask2former.errors import ImageError
from mask2former.inference.predictor import Predictor
from mask2former.inference.tile_merge import PanopticSink
from mask2former.inference.tiling import (
    ArraySource,
    SemanticSink,
    TiledResult,
    TileOptions,
    TileSource,
    predict_tiled,
    predictor_tile_fn,
)
from mask2former.inference.writers import ResultWriter

logger = logging.getLogger("mask2former")

USUAL_OUTPUT_MAX_PIXELS = 64_000_000  # PNG / COCO JSON outputs of a tiled image up to this size
OVERLAY_MAX_PIXELS = 16_000_000  # overlays drawn for tiled images up to this size


def wants_tiles(path: Path, tile: int | None) -> bool:
    """Whether ``path`` is predicted tiled: a georeferenced raster unless ``tile`` is 0, any
    image larger than ``tile`` when given (an unreadable file is left to the usual path, which
    reports it)."""
    from mask2former.data.geotiff import is_georeferenced_raster

    if tile == 0:
        return False
    if is_georeferenced_raster(path):
        return True
    if tile is None:
        return False
    try:
        with open_image(path) as image:
            width, height = image.size
    except ImageError:
        return False
    return max(height, width) > tile


def predict_tiled_file(predictor: Predictor, writer: ResultWriter, path: Path, stem: str, tasks: tuple[str, ...],
                       options: TileOptions, *, overlays: bool) -> None:
    """Predict one file tiled and write its results (``ImageError`` for a bad file; whatever it
    wrote is removed then)."""
    from mask2former.data.geotiff import is_georeferenced_raster

    if not is_georeferenced_raster(path):
        image = read_image(path)
        mapped = apply_ranges(image, rule_ranges(image, predictor.pixels, str(path)), str(path))  # once, whole
        result = _predict(predictor, ArraySource(mapped), tasks, options, keep_labels=True)
        result.file_name = path.name
        small = image.shape[0] * image.shape[1] <= OVERLAY_MAX_PIXELS
        writer.add_tiled(result, stem, image if overlays and small else None)
        return
    written: list[Path] = []
    try:
        _predict_raster(predictor, writer, path, stem, tasks, options, overlays=overlays, written=written)
    except BaseException:
        for file in written:
            with contextlib.suppress(OSError):
                file.unlink()
        raise


def _predict(predictor: Predictor, source: TileSource, tasks: tuple[str, ...], options: TileOptions, *,
             keep_labels: bool, semantic_sink: SemanticSink | None = None,
             panoptic_sink: PanopticSink | None = None) -> TiledResult:
    return predict_tiled(source, predictor_tile_fn(predictor), tasks, options=options, keep_labels=keep_labels,
                         semantic_sink=semantic_sink, panoptic_sink=panoptic_sink)


def _predict_raster(predictor: Predictor, writer: ResultWriter, path: Path, stem: str, tasks: tuple[str, ...],
                    options: TileOptions, *, overlays: bool, written: list[Path]) -> None:
    from mask2former.data.geotiff import RasterSource
    from mask2former.data.tile_grid import Window, full_window
    from mask2former.inference.georef_writers import LabelGeoTiff, label_dtype, write_instances_geojson

    geo = writer.out / "geo"
    geo.mkdir(exist_ok=True)
    with RasterSource(path, predictor.pixels) as source:
        info = source.info
        pixels = info.height * info.width
        usual = pixels <= USUAL_OUTPUT_MAX_PIXELS
        tifs: dict[str, LabelGeoTiff] = {}
        if "semantic" in tasks:
            written.append(geo / f"{stem}_semantic.tif")
            tifs["semantic"] = LabelGeoTiff(written[-1], info, dtype=label_dtype(predictor.config.num_classes - 1))

        def semantic_sink(window: Window, scores: np.ndarray) -> None:
            tifs["semantic"].write(window, scores.argmax(0))

        def panoptic_sink(window: Window, segments: np.ndarray, top: int) -> None:
            if "panoptic" not in tifs:  # the id type is known once the segments are
                written.append(geo / f"{stem}_panoptic.tif")
                tifs["panoptic"] = LabelGeoTiff(written[-1], info, dtype=label_dtype(top))
            tifs["panoptic"].write(window, segments)

        try:
            result = _predict(predictor, source, tasks, options, keep_labels=usual,
                              semantic_sink=semantic_sink if "semantic" in tasks else None,
                              panoptic_sink=panoptic_sink if "panoptic" in tasks else None)
        finally:
            for tif in tifs.values():
                tif.close()
        result.file_name = path.name
        if result.instances is not None:
            written.append(geo / f"{stem}_instances.geojson")
            write_instances_geojson(written[-1], result.instances, info, predictor.config.class_names)
        if usual:
            image = source.read(full_window(info.height, info.width)) if overlays and pixels <= OVERLAY_MAX_PIXELS \
                else None
            writer.add_tiled(result, stem, image)
        else:
            logger.info("%s: %d x %d raster: wrote its georeferenced outputs in %s only (the PNG / JSON outputs "
                        "stop at %d pixels)", path, info.height, info.width, geo, USUAL_OUTPUT_MAX_PIXELS)
