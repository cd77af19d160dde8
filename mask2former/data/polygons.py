"""COCO polygons through the training geometry, moved as the official mappers move them.

detectron2 keeps polygon annotations as polygons through augmentation: the mirror and the resize
move their points (``HFlipTransform`` / ``ResizeTransform.apply_coords``), the crop intersects
each polygon with its window and shifts it (fvcore's ``CropTransform.apply_polygons``, shapely),
and the mapper rasterises what is left once, at the output size, with pycocotools. Rasterising at
the original size and resizing the mask moves pixels along every edge instead.

The window clipping here is Sutherland-Hodgman, which gives shapely's intersection region for the
simple rings COCO holds. Where a concave ring leaves and re-enters the window it keeps one ring
joined by zero-width bridges along the window side where shapely returns several; pycocotools
scan-converts by the parity of edge crossings, so a bridge crossed twice adds no pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_util

Polygons = list[np.ndarray]  # the rings of one segment, each [K, 2] float64 (x, y) in pixels
BOX_THRESHOLD = 1e-5  # detectron2's filter_empty_instances: a box side must be longer than this


def polygon_arrays(segmentation: Sequence[Sequence[float]]) -> Polygons:
    """COCO ``[[x0, y0, x1, y1, ...], ...]`` as ``[K, 2]`` float64 arrays (rings of < 3 points,
    which have no area and which pycocotools would read as boxes, are left out)."""
    return [np.asarray(ring, dtype=np.float64).reshape(-1, 2) for ring in segmentation if len(ring) >= 6]


def mirror(polygons: Polygons, width: int) -> Polygons:
    """Left-right mirror in an image ``width`` wide: ``x -> width - x`` (pixel edges, not centres)."""
    return [np.column_stack([width - p[:, 0], p[:, 1]]) for p in polygons]


def rescale(polygons: Polygons, size: tuple[int, int], new_size: tuple[int, int]) -> Polygons:
    """Points of an image of ``size=(h, w)`` resized to ``new_size``; the factor is formed first
    and then multiplied, as ``ResizeTransform.apply_coords`` does (the last bit can differ otherwise)."""
    fy, fx = new_size[0] * 1.0 / size[0], new_size[1] * 1.0 / size[1]
    return [np.column_stack([p[:, 0] * fx, p[:, 1] * fy]) for p in polygons]


def _clip_side(ring: np.ndarray, axis: int, bound: float, keep_low: bool) -> np.ndarray:
    """The part of ``ring`` on one side of the line ``coordinate[axis] == bound`` (points on it count as inside)."""
    inside = ring[:, axis] <= bound if keep_low else ring[:, axis] >= bound
    if inside.all() or not inside.any():
        return ring if inside.all() else ring[:0]
    out = []
    for i in range(len(ring)):
        prev, cur = ring[i - 1], ring[i]
        if inside[i] != inside[i - 1]:
            point = prev + (bound - prev[axis]) / (cur[axis] - prev[axis]) * (cur - prev)
            point[axis] = bound
            out.append(point)
        if inside[i]:
            out.append(cur)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def crop(polygons: Polygons, window: tuple[int, int, int, int]) -> Polygons:
    """Rings intersected with ``window=(y0, x0, h, w)`` and moved to its origin. Rings left with
    no area (outside, or touching the window along a line or a point) are dropped, as shapely's
    intersection leaves nothing or a lower-dimensional shape that fvcore skips."""
    y0, x0, h, w = window
    out = []
    for ring in polygons:
        lo, hi = ring.min(0), ring.max(0)
        if not (lo[0] >= x0 and lo[1] >= y0 and hi[0] <= x0 + w and hi[1] <= y0 + h):  # fast path: inside
            for axis, bound, keep_low in ((0, x0, False), (0, x0 + w, True), (1, y0, False), (1, y0 + h, True)):
                ring = _clip_side(ring, axis, bound, keep_low)
        if len(ring) >= 3 and _area(ring) > 0:
            out.append(ring - np.array([x0, y0], dtype=np.float64))
    return out


def survives(polygons: Polygons) -> bool:
    """detectron2's ``filter_empty_instances`` for polygon masks after a crop: some ring is left
    and the box around the rings (float32, its far corner starting at 0) has both sides longer
    than ``BOX_THRESHOLD``. A ring left too thin to cover a pixel centre keeps an empty mask."""
    if not polygons:
        return False
    points = np.concatenate(polygons).astype(np.float32)
    lo, hi = points.min(0), np.maximum(points.max(0), np.float32(0))
    side = hi - lo
    return bool(side[0] > BOX_THRESHOLD and side[1] > BOX_THRESHOLD)


def rasterise(polygons: Polygons, height: int, width: int) -> np.ndarray:
    """``[height, width]`` bool mask of the union of the rings (pycocotools, as detectron2's
    ``polygons_to_bitmask``); no ring gives an empty mask."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rles = mask_util.frPyObjects([p.reshape(-1).tolist() for p in polygons], height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)
