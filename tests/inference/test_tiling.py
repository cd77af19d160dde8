"""Tiled prediction: windows, seamless semantic blending, and instance / panoptic merging of
objects cut by tile borders (hand-made tile results, a colour oracle on a real GeoTIFF, and the
tiny Mask2Former)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mask2former.data.tile_grid import TileGrid, Window, blend_weights, check_tiling, ramp_1d, tile_windows
from mask2former.errors import ConfigError
from mask2former.inference.postprocess import masks_to_boxes
from mask2former.inference.predictor import Predictor
from mask2former.inference.tile_merge import InstanceMerger, MaskCrop, PanopticMerger
from mask2former.inference.tiling import (
    ArraySource,
    SemanticBlender,
    TileOptions,
    predict_tiled,
    predictor_tile_fn,
)
from mask2former.structures import ImageResult, InstanceResult, PanopticResult, Segment, SemanticResult
from tests.conftest import random_image

ALL = ("semantic", "instance", "panoptic")


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(100, 100, 32, 0.25), (1000, 731, 256, 0.25),
                                                         (50, 300, 64, 0.5), (257, 256, 256, 0.0),
                                                         (31, 40, 64, 0.25), (513, 1100, 128, 0.1)])
def test_windows_cover_the_image_exactly(h, w, tile, overlap):
    grid = TileGrid(h, w, tile, overlap)
    windows = tile_windows(h, w, tile, overlap)
    assert windows == grid.windows()
    count = np.zeros((h, w), dtype=np.int32)
    for win in windows:
        assert win.height == min(tile, h) and win.width == min(tile, w)  # never larger than the image
        assert win.row >= 0 and win.row + win.height <= h and win.col >= 0 and win.col + win.width <= w
        count[win.slices] += 1
    assert count.min() >= 1  # every pixel covered
    assert grid.rows[0] == 0 and grid.rows[-1] + grid.tile_height == h  # last windows aligned to the border
    assert grid.cols[0] == 0 and grid.cols[-1] + grid.tile_width == w
    ov = round(tile * overlap)
    for starts, size in ((grid.rows, grid.tile_height), (grid.cols, grid.tile_width)):
        assert list(starts) == sorted(set(starts))
        for a, b in zip(starts, starts[1:]):
            assert a + size - b >= ov  # neighbours overlap by at least the asked overlap
    cores = np.zeros((h, w), dtype=np.int32)
    for k in range(len(grid)):
        core = grid.core(k)
        assert grid.window(k).intersect(core) == core  # inside its window
        cores[core.slices] += 1
    assert (cores == 1).all()  # the cores partition the image


def test_neighbours_are_exactly_the_overlapping_windows():
    grid = TileGrid(700, 500, 200, 0.3)
    for k in range(len(grid)):
        expected = [j for j in range(len(grid)) if j != k and grid.window(k).intersect(grid.window(j))]
        assert sorted(grid.neighbours(k)) == expected


@pytest.mark.parametrize(("tile", "overlap"), [(16, 0.25), (0, 0.2), (256, 0.6), (256, -0.1), (256, float("nan")),
                                               (256.0, 0.2)])
def test_bad_tiling_options_are_config_errors(tile, overlap):
    with pytest.raises(ConfigError, match="--tile|--overlap"):
        check_tiling(tile, overlap)


def test_ramp_is_positive_and_cross_fades_to_one():
    ramp = 16
    w = ramp_1d(64, ramp)
    assert w.min() > 0 and w.max() == 1.0 and (w == w[::-1]).all()
    # two windows of 64 overlapping by `ramp` pixels: the weights sum to 1 everywhere in the overlap
    left, right = w[64 - ramp:], w[:ramp]
    np.testing.assert_allclose(left + right, 1.0, atol=1e-6)
    assert blend_weights(10, 12, (3, 4)).shape == (10, 12)
    assert TileGrid(100, 175, 100, 0.25).ramps == (1, 25)


# ---------------------------------------------------------------- semantic blending

K = 3
MIX = np.array([[0.02, -0.01, 0.0], [-0.015, 0.02, 0.005], [0.0, 0.01, -0.02]], dtype=np.float32)


def pixel_scores(image: np.ndarray) -> np.ndarray:
    """A position-independent "model": per-pixel softmax of a linear map of the colour."""
    logits = np.einsum("hwc,kc->khw", image.astype(np.float32), MIX)
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def pixel_model(image: np.ndarray, tasks: tuple[str, ...]) -> ImageResult:
    scores = torch.from_numpy(pixel_scores(image))
    return ImageResult(height=image.shape[0], width=image.shape[1],
                       semantic=SemanticResult(scores=scores, labels=scores.argmax(0)))


def test_blending_a_position_independent_model_equals_the_untiled_result():
    image = random_image(300, 410, seed=3)
    tiled = predict_tiled(ArraySource(image), pixel_model, ("semantic",),
                          options=TileOptions(tile=96, overlap=0.25), keep_scores=True)
    assert tiled.tiles == len(TileGrid(300, 410, 96, 0.25)) > 1
    assert tiled.semantic is not None and tiled.semantic.scores is not None and tiled.semantic.labels is not None
    np.testing.assert_allclose(tiled.semantic.scores, pixel_scores(image), rtol=0, atol=1e-6)
    assert tiled.semantic.labels.dtype == np.uint8
    np.testing.assert_array_equal(tiled.semantic.labels, pixel_scores(image).argmax(0))
    result = tiled.to_image_result()
    assert result.semantic is not None and tuple(result.semantic.scores.shape) == (K, 300, 410)


def test_constant_input_gives_a_constant_output():
    image = np.full((250, 333, 3), (90, 160, 30), dtype=np.uint8)
    tiled = predict_tiled(ArraySource(image), pixel_model, ("semantic",),
                          options=TileOptions(tile=64, overlap=0.3), keep_scores=True)
    assert tiled.semantic is not None and tiled.semantic.scores is not None
    scores = tiled.semantic.scores
    np.testing.assert_allclose(scores, np.broadcast_to(scores[:, :1, :1], scores.shape), rtol=0, atol=1e-6)


def edge_biased_model(image: np.ndarray, tasks: tuple[str, ...]) -> ImageResult:
    """Per-pixel scores plus a tile-position artefact: class 0 gains 0 at the tile's top-left
    corner rising to 0.3 + 0.3 at its bottom-right, so neighbouring tiles disagree in their overlap."""
    h, w = image.shape[:2]
    scores = pixel_scores(image)
    scores[0] += 0.3 * np.arange(h)[:, None] / h + 0.3 * np.arange(w)[None, :] / w
    t = torch.from_numpy(scores)
    return ImageResult(height=h, width=w, semantic=SemanticResult(scores=t, labels=t.argmax(0)))


def test_blending_leaves_no_seam_where_tiles_meet():
    """Stitching the tiles side by side (each pixel from the tile whose core holds it) jumps at
    every border; the blend spreads the disagreement over the overlap, leaving no step."""
    image = np.full((256, 256, 3), 120, dtype=np.uint8)
    tiled = predict_tiled(ArraySource(image), edge_biased_model, ("semantic",),
                          options=TileOptions(tile=96, overlap=0.25), keep_scores=True)
    assert tiled.semantic is not None and tiled.semantic.scores is not None
    blended = tiled.semantic.scores[0]
    grid = TileGrid(256, 256, 96, 0.25)
    stitched = np.zeros((256, 256), np.float32)
    for k in range(len(grid)):
        win, core = grid.window(k), grid.core(k)
        tile_scores = edge_biased_model(image[win.slices], ()).semantic
        assert tile_scores is not None
        stitched[core.slices] = tile_scores.scores[0].numpy()[win.local(core)]
    for axis in (0, 1):
        jump = np.abs(np.diff(stitched, axis=axis)).max()
        assert jump > 0.1  # the tiles disagree: a hard seam when stitched
        assert np.abs(np.diff(blended, axis=axis)).max() < 0.1 * jump


def test_semantic_blocks_are_final_once_and_memory_follows_the_overlap_strips():
    h, w, tile = 600, 900, 128
    grid = TileGrid(h, w, tile, 0.25)
    seen = np.zeros((h, w), np.int32)
    peak = [0]

    def sink(window: Window, scores: np.ndarray) -> None:
        assert scores.shape == (K, window.height, window.width)
        seen[window.slices] += 1

    blender = SemanticBlender(grid, sink)
    image = random_image(h, w, seed=1)
    for k in range(len(grid)):
        win = grid.window(k)
        blender.add(win, pixel_scores(image[win.slices]))
        peak[0] = max(peak[0], sum(acc[1].size for acc in blender.pending.values()))
    assert (seen == 1).all() and not blender.pending
    overlap = round(tile * 0.25) + 2 * tile  # the pixels pending at most: one strip of overlap rows + a tile
    assert peak[0] <= overlap * w


# ---------------------------------------------------------------- merging, hand-made tile results

GRID = TileGrid(200, 200, 120, 0.25)  # windows at rows / cols 0 and 80: the shared strip is 80..120


def rect(r0, r1, c0, c1, h=200, w=200):
    m = np.zeros((h, w), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


OBJECTS = {  # full-image masks and classes of things placed across the tile borders
    "across_vertical": (rect(20, 40, 100, 150), 1),    # crosses col 120 (tile 0's right border)
    "across_corner": (rect(95, 130, 95, 130), 1),       # in all four tiles
    "other_class_same_place": (rect(150, 170, 90, 140), 2),
    "beside": (rect(150, 170, 150, 190), 2),           # same class, not touching the one before
    "inside_one_tile": (rect(5, 15, 5, 15), 1),
}


def tile_instances(index: int, scores: dict[str, float]) -> InstanceResult:
    win = GRID.window(index)
    masks, labels, kept = [], [], []
    for name, (mask, label) in OBJECTS.items():
        part = mask[win.slices]
        if part.any():
            masks.append(part)
            labels.append(label)
            kept.append(scores[name])
    m = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, win.height, win.width), dtype=torch.bool)
    return InstanceResult(masks=m, scores=torch.tensor(kept), labels=torch.tensor(labels), boxes=masks_to_boxes(m))


def test_hand_made_instances_across_borders_merge_into_one_each():
    merger = InstanceMerger(GRID, min_score=0.3, iou_threshold=0.5)
    score_of = {}
    for k in range(len(GRID)):
        scores = {name: 0.5 + 0.1 * k for name in OBJECTS}
        merger.add(k, tile_instances(k, scores))
        for name, (mask, _) in OBJECTS.items():
            score_of.setdefault(name, []).append((scores[name], int(mask[GRID.window(k).slices].sum())))
    merged = merger.result()
    assert len(merged) == len(OBJECTS)
    for name, (mask, label) in OBJECTS.items():
        found = [m for m in merged if m.mask.within(Window(0, 0, 200, 200))[mask].any()]
        assert len(found) == 1, name
        inst = found[0]
        assert inst.label == label
        np.testing.assert_array_equal(inst.mask.within(Window(0, 0, 200, 200)), mask)
        pairs = [(s, a) for s, a in score_of[name] if a]
        expected = sum(s * a for s, a in pairs) / sum(a for _, a in pairs)  # area-weighted
        assert inst.score == pytest.approx(expected)
    assert [m.score for m in merged] == sorted((m.score for m in merged), reverse=True)


def test_instances_below_min_score_or_of_another_class_are_not_merged():
    merger = InstanceMerger(GRID, min_score=0.3, iou_threshold=0.5)
    for k in range(len(GRID)):
        scores = {name: (0.1 if name == "inside_one_tile" else 0.9) for name in OBJECTS}
        merger.add(k, tile_instances(k, scores))
    labels = sorted(m.label for m in merger.result())
    assert labels == [1, 1, 2, 2]  # the low-scoring one dropped, the class-2 pair kept apart


def tile_panoptic(index: int) -> PanopticResult:
    win = GRID.window(index)
    seg = np.zeros((win.height, win.width), np.int32)
    infos: list[Segment] = []
    stuff = np.ones((win.height, win.width), bool)
    for mask, label in OBJECTS.values():
        part = mask[win.slices]
        if part.any():
            seg[part] = len(infos) + 1
            stuff &= ~part
            infos.append(Segment(id=len(infos) + 1, label=label, isthing=True, score=0.9, area=int(part.sum())))
    seg[stuff] = len(infos) + 1
    infos.append(Segment(id=len(infos) + 1, label=0, isthing=False, score=0.95, area=int(stuff.sum())))
    return PanopticResult(segments=torch.from_numpy(seg), segments_info=infos)


def test_hand_made_panoptic_merges_things_and_stuff_into_one_map():
    merger = PanopticMerger(GRID, iou_threshold=0.5, overlap_threshold=0.8)
    for k in range(len(GRID)):
        merger.add(k, tile_panoptic(k))
    assert not merger.maps  # every tile's full map released once its neighbours ran
    pan = merger.result()
    ids = pan.segments
    assert ids.shape == (200, 200) and ids.dtype == np.uint16
    assert len(pan.segments_info) == len(OBJECTS) + 1  # one per object + one stuff segment
    assert [s.id for s in pan.segments_info] == list(range(1, len(OBJECTS) + 2))
    things = np.zeros((200, 200), bool)
    for name, (mask, label) in OBJECTS.items():
        values = np.unique(ids[mask])
        assert len(values) == 1 and values[0] != 0, name
        seg = next(s for s in pan.segments_info if s.id == values[0])
        assert seg.label == label and seg.isthing and (ids == seg.id).sum() == mask.sum()
        things |= mask
    stuff = [s for s in pan.segments_info if not s.isthing]
    assert len(stuff) == 1 and (ids[~things] == stuff[0].id).all()
    counts = np.bincount(ids.ravel(), minlength=len(pan.segments_info) + 1)
    assert all(s.area == counts[s.id] for s in pan.segments_info)


def test_panoptic_segment_mostly_painted_over_by_other_tiles_is_dropped():
    """A segment one tile sees only in its margin, where the tile owning those pixels sees
    something else, keeps too little of its area: void, as the per-image overlap rule does."""
    merger = PanopticMerger(TileGrid(100, 175, 100, 0.25), iou_threshold=0.5, overlap_threshold=0.8)
    grid = merger.grid
    assert grid.cols == (0, 75) and grid.core(0).width == 87
    left = np.ones((100, 100), np.int32)
    left[40:60, 80:100] = 2  # a thing at tile 0's right margin, past the core split at column 87
    merger.add(0, PanopticResult(torch.from_numpy(left), [Segment(1, 0, False, 0.9, 9600),
                                                          Segment(2, 1, True, 0.9, 400)]))
    merger.add(1, PanopticResult(torch.ones((100, 100), dtype=torch.int32), [Segment(1, 0, False, 0.9, 10000)]))
    pan = merger.result()
    assert [s.label for s in pan.segments_info] == [0]
    assert (pan.segments == 1).all()


def test_dropped_segment_pixels_stay_void_where_no_other_tile_sees_a_kept_segment():
    """As above, but the tile owning those pixels sees nothing there (void): they stay void."""
    merger = PanopticMerger(TileGrid(100, 175, 100, 0.25), iou_threshold=0.5, overlap_threshold=0.8)
    left = np.ones((100, 100), np.int32)
    left[40:60, 80:100] = 2
    merger.add(0, PanopticResult(torch.from_numpy(left), [Segment(1, 0, False, 0.9, 9600),
                                                          Segment(2, 1, True, 0.9, 400)]))
    right = np.ones((100, 100), np.int32)
    right[40:60, 0:25] = 0  # void where tile 0 saw the thing
    merger.add(1, PanopticResult(torch.from_numpy(right), [Segment(1, 0, False, 0.9, 9500)]))
    pan = merger.result()
    assert [s.label for s in pan.segments_info] == [0]
    # tile 0's core (columns < 87) saw the dropped thing at 80..86, tile 1 saw void at 75..99:
    # void at 80..99; tile 0 saw stuff at 75..79
    assert (pan.segments[40:60, 80:100] == 0).all()
    assert pan.segments_info[0].area == int((pan.segments == 1).sum()) == 100 * 175 - 20 * 20


# ---------------------------------------------------------------- a colour oracle on a real GeoTIFF


def oracle(colours: np.ndarray, things: tuple[int, ...]):
    """A position-independent tile "model" that knows the synthetic colours: nearest colour per
    pixel; things split by connected components; an instance's score grows with its area in the
    tile (a sliver cut by the border scores low)."""

    def run(image: np.ndarray, tasks: tuple[str, ...]) -> ImageResult:
        d = ((image[:, :, None, :3].astype(np.float32) - colours[None, None]) ** 2).sum(-1)
        cls = d.argmin(-1)
        h, w = cls.shape
        onehot = torch.from_numpy(np.eye(len(colours), dtype=np.float32)[cls].transpose(2, 0, 1).copy())
        result = ImageResult(height=h, width=w, semantic=SemanticResult(scores=onehot, labels=onehot.argmax(0)))
        masks, labels, scores = [], [], []
        for c in things:
            comp, n = ndimage.label(cls == c, structure=np.ones((3, 3)))
            for i in range(1, n + 1):
                m = comp == i
                if m.sum() >= 4:
                    masks.append(m)
                    labels.append(c)
                    scores.append(0.5 + 0.5 * min(1.0, m.sum() / 2000))
        mt = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.bool)
        result.instance = InstanceResult(masks=mt, scores=torch.tensor(scores, dtype=torch.float32),
                                         labels=torch.tensor(labels, dtype=torch.long), boxes=masks_to_boxes(mt))
        seg = np.zeros((h, w), np.int32)
        infos: list[Segment] = []
        for c in range(len(colours)):
            if c not in things and (cls == c).any():
                seg[cls == c] = len(infos) + 1
                infos.append(Segment(len(infos) + 1, c, False, 0.9, int((cls == c).sum())))
        for m, c, s in zip(masks, labels, scores):
            seg[m] = len(infos) + 1
            infos.append(Segment(len(infos) + 1, c, True, s, int(m.sum())))
        result.panoptic = PanopticResult(segments=torch.from_numpy(seg), segments_info=infos)
        return result

    return run


@pytest.fixture
def scene(tmp_path):
    pytest.importorskip("rasterio")
    from mask2former.data.synthetic_raster import write_synthetic_raster

    return write_synthetic_raster(tmp_path / "scene", height=420, width=560, tile=128, overlap=0.25, seed=1)


def test_objects_placed_across_tile_borders_come_out_once_each(scene):
    from mask2former.data.geotiff import RasterSource
    from mask2former.data.synthetic_raster import COLOURS

    options = TileOptions(tile=128, overlap=0.25, min_score=0.3)
    grid = TileGrid(scene.height, scene.width, 128, 0.25)
    crossing = [o for o in scene.objects
                if sum(grid.window(k).intersect(Window(o.row0, o.col0, o.row1 - o.row0, o.col1 - o.col0)) is not None
                       for k in range(len(grid))) > 1]
    assert len(crossing) >= 8  # the scene really puts objects across borders
    with RasterSource(scene.image) as source:
        tiled = predict_tiled(source, oracle(COLOURS, (2, 3)), ALL, options=options)
    assert tiled.instances is not None and tiled.panoptic is not None
    assert len(tiled.instances) == len(scene.objects)
    rows, cols = np.arange(scene.height), np.arange(scene.width)
    full = Window(0, 0, scene.height, scene.width)
    for obj in scene.objects:
        truth = obj.mask(rows, cols)
        hits = [m for m in tiled.instances if m.mask.within(full)[truth].sum() > 0.5 * truth.sum()]
        assert len(hits) == 1 and hits[0].label == obj.label
        found = hits[0].mask.within(full)
        assert (found & truth).sum() / (found | truth).sum() > 0.95
        values, counts = np.unique(tiled.panoptic.segments[truth], return_counts=True)
        assert values[counts.argmax()] != 0 and counts.max() > 0.95 * truth.sum()
        seg = next(s for s in tiled.panoptic.segments_info if s.id == values[counts.argmax()])
        assert seg.isthing and seg.label == obj.label
    thing_segments = [s for s in tiled.panoptic.segments_info if s.isthing]
    assert len(thing_segments) == len(scene.objects)
    assert sorted(s.label for s in tiled.panoptic.segments_info if not s.isthing) == [0, 1]


def test_panoptic_merge_holds_no_image_sized_map_when_not_kept():
    """The tiles' core maps wait in a temporary file: without ``keep_map`` the merge's numpy
    memory stays far below one byte per pixel, and the map reaches the sink core by core, each
    pixel once."""
    import tracemalloc

    grid = TileGrid(3000, 3000, 200, 0.25)
    tiles = []
    for k in range(len(grid)):
        win = grid.window(k)
        seg = np.ones((win.height, win.width), np.int32)
        seg[30:60, 30:60] = 2  # a thing inside each tile, seen by this tile alone
        tiles.append(PanopticResult(torch.from_numpy(seg), [Segment(1, 0, False, 0.9, int((seg == 1).sum())),
                                                            Segment(2, 1, True, 0.8, 900)]))
    seen = np.zeros((grid.height, grid.width), np.uint8)
    top_ids: set[int] = set()

    def sink(window: Window, segments: np.ndarray, top: int) -> None:
        assert segments.shape == (window.height, window.width) and segments.max() <= top
        seen[window.slices] += 1
        top_ids.add(top)

    merger = PanopticMerger(grid, iou_threshold=0.5, overlap_threshold=0.8)
    tracemalloc.start()
    for k, tile in enumerate(tiles):
        merger.add(k, tile)
    pan = merger.result(sink=sink, keep_map=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pan.segments is None and (seen == 1).all()
    assert top_ids == {len(pan.segments_info)} == {len(grid) + 1}  # a thing per tile and the stuff
    assert sum(s.area for s in pan.segments_info) == grid.height * grid.width
    assert peak < grid.height * grid.width / 4


def test_panoptic_map_painted_for_the_sink_equals_the_kept_map(scene):
    from mask2former.data.geotiff import RasterSource
    from mask2former.data.synthetic_raster import COLOURS

    options = TileOptions(tile=128, overlap=0.25, min_score=0.3)
    with RasterSource(scene.image) as source:
        kept = predict_tiled(source, oracle(COLOURS, (2, 3)), ("panoptic",), options=options)
        painted = np.zeros((scene.height, scene.width), np.int64)

        def sink(window: Window, segments: np.ndarray, top: int) -> None:
            painted[window.slices] = segments

        streamed = predict_tiled(source, oracle(COLOURS, (2, 3)), ("panoptic",), options=options,
                                 keep_labels=False, panoptic_sink=sink)
    assert kept.panoptic is not None and streamed.panoptic is not None and streamed.panoptic.segments is None
    np.testing.assert_array_equal(painted, kept.panoptic.segments)
    assert streamed.panoptic.segments_info == kept.panoptic.segments_info
    with pytest.raises(ValueError, match="keep_labels=True"):
        streamed.to_image_result()


# ---------------------------------------------------------------- the tiny Mask2Former through the tiler


def test_tiny_model_one_window_equals_the_predictor(tiny_model):
    predictor = Predictor(tiny_model)
    image = random_image(80, 100, seed=5)
    direct = predictor(image, task=list(ALL))
    tiled = predict_tiled(ArraySource(image), predictor_tile_fn(predictor), ALL,
                          options=TileOptions(tile=128, overlap=0.25, min_score=0.0), keep_scores=True)
    assert tiled.tiles == 1
    result = tiled.to_image_result()
    assert isinstance(direct, ImageResult) and direct.semantic is not None and result.semantic is not None
    torch.testing.assert_close(result.semantic.scores, direct.semantic.scores, rtol=0, atol=1e-6)
    assert result.panoptic is not None and direct.panoptic is not None
    assert torch.equal(result.panoptic.segments, direct.panoptic.segments)
    assert [(s.label, s.area) for s in result.panoptic.segments_info] == \
        [(s.label, s.area) for s in direct.panoptic.segments_info]
    assert result.instance is not None and direct.instance is not None
    nonempty = direct.instance.masks.flatten(1).any(1)
    assert len(result.instance.scores) == int(nonempty.sum())


def test_tiny_model_runs_tiled_over_many_windows(tiny_model):
    predictor = Predictor(tiny_model)
    image = random_image(200, 260, seed=7)
    tiled = predict_tiled(ArraySource(image), predictor_tile_fn(predictor), ALL,
                          options=TileOptions(tile=96, overlap=0.25, min_score=0.0))
    assert tiled.tiles == len(TileGrid(200, 260, 96, 0.25)) > 4
    assert tiled.semantic is not None and tiled.semantic.labels is not None
    assert tiled.semantic.labels.shape == (200, 260) and tiled.semantic.labels.max() < 4
    assert tiled.panoptic is not None
    ids = tiled.panoptic.segments
    counts = np.bincount(ids.ravel().astype(np.int64), minlength=len(tiled.panoptic.segments_info) + 1)
    assert [s.id for s in tiled.panoptic.segments_info] == list(range(1, len(tiled.panoptic.segments_info) + 1))
    assert all(s.area == counts[s.id] > 0 for s in tiled.panoptic.segments_info)
    stuff = [s.label for s in tiled.panoptic.segments_info if not s.isthing]
    assert len(stuff) == len(set(stuff))  # one segment per stuff class over the whole image
    assert tiled.instances is not None
    for inst in tiled.instances:
        w = inst.mask.window
        assert w.row >= 0 and w.row + w.height <= 200 and w.col >= 0 and w.col + w.width <= 260
        assert inst.mask.mask.any() and 0 <= inst.score <= 1
    assert MaskCrop.from_mask(np.zeros((3, 3), bool)) is None
