"""GeoTIFF rasters (rasterio, extra ``geo``): metadata, windows, and training windows of image +
label rasters, without ever loading a full raster.

Every band reaches the model (``pixels.channels`` = the band count, e.g. 4 for RGB + NIR). The
model's intensity rule (``data.intensity``) maps them with per-band ranges fixed once per raster
from a decimated read (``raster_ranges``), so that every window of a raster is mapped alike, and
the mapped values are rounded to uint8 (``raster_pixels``): a training window, an evaluation
window and a predicted tile of the same pixels give the model the same input.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.config import CategoryInfo, PixelConfig
from mask2former.data.datasets import DatasetSplit, Record
from mask2former.data.files import NOT_FOUND, path_problem
from mask2former.data.intensity import apply_ranges, match_channels, rule_ranges
from mask2former.data.semantic import INVALID, VOID, LabelMapDecoder
from mask2former.data.tile_grid import Window
from mask2former.errors import DatasetError, ImageError
from mask2former.formats import IGNORE_LABEL

RASTER_SUFFIXES = (".tif", ".tiff")
STATS_SIDE = 1024  # the decimated read that fixes a non-8-bit raster's intensity ranges


@dataclass(frozen=True)
class RasterInfo:
    """What a raster's header says: size, bands, pixel type, CRS (WKT; None if unset) and the
    affine pixel -> CRS transform as GDAL's six numbers ``(a, b, c, d, e, f)``:
    ``x = a * col + b * row + c``, ``y = d * col + e * row + f``."""

    path: Path
    height: int
    width: int
    count: int
    dtype: str
    crs: str | None
    transform: tuple[float, float, float, float, float, float]
    nodata: float | None = None

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None or self.transform != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    def affine(self) -> Any:
        from affine import Affine

        return Affine(*self.transform)


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError:
        raise ImageError("reading GeoTIFF rasters needs rasterio: pip install 'mask2former[geo]'") from None
    return rasterio


@contextmanager
def open_raster(path: str | os.PathLike, *, error: type[ImageError] | type[DatasetError] = ImageError,
                what: str = "raster") -> Iterator[Any]:
    """The open rasterio dataset of ``path``; failures become ``error`` naming the file."""
    rasterio = _rasterio()
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        text = f"{what} file not found" if problem == NOT_FOUND else problem
        raise (DatasetError(path, text) if error is DatasetError else ImageError(f"{path}: {text}"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # plain TIFFs are fine
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as dataset:
                yield dataset
    except rasterio.errors.RasterioError as e:
        text = f"cannot read the {what} ({str(e)[:200]})"
        raise (DatasetError(path, text) if error is DatasetError else ImageError(f"{path}: {text}")) from None


def info_of(dataset: Any, path: str | os.PathLike) -> RasterInfo:
    crs = dataset.crs.to_wkt() if dataset.crs is not None else None
    return RasterInfo(path=Path(path), height=dataset.height, width=dataset.width, count=dataset.count,
                      dtype=str(dataset.dtypes[0]), crs=crs, transform=tuple(dataset.transform.to_gdal()[i]
                                                                             for i in (1, 2, 0, 4, 5, 3)),
                      nodata=dataset.nodata)


def read_raster_info(path: str | os.PathLike) -> RasterInfo:
    """The raster's header (no pixel is read)."""
    with open_raster(path) as dataset:
        return info_of(dataset, path)


def is_georeferenced_raster(path: str | os.PathLike) -> bool:
    """A ``.tif``/``.tiff`` file rasterio reads and that carries a CRS or a non-identity transform
    (False, never an error, for anything else: the caller reads it as a plain image)."""
    if Path(path).suffix.lower() not in RASTER_SUFFIXES:
        return False
    try:
        return read_raster_info(path).georeferenced
    except ImageError:
        return False


def read_window(dataset: Any, window: Window, bands: Sequence[int] | None = None) -> np.ndarray:
    """``[C, h, w]`` pixels of ``window`` (1-based ``bands``, default all), as stored."""
    from rasterio.windows import Window as RioWindow

    rio = RioWindow(window.col, window.row, window.width, window.height)
    return dataset.read(list(bands) if bands is not None else None, window=rio)


def raster_ranges(dataset: Any, pixels: PixelConfig, source: str = "raster"
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-band ranges ``pixels.intensity`` maps to 0..255 (``intensity.rule_ranges``), fixed
    once per raster from a read decimated to at most ``STATS_SIDE`` pixels a side (nodata and
    non-finite pixels left out), so that every window of a raster is mapped alike; None where
    values pass as they are (8-bit rasters, the ``dataset`` rule)."""
    if dataset.dtypes[0] == "uint8" or pixels.intensity == "dataset":
        return None
    scale = max(1, -(-max(dataset.height, dataset.width) // STATS_SIDE))
    shape = (dataset.count, max(1, dataset.height // scale), max(1, dataset.width // scale))
    sample = dataset.read(out_shape=shape).reshape(dataset.count, -1).T  # [N, C]
    valid = np.isfinite(sample).all(1)
    if dataset.nodata is not None:
        valid &= (sample != dataset.nodata).all(1)
    if not valid.any():
        raise ImageError(f"{source}: every pixel of the raster's overview is nodata or not finite")
    return rule_ranges(sample[valid][:, None, :], pixels, source)


def raster_pixels(bands: np.ndarray, ranges: tuple[np.ndarray, np.ndarray] | None, *, nodata: float | None = None,
                  source: str = "raster") -> np.ndarray:
    """``[C, h, w]`` raster pixels -> ``[h, w, C]`` on the model's scale: every band, 8-bit as
    stored; other types through the raster's ``ranges`` (``raster_ranges``) and rounded to uint8,
    so training, evaluation and prediction hand the model the same values (a ``Predictor`` passes
    8-bit images unchanged) and no window is stretched by its own statistics; raw float32 where
    ``ranges`` is None (the ``dataset`` rule). Nodata and non-finite pixels map to the range's low end."""
    image = np.moveaxis(bands, 0, -1)
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if ranges is None:
        return np.ascontiguousarray(image, dtype=np.float32)
    bad = ~np.isfinite(image) if image.dtype.kind == "f" else np.zeros(image.shape, bool)
    if nodata is not None:
        bad |= image == nodata
    if bad.any():
        image = np.where(bad, ranges[0].astype(image.dtype), image)
    mapped = apply_ranges(image, ranges, source)
    return np.rint(mapped).astype(np.uint8)


class RasterSource:
    """A ``TileSource`` over a raster on disk: each window is read when asked for, every band,
    mapped by ``pixels``' intensity rule with ranges fixed once for the raster (use ``with``)."""

    def __init__(self, path: str | os.PathLike, pixels: PixelConfig | None = None) -> None:
        self.path = Path(path)
        self.pixels = pixels or PixelConfig()
        self._context = open_raster(self.path)
        self.dataset = self._context.__enter__()
        try:
            self.info = info_of(self.dataset, self.path)
            match_channels(np.zeros((1, 1, self.info.count), np.uint8), self.pixels.channels, str(self.path))
            self.ranges = raster_ranges(self.dataset, self.pixels, str(self.path))
        except BaseException:
            self.close()
            raise
        self.height, self.width = self.info.height, self.info.width

    def read(self, window: Window) -> np.ndarray:
        rasterio = _rasterio()
        try:
            bands = read_window(self.dataset, window)
        except rasterio.errors.RasterioError as e:
            raise ImageError(f"{self.path}: cannot read window {window} ({str(e)[:200]})") from None
        return raster_pixels(bands, self.ranges, nodata=self.info.nodata, source=str(self.path))

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- training windows


@dataclass
class RasterLabelDecoder(LabelMapDecoder):
    """``LabelMapDecoder`` reading the record's window of a label raster (class index per pixel,
    ``ignore_label`` void) instead of a whole PNG."""

    def classes(self, record: Record, height: int, width: int) -> np.ndarray:
        assert record.mask_path is not None
        window: Window = record.extra["window"]
        with open_raster(record.mask_path, error=DatasetError, what="label raster") as dataset:
            values = read_window(dataset, window, [1])[0].astype(np.int64)
        mapped = np.full(values.shape, INVALID, dtype=np.int32)
        for value, index in self.table.items():
            mapped[values == value] = index
        if (mapped == INVALID).any():
            bad = np.unique(values[mapped == INVALID]).tolist()
            raise DatasetError(record.mask_path, f"label raster holds values {bad[:10]} in window {window} that "
                                                 f"are not class indices{self.hint}")
        return mapped


@dataclass
class RasterWindowSplit(DatasetSplit):
    """A ``DatasetSplit`` whose records are windows of rasters: ``load`` reads the record's
    window of the image raster (``record.extra["window"]``) and of its label raster only, the
    image mapped by ``raster_pixels`` with the split's ``pixels`` and each raster's ranges."""

    ranges: dict[tuple[str, str], tuple[np.ndarray, np.ndarray] | None] = field(default_factory=dict)

    def _image(self, record: Record) -> np.ndarray:
        window: Window = record.extra["window"]
        try:
            with open_raster(record.image_path, error=DatasetError) as dataset:
                key = (str(record.image_path), repr(self.pixels))
                if key not in self.ranges:
                    self.ranges[key] = raster_ranges(dataset, self.pixels, str(record.image_path))
                return raster_pixels(read_window(dataset, window), self.ranges[key], nodata=dataset.nodata,
                                     source=str(record.image_path))
        except ImageError as e:
            raise DatasetError(record.image_path, str(e).removeprefix(f"{record.image_path}: ")) from None


def _pairs(images: Path, labels: Path) -> list[tuple[Path, Path]]:
    """(image raster, label raster) pairs: two files, or two folders matched by stem."""
    if images.is_file() and labels.is_file():
        return [(images, labels)]
    if images.is_file() or labels.is_file():
        raise DatasetError(labels if images.is_file() else images,
                           f"images {images} and masks {labels} must be two raster files or two folders of rasters")
    found = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in RASTER_SUFFIXES}
    if not found:
        raise DatasetError(images, f"no raster files ({', '.join(RASTER_SUFFIXES)}) found")
    pairs = []
    for stem, path in found.items():
        label = next((labels / f"{stem}{s}" for s in RASTER_SUFFIXES if (labels / f"{stem}{s}").is_file()), None)
        if label is None:
            raise DatasetError(path, f"label raster not found: expected {labels / stem}.tif")
        pairs.append((path, label))
    return pairs


def _check_pair(image: RasterInfo, label: RasterInfo) -> None:
    if (image.height, image.width) != (label.height, label.width):
        raise DatasetError(label.path, f"label raster is {label.height}x{label.width} (HxW) but its image "
                                       f"{image.path} is {image.height}x{image.width}")
    if image.georeferenced and label.georeferenced and (image.crs != label.crs or not np.allclose(
            image.transform, label.transform, rtol=0, atol=1e-9 * max(1.0, *map(abs, image.transform)))):
        raise DatasetError(label.path, f"label raster's georeference (CRS, transform) differs from its image "
                                       f"{image.path}'s: the pixels would not line up")
    if label.count != 1:
        raise DatasetError(label.path, f"label raster has {label.count} bands; expected one band of class indices")


def _windows(height: int, width: int, size: int, count: int, sampling: str, rng: np.random.Generator
             ) -> list[Window]:
    if sampling == "grid":  # a partition: every pixel scored once, windows of near-equal sides <= size
        rows, cols = _even_cuts(height, size), _even_cuts(width, size)
        return [Window(r0, c0, r1 - r0, c1 - c0) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    if height <= size and width <= size:
        return [Window(0, 0, height, width)]
    h, w = min(size, height), min(size, width)
    return [Window(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
            for _ in range(count)]


def _even_cuts(length: int, size: int) -> list[int]:
    n = -(-length // size)
    return [round(i * length / n) for i in range(n + 1)]


def read_geotiff_split(images: str | os.PathLike, labels: str | os.PathLike, *, classes: list[CategoryInfo],
                       ignore_label: int = IGNORE_LABEL, tile: int = 512, tiles_per_raster: int = 64,
                       sampling: str = "random", seed: int = 0, name: str = "") -> RasterWindowSplit:
    """Windows of image + label rasters (two files, or two folders of rasters matched by stem).
    A raster no larger than ``tile`` is one record. A larger one gives, with ``sampling``
    "random" (training), ``tiles_per_raster`` windows of ``tile`` pixels at positions drawn once
    from ``seed`` (fixed, so a resumed run sees the same samples; the loader's augmentation adds
    its own randomness); with "grid" (evaluation), the fewest windows of near-equal sides, at most
    ``tile``, that partition the raster (every pixel scored once). Label pixels are class
    indices; thing classes are split into instances by connected components."""
    if sampling not in ("random", "grid"):
        raise DatasetError(images, f"sampling: expected 'random' or 'grid', got {sampling!r}")
    if not classes:
        raise DatasetError(labels, "format 'geotiff' needs a non-empty class list")
    if ignore_label < len(classes):
        raise DatasetError(labels, f"ignore_label {ignore_label} is also the index of class "
                                   f"{classes[ignore_label].name!r}")
    rng = np.random.default_rng(seed)
    records = []
    for image_path, label_path in _pairs(Path(images), Path(labels)):
        with open_raster(image_path, error=DatasetError) as dataset:
            image = info_of(dataset, image_path)
        with open_raster(label_path, error=DatasetError, what="label raster") as dataset:
            _check_pair(image, info_of(dataset, label_path))
        for k, win in enumerate(_windows(image.height, image.width, tile, tiles_per_raster, sampling, rng)):
            records.append(Record(image_path=image_path, image_id=f"{image_path.stem}_{k}", height=win.height,
                                  width=win.width, mask_path=label_path, extra={"window": win}))
    table = {v: v for v in range(len(classes))}
    table[ignore_label] = VOID
    decoder = RasterLabelDecoder(table, [c.isthing for c in classes], split_things=True,
                                 hint=f" 0..{len(classes) - 1} ({ignore_label} = ignore)")
    categories = [CategoryInfo(id=i, name=c.name, isthing=c.isthing, color=c.color) for i, c in enumerate(classes)]
    return RasterWindowSplit(name=name, categories=categories, records=records, decoder=decoder, format="geotiff")
