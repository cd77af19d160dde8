"""Tiled prediction: images of any size through a model that sees one tile at a time.

The windows come from ``tile_grid`` (last ones aligned to the border, none larger than the
image). Each tile goes through the ``Predictor`` on its own, so peak memory is set by the tile,
never by the image.

Semantic: each tile's per-class scores are weighted by a separable linear ramp (> 0 everywhere,
1 in the tile's interior, falling towards its edges across the width of the overlap) and accumulated as a
float32 weighted sum and a weight sum. Across an overlap the two ramps sum to a constant, so the
blend is a linear cross-fade and no seam is left; a model whose output does not depend on the
tile position gives exactly the untiled result. The image is cut into cells by every window
edge; a cell is finished (normalised, handed to the sinks, freed) as soon as the last window
covering it has run, so only the cells along the current overlap strips are held beside one
tile's scores. Instance and panoptic merging live in ``tile_merge``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from mask2former.data.intensity import OnModelScale
from mask2former.data.tile_grid import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    TileGrid,
    Window,
    blend_weights,
    check_tiling,
    tile_windows,
)
from mask2former.inference.predictor import Predictor
from mask2former.inference.tile_merge import (
    InstanceMerger,
    MergedInstance,
    PanopticMerger,
    PanopticSink,
    TiledPanoptic,
)
from mask2former.structures import ImageResult, InstanceResult, PanopticResult, SemanticResult

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "ArraySource", "SemanticBlender", "TileGrid", "TileOptions",
           "TileSource", "TiledResult", "TiledSemantic", "Window", "check_tiling", "predict_tiled",
           "predictor_tile_fn", "tile_windows"]


class TileSource(Protocol):
    """An image read a window at a time (a numpy array, a GeoTIFF)."""

    height: int
    width: int

    def read(self, window: Window) -> np.ndarray:
        """``[h, w, C]`` pixels of ``window`` on the model's scale (``intensity.OnModelScale``:
        mapped once for the whole image, never tile by tile)."""
        ...


@dataclass
class ArraySource:
    """A ``TileSource`` over an ``[H, W, C]`` array already in memory and on the model's scale
    (``intensity.apply_ranges`` with the whole image's ``rule_ranges``)."""

    image: np.ndarray
    height: int = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.height, self.width = self.image.shape[:2]

    def read(self, window: Window) -> np.ndarray:
        return np.ascontiguousarray(self.image[window.slices])


SemanticSink = Callable[[Window, np.ndarray], None]  # (finished block, its blended scores [K, h, w] float32)


class SemanticBlender:
    """Weighted accumulation of per-tile scores over the cells between window edges (see the
    module docstring). Cells covered by one window only skip the accumulators."""

    def __init__(self, grid: TileGrid, sink: SemanticSink) -> None:
        self.grid, self.sink = grid, sink
        ys = sorted({r for r in grid.rows} | {r + grid.tile_height for r in grid.rows})
        xs = sorted({c for c in grid.cols} | {c + grid.tile_width for c in grid.cols})
        self.ys, self.xs = ys, xs
        cover_y = [sum(r <= ys[a] < r + grid.tile_height for r in grid.rows) for a in range(len(ys) - 1)]
        cover_x = [sum(c <= xs[b] < c + grid.tile_width for c in grid.cols) for b in range(len(xs) - 1)]
        self.needed = np.outer(cover_y, cover_x)
        self.pending: dict[tuple[int, int], list] = {}  # cell -> [score sum, weight sum, windows seen]
        self.weights = blend_weights(grid.tile_height, grid.tile_width, grid.ramps)

    def add(self, window: Window, scores: np.ndarray) -> None:
        """Blend one tile's ``scores [K, h, w]`` (float32, at the window's size)."""
        a0, a1 = bisect.bisect_left(self.ys, window.row), bisect.bisect_left(self.ys, window.row + window.height)
        b0, b1 = bisect.bisect_left(self.xs, window.col), bisect.bisect_left(self.xs, window.col + window.width)
        for a in range(a0, a1):
            for b in range(b0, b1):
                cell = Window(self.ys[a], self.xs[b], self.ys[a + 1] - self.ys[a], self.xs[b + 1] - self.xs[b])
                ly, lx = window.local(cell)
                if self.needed[a, b] == 1:
                    self.sink(cell, scores[:, ly, lx])
                    continue
                weight = self.weights[ly, lx]
                acc = self.pending.get((a, b))
                if acc is None:
                    acc = self.pending[(a, b)] = [scores[:, ly, lx] * weight, weight.copy(), 1]
                else:
                    acc[0] += scores[:, ly, lx] * weight
                    acc[1] += weight
                    acc[2] += 1
                if acc[2] == self.needed[a, b]:
                    del self.pending[(a, b)]
                    self.sink(cell, acc[0] / acc[1])


@dataclass
class TiledSemantic:
    """``labels [H, W]`` class ids (uint8, uint16 past 256 classes; None if not kept) and, when
    asked for, the blended ``scores [K, H, W]`` float32."""

    labels: np.ndarray | None
    scores: np.ndarray | None = None


@dataclass
class TiledResult:
    """The merged result of a tiled prediction at the full image size, in compact form: label
    maps of small integer types, instances as bounding-box crops (``to_image_result`` gives the
    usual ``ImageResult`` where the image fits in memory)."""

    height: int
    width: int
    tiles: int
    semantic: TiledSemantic | None = None
    instances: list[MergedInstance] | None = None
    panoptic: TiledPanoptic | None = None
    file_name: str = ""

    def to_image_result(self) -> ImageResult:
        """Full-size ``ImageResult`` (dense ``[N, H, W]`` instance masks): for images that fit in
        memory. Semantic needs its scores kept (``keep_scores=True``)."""
        result = ImageResult(height=self.height, width=self.width, file_name=self.file_name)
        if self.semantic is not None:
            if self.semantic.scores is None:
                raise ValueError("semantic scores were not kept: predict with keep_scores=True")
            scores = torch.from_numpy(self.semantic.scores)
            result.semantic = SemanticResult(scores=scores, labels=scores.argmax(0))
        if self.instances is not None:
            result.instance = instances_to_result(self.instances, self.height, self.width)
        if self.panoptic is not None:
            if self.panoptic.segments is None:
                raise ValueError("the panoptic map was not kept: predict with keep_labels=True")
            result.panoptic = PanopticResult(segments=torch.from_numpy(self.panoptic.segments.astype(np.int32)),
                                             segments_info=list(self.panoptic.segments_info))
        return result


def instances_to_result(instances: Sequence[MergedInstance], height: int, width: int) -> InstanceResult:
    masks = np.zeros((len(instances), height, width), dtype=bool)
    for k, inst in enumerate(instances):
        masks[k][inst.mask.window.slices] = inst.mask.mask
    boxes = torch.tensor([list(inst.mask.box_xyxy) for inst in instances], dtype=torch.float32).reshape(-1, 4)
    return InstanceResult(masks=torch.from_numpy(masks),
                          scores=torch.tensor([inst.score for inst in instances], dtype=torch.float32),
                          labels=torch.tensor([inst.label for inst in instances], dtype=torch.long), boxes=boxes)


TilePredictFn = Callable[[np.ndarray, tuple[str, ...]], ImageResult]  # one tile's pixels -> its results


@dataclass
class TileOptions:
    """How tiles are cut and merged. ``min_score``: instances below it are dropped in each tile
    before merging (a tiled run cannot keep every tile's top-k); ``iou_threshold``: two tiles'
    segments of one class are one object when their masks' IoU inside the tiles' shared region
    reaches it; ``overlap_threshold``: the per-image panoptic rule, applied to merged segments."""

    tile: int = DEFAULT_TILE
    overlap: float = DEFAULT_OVERLAP
    min_score: float = 0.5
    iou_threshold: float = 0.5
    overlap_threshold: float = 0.8

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap)


def predict_tiled(source: TileSource, predict_tile: TilePredictFn, tasks: tuple[str, ...], *,
                  options: TileOptions | None = None,
                  keep_labels: bool = True, keep_scores: bool = False, semantic_sink: SemanticSink | None = None,
                  panoptic_sink: PanopticSink | None = None,
                  on_tile: Callable[[int, int], object] | None = None) -> TiledResult:
    """Run ``predict_tile`` on every window of ``source`` and merge the results (module docstring).

    ``semantic_sink`` receives each finished block's blended scores as soon as it is final, and
    ``panoptic_sink`` each tile core's final segment ids after the last tile (e.g. to write label
    GeoTIFFs window by window); ``keep_labels`` / ``keep_scores`` collect the full-size label and
    segment maps / scores. ``on_tile(done, total)`` reports progress.
    """
    options = options or TileOptions()
    grid = TileGrid(source.height, source.width, options.tile, options.overlap)
    result = TiledResult(height=source.height, width=source.width, tiles=len(grid))
    semantic = TiledSemantic(labels=None) if "semantic" in tasks else None
    blender = None
    if semantic is not None:
        def sink(window: Window, scores: np.ndarray) -> None:
            if semantic.labels is None and keep_labels:
                semantic.labels = np.zeros((grid.height, grid.width), _label_dtype(scores.shape[0]))
            if semantic.scores is None and keep_scores:
                semantic.scores = np.zeros((scores.shape[0], grid.height, grid.width), np.float32)
            if semantic.labels is not None:
                semantic.labels[window.slices] = scores.argmax(0)
            if semantic.scores is not None:
                rows, cols = window.slices
                semantic.scores[:, rows, cols] = scores
            if semantic_sink is not None:
                semantic_sink(window, scores)

        blender = SemanticBlender(grid, sink)
    instances = InstanceMerger(grid, min_score=options.min_score,
                               iou_threshold=options.iou_threshold) if "instance" in tasks else None
    panoptic = PanopticMerger(grid, iou_threshold=options.iou_threshold,
                              overlap_threshold=options.overlap_threshold) if "panoptic" in tasks else None
    try:
        for index in range(len(grid)):
            window = grid.window(index)
            out = predict_tile(source.read(window), tasks)
            if blender is not None:
                assert out.semantic is not None
                blender.add(window, out.semantic.scores.float().cpu().numpy())
            if instances is not None:
                assert out.instance is not None
                instances.add(index, out.instance)
            if panoptic is not None:
                assert out.panoptic is not None
                panoptic.add(index, out.panoptic)
            del out  # one tile's outputs at a time
            if on_tile is not None:
                on_tile(index + 1, len(grid))
    except BaseException:
        if panoptic is not None:
            panoptic.close()
        raise
    result.semantic = semantic
    result.instances = instances.result() if instances is not None else None
    result.panoptic = panoptic.result(sink=panoptic_sink, keep_map=keep_labels) if panoptic is not None else None
    return result


def _label_dtype(num_classes: int) -> type[np.unsignedinteger]:
    return np.uint8 if num_classes <= 256 else np.uint16


def predictor_tile_fn(predictor: Predictor) -> TilePredictFn:
    """A ``TilePredictFn`` running a ``Predictor`` on one tile (batch of one: one tile's logits
    in memory at a time). Tiles come on the model's scale (``TileSource``) and are handed over
    as ``OnModelScale``, so no tile is stretched by its own statistics."""

    def run(tile: np.ndarray, tasks: tuple[str, ...]) -> ImageResult:
        return predictor.predict([OnModelScale(tile)], tasks)[0]

    return run
