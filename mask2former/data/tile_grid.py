"""Windows over images of any size (what the GeoTIFF reader reads and the tiler predicts), and the
blending weights of overlapping windows.

Windows of ``tile x tile`` pixels step by at most ``tile - round(tile * overlap)``, spread evenly
so that the last window of a row or column is aligned to the image border (neighbours overlap by
at least the asked overlap, all by about the same amount); no window is larger than the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mask2former.errors import ConfigError, brief

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.25


@dataclass(frozen=True)
class Window:
    """A rectangle of the full image: rows ``[row, row + height)``, columns ``[col, col + width)``."""

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    def intersect(self, other: Window) -> Window | None:
        r0, c0 = max(self.row, other.row), max(self.col, other.col)
        r1 = min(self.row + self.height, other.row + other.height)
        c1 = min(self.col + self.width, other.col + other.width)
        return Window(r0, c0, r1 - r0, c1 - c0) if r1 > r0 and c1 > c0 else None

    def local(self, inner: Window) -> tuple[slice, slice]:
        """Slices of ``inner`` (inside this window) in this window's own coordinates."""
        return (slice(inner.row - self.row, inner.row - self.row + inner.height),
                slice(inner.col - self.col, inner.col - self.col + inner.width))


def check_tiling(tile: int, overlap: float) -> tuple[int, float]:
    """``tile`` >= 32 pixels (the model's coarsest stride) and ``overlap`` in [0, 0.5] (more
    would predict every pixel more than four times for little gain)."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 32:
        raise ConfigError(f"--tile: expected a whole number of pixels >= 32, got {brief(tile)}")
    try:
        ratio = float(overlap)
    except (TypeError, ValueError):
        raise ConfigError(f"--overlap: expected a number in [0, 0.5], got {brief(overlap)}") from None
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 0.5):
        raise ConfigError(f"--overlap: expected a number in [0, 0.5], got {brief(overlap)}")
    return tile, ratio


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis: the fewest windows whose steps are at most ``stride``,
    spread evenly from 0 to ``size - tile`` (the last one aligned to the border)."""
    if size <= tile:
        return [0]
    n = -(-(size - tile) // stride) + 1
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


@dataclass(frozen=True)
class TileGrid:
    """The windows over a ``height x width`` image, row-major (``index = i * len(cols) + j``)."""

    height: int
    width: int
    tile: int
    overlap: float
    rows: tuple[int, ...] = field(init=False)
    cols: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        stride = max(1, self.tile - round(self.tile * self.overlap))
        object.__setattr__(self, "rows", tuple(tile_starts(self.height, self.tile, stride)))
        object.__setattr__(self, "cols", tuple(tile_starts(self.width, self.tile, stride)))

    @property
    def tile_height(self) -> int:
        return min(self.tile, self.height)

    @property
    def tile_width(self) -> int:
        return min(self.tile, self.width)

    @property
    def ramps(self) -> tuple[int, int]:
        """Widths of the weight ramps along rows and columns: the smallest overlap between
        neighbouring windows on that axis (at least 1), so the cross-fade spans the overlap."""
        return (_smallest_overlap(self.rows, self.tile_height), _smallest_overlap(self.cols, self.tile_width))

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def window(self, index: int) -> Window:
        i, j = divmod(index, len(self.cols))
        return Window(self.rows[i], self.cols[j], self.tile_height, self.tile_width)

    def windows(self) -> list[Window]:
        return [self.window(k) for k in range(len(self))]

    def neighbours(self, index: int) -> list[int]:
        """Indices of the other windows that overlap window ``index``."""
        i, j = divmod(index, len(self.cols))
        rs = _overlapping(self.rows, i, self.tile_height)
        cs = _overlapping(self.cols, j, self.tile_width)
        return [a * len(self.cols) + b for a in rs for b in cs if (a, b) != (i, j)]

    def core(self, index: int) -> Window:
        """The part of window ``index`` nearer its centre than any other window's (split at the
        middle of each overlap); the cores partition the image."""
        i, j = divmod(index, len(self.cols))
        r0, r1 = _core_span(self.rows, i, self.tile_height, self.height)
        c0, c1 = _core_span(self.cols, j, self.tile_width, self.width)
        return Window(r0, c0, r1 - r0, c1 - c0)


def full_window(height: int, width: int) -> Window:
    return Window(0, 0, height, width)


def tile_windows(height: int, width: int, tile: int, overlap: float) -> list[Window]:
    """The windows covering a ``height x width`` image, row-major."""
    return TileGrid(height, width, tile, overlap).windows()


def _overlapping(starts: Sequence[int], i: int, size: int) -> list[int]:
    return [k for k, s in enumerate(starts) if s < starts[i] + size and starts[i] < s + size]


def _smallest_overlap(starts: Sequence[int], size: int) -> int:
    return max(1, min((a + size - b for a, b in zip(starts, starts[1:])), default=1))


def _core_span(starts: Sequence[int], i: int, size: int, total: int) -> tuple[int, int]:
    lo = 0 if i == 0 else (starts[i] + starts[i - 1] + size) // 2
    hi = total if i == len(starts) - 1 else (starts[i + 1] + starts[i] + size) // 2
    return lo, hi


def ramp_1d(length: int, ramp: int) -> np.ndarray:
    """``[length]`` float32 weights: ``(d + 1) / (ramp + 1)`` at distance ``d`` from the nearer
    end, capped at 1. Two windows overlapping by ``ramp`` pixels get weights that sum to 1 at
    every pixel of the overlap; the smallest weight is ``1 / (ramp + 1)`` > 0."""
    d = np.minimum(np.arange(length), np.arange(length)[::-1])
    return np.minimum((d + 1) / (ramp + 1), 1.0).astype(np.float32)


def blend_weights(height: int, width: int, ramps: tuple[int, int]) -> np.ndarray:
    """``[height, width]`` separable ramp (see ``ramp_1d``), ``ramps`` along rows and columns."""
    return np.outer(ramp_1d(height, ramps[0]), ramp_1d(width, ramps[1]))
