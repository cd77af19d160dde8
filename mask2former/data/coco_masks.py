"""COCO segmentations (polygons, compressed and uncompressed RLE) checked, then decoded by pycocotools.

pycocotools trusts its input. Tried on bad values, it crashes the process (segfault) on a NaN,
infinite or 1e15 polygon coordinate (it casts to int and allocates along the outline), decodes RLE
counts that do not sum to ``h * w`` into uninitialised memory (a silently wrong mask), overflows on
a negative count or size, and takes an uncompressed RLE dict with four keys, or a polygon list
starting with a 4-number polygon, for boxes. So every segmentation passes ``segmentation_problem``
before pycocotools sees it, and only ``{"size", "counts"}`` dicts and polygons of 3+ points reach it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from mask2former.errors import brief

NUMBERS = frozenset((int, float))
OUTLINE_FACTOR = 100  # a polygon's outline may be this many times (image height + width) long
MAX_RLE_PIXELS = 2**32 - 1  # pycocotools keeps run lengths in uint32
MAX_RLE_CHARS = 7  # characters per compressed count: 35 bits hold any uint32 and its deltas


def segmentation_problem(seg: Any, height: int | None, width: int | None) -> str | None:
    """Why ``seg`` cannot be decoded for an image of ``height x width``, or None. With the size
    unknown (None), only what does not depend on it is checked."""
    if isinstance(seg, list):
        for k, polygon in enumerate(seg):
            problem = polygon_problem(polygon, height, width)
            if problem is not None:
                return f"polygon {k}: {problem}" if len(seg) > 1 else problem
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        return rle_problem(seg, height, width)
    return "missing or unreadable 'segmentation' (expected polygons or an RLE dict with 'counts' and 'size')"


def polygon_problem(polygon: Any, height: int | None, width: int | None) -> str | None:
    """Why a polygon ``[x0, y0, x1, y1, ...]`` cannot be rasterised, or None (fewer than 3 points
    is fine: it has no area and is dropped)."""
    if not isinstance(polygon, list) or len(polygon) % 2:
        return "polygons must be lists of x, y coordinates (an even count)"
    if not set(map(type, polygon)) <= NUMBERS:
        bad = next(v for v in polygon if type(v) not in NUMBERS)
        return f"polygon coordinates must be numbers, got {brief(bad)}"
    try:
        finite = math.isfinite(sum(polygon))
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        return "polygon holds a NaN, infinite or huge coordinate"
    if height is None or width is None or len(polygon) < 6:
        return None
    return _geometry_problem(polygon, height, width)


def _geometry_problem(polygon: list, height: int, width: int) -> str | None:
    """Points far outside the image, or an outline so long (a zigzag) that rasterising it would
    allocate far more than the image: pycocotools walks every unit step of the outline, x5.
    Cheap bounds first (this runs for every polygon of a 1M-annotation file)."""
    margin = max(height, width)
    lo, hi = min(polygon), max(polygon)
    if lo < -margin or hi > 2 * margin:
        xs, ys = polygon[0::2], polygon[1::2]
        x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
        if x_lo < -margin or y_lo < -margin or x_hi > width + margin or y_hi > height + margin:
            return (f"polygon reaches x {x_lo:g}..{x_hi:g}, y {y_lo:g}..{y_hi:g}: far outside the {height}x{width} "
                    "(HxW) image")
    budget = OUTLINE_FACTOR * (height + width)
    if len(polygon) // 2 * (hi - lo) <= budget:  # an upper bound of the outline: no need to measure
        return None
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    outline = float(np.abs(points - np.roll(points, 1, axis=0)).max(axis=1).sum())
    if outline > budget:
        return (f"polygon outline is {outline:,.0f} px long, more than {OUTLINE_FACTOR} times the {height}x{width} "
                "image's height + width")
    return None


def rle_problem(rle: dict, height: int | None, width: int | None) -> str | None:
    """Why an RLE ``{"size": [h, w], "counts": ...}`` cannot be decoded, or None: the size must
    be two positive integers (the image's, when known) and the runs must be non-negative and
    cover exactly ``h * w`` pixels."""
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
        return f"RLE 'size' must be [height, width], got {brief(size)}"
    h, w = size
    if h < 1 or w < 1 or h * w > MAX_RLE_PIXELS:
        return f"RLE size {brief(size)} is not a usable [height, width]"
    if height is not None and [h, w] != [height, width]:
        return f"RLE size {size} differs from the image size [{height}, {width}]"
    counts = rle["counts"]
    if isinstance(counts, list):
        return _uncompressed_problem(counts, h * w)
    if isinstance(counts, str):
        return _compressed_problem(counts, h * w)
    return "RLE 'counts' must be a list (uncompressed) or a string (compressed)"


def _uncompressed_problem(counts: list, pixels: int) -> str | None:
    if not set(map(type, counts)) <= {int}:
        bad = next(v for v in counts if type(v) is not int)
        return f"uncompressed RLE counts must be integers, got {brief(bad)}"
    if counts and min(counts) < 0:
        return f"uncompressed RLE counts hold a negative run ({min(counts)})"
    total = sum(counts)
    if total != pixels:
        return f"uncompressed RLE counts cover {total:,} pixels, the RLE size {pixels:,}"
    return None


def _compressed_problem(counts: str, pixels: int) -> str | None:
    runs = compressed_runs(counts)
    if runs is None:
        return "malformed compressed RLE counts (not the COCO run-length string encoding)"
    if runs.size and runs.min() < 0:
        return "compressed RLE counts decode to a negative run"
    total = int(runs.sum())
    if total != pixels:
        return f"compressed RLE counts cover {total:,} pixels, the RLE size {pixels:,}"
    return None


def compressed_runs(counts: str) -> np.ndarray | None:
    """The run lengths (int64) a COCO compressed RLE string encodes, or None if it is malformed.

    The format (pycocotools' ``rleFrString``): each run is a group of characters ``'0' + c``,
    5 data bits each (least significant first), bit 0x20 set on all but the group's last
    character, bit 0x10 of the last one the sign; from the fourth run on, each is stored as the
    difference to the run two before it."""
    if not counts.isascii():
        return None
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if codes.min() < 0 or codes.max() > 63 or codes[-1] & 0x20:
        return None
    last = (codes & 0x20) == 0  # the last character of each group
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > MAX_RLE_CHARS:
        return None
    position = np.arange(codes.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    negative = (codes[ends] & 0x10) != 0
    values = values - np.where(negative, np.int64(1) << (5 * lengths), 0)
    runs = values.copy()
    runs[3::2] = np.cumsum(values[3::2]) + runs[1] if values.size > 3 else runs[3::2]
    runs[4::2] = np.cumsum(values[4::2]) + runs[2] if values.size > 4 else runs[4::2]
    return runs


def usable_polygons(polygons: list) -> list:
    """The polygons with at least 3 points (fewer has no area; pycocotools reads 2 points as a box)."""
    return [p for p in polygons if len(p) >= 6]


def decode_segmentations(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    """``[N, H, W]`` bool masks of checked COCO segmentations: polygons and uncompressed RLEs are
    encoded in one pycocotools call each, then everything is decoded in one call."""
    rles: list[Any] = [None] * len(segmentations)
    polygons, owners, uncompressed, unc_owners = [], [], [], []
    for i, seg in enumerate(segmentations):
        if isinstance(seg, list):
            usable = usable_polygons(seg)
            polygons.extend(usable)
            owners.extend([i] * len(usable))
            if not usable:
                rles[i] = mask_util.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
        elif isinstance(seg["counts"], list):
            uncompressed.append({"size": [height, width], "counts": seg["counts"]})
            unc_owners.append(i)
        else:
            rles[i] = {"size": [height, width], "counts": seg["counts"]}
    for i, rle in zip(unc_owners, mask_util.frPyObjects(uncompressed, height, width) if uncompressed else []):
        rles[i] = rle
    if polygons:
        parts: dict[int, list] = {}
        for i, rle in zip(owners, mask_util.frPyObjects(polygons, height, width)):
            parts.setdefault(i, []).append(rle)
        for i, group in parts.items():
            rles[i] = group[0] if len(group) == 1 else mask_util.merge(group)
    if not rles:
        return np.zeros((0, height, width), dtype=bool)
    return mask_util.decode(rles).transpose(2, 0, 1).astype(bool)  # [H, W, N] uint8, Fortran order
