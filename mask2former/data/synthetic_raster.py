"""A synthetic GeoTIFF scene (rasterio, extra ``geo``): an image raster and a label raster in
UTM zone 33N (EPSG:32633) with a real transform, and objects placed *across the borders* of the
windows a given tile size cuts, so tests and demos exercise the tiled merge on real files.

Classes: ``field`` and ``water`` (stuff; a river crosses the scene) and ``building`` (rectangles)
and ``tree`` (discs) (things; never touching, so each connected component of the label raster is
one object). Both rasters are written a strip at a time, so a 20000 x 20000 scene never has to be
in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.tile_grid import DEFAULT_OVERLAP, TileGrid

CLASSES = ({"name": "field", "isthing": False}, {"name": "water", "isthing": False},
           {"name": "building", "isthing": True}, {"name": "tree", "isthing": True})
COLOURS = np.array([(150, 170, 90), (40, 80, 170), (200, 90, 70), (30, 110, 40)], dtype=np.float32)
EPSG = 32633
ORIGIN = (500_000.0, 5_200_000.0)  # x, y of the top-left corner, metres
RESOLUTION = 0.5  # metres per pixel
STRIP = 256  # rows written at a time: one row of the 256 x 256 blocks


@dataclass(frozen=True)
class RasterObject:
    """One thing: class index, kind (``rect`` / ``disc``) and its pixel box (rows ``[row0, row1)``,
    columns ``[col0, col1)``; a disc is the circle inscribed in its box)."""

    label: int
    kind: str
    row0: int
    col0: int
    row1: int
    col1: int

    def mask(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``[len(rows), len(cols)]`` bool of this object over a grid of pixel centres."""
        r, c = rows[:, None] + 0.5, cols[None, :] + 0.5
        if self.kind == "rect":
            return (r >= self.row0) & (r < self.row1) & (c >= self.col0) & (c < self.col1)
        cy, cx = (self.row0 + self.row1) / 2, (self.col0 + self.col1) / 2
        radius = (self.row1 - self.row0) / 2
        return (r - cy) ** 2 + (c - cx) ** 2 < radius ** 2


@dataclass
class SyntheticRaster:
    """What ``write_synthetic_raster`` wrote: the two rasters, the DATA.yaml draft, the things."""

    image: Path
    label: Path
    data_yaml: Path
    objects: list[RasterObject] = field(default_factory=list)
    height: int = 0
    width: int = 0


def border_objects(height: int, width: int, tile: int, overlap: float, size: int) -> list[RasterObject]:
    """Things of about ``size`` pixels centred on the windows' edges: on every vertical and
    horizontal border between neighbouring windows, alternating buildings and trees, and at
    every corner where four windows meet. Objects closer than ``size`` to one already placed
    are skipped, so none touch."""
    grid = TileGrid(height, width, tile, overlap)
    centres: list[tuple[int, int]] = []
    edges_r = [r + grid.tile_height for r in grid.rows[:-1]]
    edges_c = [c + grid.tile_width for c in grid.cols[:-1]]
    mids_r = [r + grid.tile_height // 2 for r in grid.rows]
    mids_c = [c + grid.tile_width // 2 for c in grid.cols]
    centres += [(r, c) for r in mids_r for c in edges_c]
    centres += [(r, c) for r in edges_r for c in mids_c]
    centres += [(r, c) for r in edges_r for c in edges_c]
    objects: list[RasterObject] = []
    placed: dict[tuple[int, int], list[tuple[int, int]]] = {}  # centres by cell of 2 * size: near ones only
    half, cell = size // 2, 2 * size
    for k, (r, c) in enumerate(centres):
        r, c = min(max(r, half + 1), height - half - 1), min(max(c, half + 1), width - half - 1)
        near = (p for dr in (-1, 0, 1) for dc in (-1, 0, 1) for p in placed.get((r // cell + dr, c // cell + dc), []))
        if any(abs(r - pr) < cell and abs(c - pc) < cell for pr, pc in near):
            continue
        label, kind = (2, "rect") if k % 2 == 0 else (3, "disc")
        objects.append(RasterObject(label, kind, r - half, c - half, r + half, c + half))
        placed.setdefault((r // cell, c // cell), []).append((r, c))
    return objects


def _river(rows: np.ndarray, cols: np.ndarray, height: int, width: int) -> np.ndarray:
    """A diagonal band of water, about 6% of the width, avoiding nothing (objects sit on top)."""
    centre = width * 0.15 + rows[:, None] * (0.2 * width / max(height, 1))
    return np.abs(cols[None, :] - centre) < 0.03 * width


def _strip(rows: np.ndarray, width: int, height: int, objects: list[RasterObject], bands: int, dtype: str,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cols = np.arange(width)
    label = np.where(_river(rows, cols, height, width), 1, 0).astype(np.uint8)
    for o in objects:
        if o.row1 <= rows[0] or o.row0 > rows[-1]:
            continue
        c0, c1 = max(o.col0, 0), min(o.col1, width)
        label[:, c0:c1][o.mask(rows, cols[c0:c1])] = o.label
    pixels = COLOURS[label].transpose(2, 0, 1)  # [3, h, w]
    pixels = pixels + rng.normal(0, 12, size=pixels.shape).astype(np.float32)
    if bands == 4:  # a near-infrared band: high over vegetation
        nir = np.where(label == 3, 220, np.where(label == 0, 170, np.where(label == 1, 20, 90))).astype(np.float32)
        pixels = np.concatenate([pixels, nir[None] + rng.normal(0, 8, size=nir.shape).astype(np.float32)])
    if dtype == "uint16":  # 12-bit sensor counts
        return np.clip(pixels * 16, 0, 4095).astype(np.uint16), label
    return np.clip(pixels, 0, 255).astype(np.uint8), label


def write_synthetic_raster(out_dir: str | os.PathLike, *, height: int = 1000, width: int = 1200, tile: int = 256,
                           overlap: float = DEFAULT_OVERLAP, bands: int = 3, dtype: str = "uint8",
                           object_size: int | None = None, seed: int = 0, held_out: bool = True) -> SyntheticRaster:
    """``image.tif`` (``bands`` 3 or 4, ``dtype`` uint8 or uint16), ``label.tif`` (uint8 class
    indices), a smaller held-out pair ``val_image.tif`` / ``val_label.tif``, and ``DATA.yaml``
    (format ``geotiff``) under ``out_dir``; things straddle the borders of ``tile``-pixel windows
    with ``overlap`` (see ``border_objects``)."""
    if bands not in (3, 4) or dtype not in ("uint8", "uint16"):
        raise ValueError(f"bands must be 3 or 4 and dtype uint8 or uint16, got {bands}, {dtype!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = object_size or max(8, tile // 5)
    objects = border_objects(height, width, tile, overlap, size)
    image_path, label_path = _write_pair(out, "", height, width, objects, bands, dtype, seed)
    if not held_out:  # one raster alone (a benchmark's): DATA.yaml's val is the raster itself
        data_yaml = out / "DATA.yaml"
        data_yaml.write_text(_data_yaml(tile, bands, val_prefix=""), encoding="utf-8")
        return SyntheticRaster(image=image_path, label=label_path, data_yaml=data_yaml, objects=objects,
                               height=height, width=width)
    # a held-out scene for evaluation: another size, so the things sit elsewhere, and other noise
    val_height, val_width = max(tile, height * 3 // 5), max(tile, width * 3 // 5)
    _write_pair(out, "val_", val_height, val_width, border_objects(val_height, val_width, tile, overlap, size),
                bands, dtype, seed + 1)
    data_yaml = out / "DATA.yaml"
    data_yaml.write_text(_data_yaml(tile, bands), encoding="utf-8")
    return SyntheticRaster(image=image_path, label=label_path, data_yaml=data_yaml, objects=objects,
                           height=height, width=width)


def _write_pair(out: Path, prefix: str, height: int, width: int, objects: list[RasterObject], bands: int,
                dtype: str, seed: int) -> tuple[Path, Path]:
    """``{prefix}image.tif`` and ``{prefix}label.tif``, written a strip of rows at a time."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window as RioWindow

    common: dict[str, Any] = {"driver": "GTiff", "height": height, "width": width, "crs": f"EPSG:{EPSG}",
                              "transform": Affine(RESOLUTION, 0.0, ORIGIN[0], 0.0, -RESOLUTION, ORIGIN[1]),
                              "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    if height >= 256 and width >= 256:
        common.update(tiled=True, blockxsize=256, blockysize=256)
    image_path, label_path = out / f"{prefix}image.tif", out / f"{prefix}label.tif"
    with rasterio.open(image_path, "w", count=bands, dtype=dtype, **common) as image, \
            rasterio.open(label_path, "w", count=1, dtype="uint8", nodata=255, **common) as label:
        for k, row in enumerate(range(0, height, STRIP)):
            rows = np.arange(row, min(row + STRIP, height))
            pixels, labels = _strip(rows, width, height, objects, bands, dtype, np.random.default_rng([seed, k]))
            window = RioWindow(0, row, width, len(rows))
            image.write(pixels, window=window)
            label.write(labels[None], window=window)
    return image_path, label_path


def _data_yaml(tile: int, bands: int, val_prefix: str = "val_") -> str:
    classes = "\n".join(f"  - {{name: {c['name']}, isthing: {str(c['isthing']).lower()}}}" for c in CLASSES)
    channels = f"channels: {bands}             # every band feeds the model\n" if bands != 3 else ""
    return (f"format: geotiff\ntrain:\n  images: image.tif      # a raster, or a folder of rasters\n"
            f"  masks: label.tif       # label raster(s): class index per pixel, 255 = ignore\n"
            f"val:\n  images: {val_prefix}image.tif\n  masks: {val_prefix}label.tif\n"
            f"classes:\n{classes}\nignore_label: 255\n{channels}"
            f"tile: {tile}              # training window side, pixels\ntiles_per_raster: 64\n")
