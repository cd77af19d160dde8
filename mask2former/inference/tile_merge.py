"""Instance and panoptic results of overlapping tiles merged into one result per image.

An object cut by a tile border is seen (whole or in part) by every tile covering it; in the
region two tiles share, both see the same pixels of it. So two tiles' segments of one class are
the same object when their masks' IoU *inside the shared region* reaches ``iou_threshold``;
matches are joined transitively (an object over four tiles is one), each object's mask is the
union of its pieces, and its score is the mean of its pieces' scores weighted by their areas
(the tile that saw more of the object counts more; a sliver cut by a border, scored low because
it is a sliver, does not drag the object down as a plain mean would, nor decide it as a max of
one confident sliver would).

Panoptic: thing segments are matched the same way; every stuff segment of a class joins the one
segment of that class, as the per-image rule (``postprocess.panoptic_inference``) does. Each
pixel takes the segment of the tile whose *core* holds it (the part of the window nearer its
centre than any other window's: the cores partition the image), so segments never overlap; and
the per-image ``overlap_threshold`` rule applies to merged segments: one whose painted area is
less than ``overlap_threshold`` x the area of its largest tile piece (mostly painted over by
other tiles' segments) is dropped; its painted pixels take the kept segment another tile sees
there (void, id 0, where none does).

Instance masks are kept as bounding-box crops, so memory follows the objects, not N x H x W.
Panoptic keeps each tile's core of its segment map (one byte per pixel) and, where a tile sees a
thing in its core, its neighbours' view of that part, in a temporary file: the merged map is
painted core by core from it, so a caller can write it block by block and never hold it whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mask2former.data.tile_grid import TileGrid, Window
from mask2former.errors import ImageError
from mask2former.structures import InstanceResult, PanopticResult, Segment


@dataclass
class MaskCrop:
    """A binary mask of the full image stored as its bounding box: ``mask [h, w]`` bool at ``(row, col)``."""

    row: int
    col: int
    mask: np.ndarray

    @property
    def window(self) -> Window:
        return Window(self.row, self.col, self.mask.shape[0], self.mask.shape[1])

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        """XYXY pixel-edge box, as ``postprocess.masks_to_boxes``."""
        h, w = self.mask.shape
        return float(self.col), float(self.row), float(self.col + w), float(self.row + h)

    @staticmethod
    def from_mask(mask: np.ndarray, row: int = 0, col: int = 0) -> MaskCrop | None:
        """The tight crop of ``mask [h, w]`` placed at ``(row, col)``; None if empty."""
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            return None
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return MaskCrop(row + r0, col + c0, np.ascontiguousarray(mask[r0:r1, c0:c1]))

    def within(self, region: Window) -> np.ndarray:
        """``[region.height, region.width]`` bool: this mask's pixels inside ``region``."""
        out = np.zeros((region.height, region.width), dtype=bool)
        common = self.window.intersect(region)
        if common is not None:
            out[region.local(common)] = self.mask[self.window.local(common)]
        return out

    @staticmethod
    def union(crops: list[MaskCrop]) -> MaskCrop:
        r0, c0 = min(c.row for c in crops), min(c.col for c in crops)
        r1 = max(c.row + c.mask.shape[0] for c in crops)
        c1 = max(c.col + c.mask.shape[1] for c in crops)
        box = Window(r0, c0, r1 - r0, c1 - c0)
        out = np.zeros((box.height, box.width), dtype=bool)
        for c in crops:
            out[box.local(c.window)] |= c.mask
        return MaskCrop(r0, c0, out)


@dataclass
class MergedInstance:
    """One object of a tiled instance prediction: contiguous class id, score, mask crop."""

    label: int
    score: float
    mask: MaskCrop

    @property
    def area(self) -> int:
        return int(self.mask.mask.sum())


@dataclass
class TiledPanoptic:
    """``segments [H, W]`` segment ids (uint16, int32 past 65,535 segments; 0 = void; None when
    not kept) and their info."""

    segments: np.ndarray | None
    segments_info: list[Segment]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earliest piece is the root: stable ids


def _weighted_score(scores: list[float], areas: list[int]) -> float:
    total = sum(areas)
    return sum(s * a for s, a in zip(scores, areas)) / total if total else max(scores)


class InstanceMerger:
    """Collects each tile's instances (``add`` in tile order) and merges them (``result``)."""

    def __init__(self, grid: TileGrid, *, min_score: float, iou_threshold: float) -> None:
        self.grid, self.min_score, self.iou_threshold = grid, min_score, iou_threshold
        self.labels: list[int] = []
        self.scores: list[float] = []
        self.crops: list[MaskCrop] = []
        self.by_tile: dict[int, list[int]] = {}
        self.sets = _UnionFind()

    def add(self, index: int, instances: InstanceResult) -> None:
        """One tile's instances (masks at the window's size)."""
        window = self.grid.window(index)
        masks = instances.masks.cpu().numpy()
        mine = []
        for k in np.flatnonzero(instances.scores.cpu().numpy() >= self.min_score).tolist():
            crop = MaskCrop.from_mask(masks[k], window.row, window.col)
            if crop is None:
                continue
            mine.append(self.sets.add())
            self.labels.append(int(instances.labels[k]))
            self.scores.append(float(instances.scores[k]))
            self.crops.append(crop)
        self.by_tile[index] = mine
        for other in self.grid.neighbours(index):
            shared = window.intersect(self.grid.window(other))
            if other < index and shared is not None:
                self._match(mine, self.by_tile.get(other, []), shared)

    def _match(self, mine: list[int], theirs: list[int], shared: Window) -> None:
        for p in mine:
            if self.crops[p].window.intersect(shared) is None:
                continue
            for q in theirs:
                if self.labels[q] != self.labels[p]:
                    continue
                region = self.crops[p].window.intersect(self.crops[q].window)
                if region is None or region.intersect(shared) is None:
                    continue
                # IoU inside the shared region, over the two crops' common box within it
                box = _box_union(self.crops[p].window, self.crops[q].window).intersect(shared)
                assert box is not None
                a, b = self.crops[p].within(box), self.crops[q].within(box)
                union = int((a | b).sum())
                if union and int((a & b).sum()) >= self.iou_threshold * union:
                    self.sets.join(p, q)

    def result(self) -> list[MergedInstance]:
        """Merged instances, highest score first."""
        groups: dict[int, list[int]] = {}
        for p in range(len(self.crops)):
            groups.setdefault(self.sets.find(p), []).append(p)
        merged = []
        for members in groups.values():
            areas = [int(self.crops[p].mask.sum()) for p in members]
            merged.append(MergedInstance(label=self.labels[members[0]],
                                         score=_weighted_score([self.scores[p] for p in members], areas),
                                         mask=MaskCrop.union([self.crops[p] for p in members])))
        merged.sort(key=lambda m: -m.score)
        return merged


def _box_union(a: Window, b: Window) -> Window:
    r0, c0 = min(a.row, b.row), min(a.col, b.col)
    r1, c1 = max(a.row + a.height, b.row + b.height), max(a.col + a.width, b.col + b.width)
    return Window(r0, c0, r1 - r0, c1 - c0)


PanopticSink = Callable[[Window, np.ndarray, int], None]  # (a tile's core, its final segment ids, the largest id)


_Spilled = tuple[int, np.dtype, tuple[int, ...]]  # offset, dtype, shape of an array in a _SpillFile


class _SpillFile:
    """Arrays kept in an unnamed temporary file until the merge reads them back: what a
    panoptic merge must keep of every tile lives on disk (and in the page cache, which the
    system can reclaim), not in the process's memory."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="mask2former-tiles-")  # noqa: SIM115 (lives until close)
        self.end = 0

    def put(self, array: np.ndarray) -> _Spilled:
        data = np.ascontiguousarray(array)
        view, offset = memoryview(data.tobytes()), self.end
        try:
            while view:
                view = view[os.pwrite(self.file.fileno(), view, offset + data.nbytes - len(view)):]
        except OSError as e:
            raise ImageError(f"cannot keep the tiles' panoptic maps in a temporary file in {tempfile.gettempdir()} "
                             f"({e.strerror or e}): point TMPDIR at a disk with room") from None
        self.end += data.nbytes
        return offset, data.dtype, data.shape

    def get(self, handle: _Spilled) -> np.ndarray:
        offset, dtype, shape = handle
        size = int(np.prod(shape)) * dtype.itemsize
        data = os.pread(self.file.fileno(), size, offset)
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    def close(self) -> None:
        self.file.close()


class PanopticMerger:
    """Collects each tile's panoptic result (``add`` in tile order) and paints one segment map
    core by core (``result``). Each tile's core map and its neighbours' views of it are spilled
    to a temporary file as the tile runs, so memory is set by the tile and the number of
    segments, not by the image."""

    def __init__(self, grid: TileGrid, *, iou_threshold: float, overlap_threshold: float) -> None:
        self.grid, self.iou_threshold, self.overlap_threshold = grid, iou_threshold, overlap_threshold
        # tile-level segments ("pieces"): label, thing or stuff, score, area within the tile, area within its core
        self.labels: list[int] = []
        self.isthing: list[bool] = []
        self.scores: list[float] = []
        self.areas: list[int] = []
        self.core_areas: list[int] = []
        self.sets = _UnionFind()
        self.stuff_root: dict[int, int] = {}
        self.luts: dict[int, np.ndarray] = {}  # tile -> local segment id -> piece index (-1: void)
        self.maps: dict[int, np.ndarray] = {}  # full tile maps, until every later neighbour has run
        self.spill = _SpillFile()
        self.cores: dict[int, _Spilled] = {}  # each tile's core of its map (local ids), spilled
        # tile -> what other tiles see in its core where it sees a thing: (other tile, region, their local ids)
        self.seconds: dict[int, list[tuple[int, Window, _Spilled]]] = {}
        self.waiting = {k: sum(n > k for n in grid.neighbours(k)) for k in range(len(grid))}

    def add(self, index: int, panoptic: PanopticResult) -> None:
        window = self.grid.window(index)
        local = panoptic.segments.cpu().numpy()
        top = max((s.id for s in panoptic.segments_info), default=0)
        local = local.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32)
        core = local[window.local(self.grid.core(index))]
        in_core = np.bincount(core.ravel(), minlength=top + 1)
        lut = np.full(top + 1, -1, dtype=np.int64)
        for seg in panoptic.segments_info:
            piece = self.sets.add()
            self.labels.append(seg.label)
            self.isthing.append(seg.isthing)
            self.scores.append(seg.score)
            self.areas.append(seg.area)
            self.core_areas.append(int(in_core[seg.id]))
            lut[seg.id] = piece
            if not seg.isthing:
                root = self.stuff_root.setdefault(seg.label, piece)
                self.sets.join(root, piece)
        self.luts[index] = lut
        self.cores[index] = self.spill.put(core)
        for other in self.grid.neighbours(index):
            if other > index:
                continue
            shared = window.intersect(self.grid.window(other))
            if shared is not None and other in self.maps:
                theirs = self.maps[other][self.grid.window(other).local(shared)]
                self._match(local[window.local(shared)], lut, theirs, self.luts[other])
                self._keep_second(index, local, other, self.maps[other])
                self._keep_second(other, self.maps[other], index, local)
            self.waiting[other] -= 1
            if self.waiting[other] == 0:
                self.maps.pop(other, None)
        if self.waiting[index] > 0:
            self.maps[index] = local

    def _keep_second(self, owner: int, owner_map: np.ndarray, other: int, other_map: np.ndarray) -> None:
        """Keep ``other``'s view of the part of ``owner``'s core it covers, where ``owner`` sees a
        thing there: if that thing is dropped (``result``), its pixels take ``other``'s segment."""
        core = self.grid.core(owner)
        region = core.intersect(self.grid.window(other))
        if region is None:
            return
        mine = owner_map[self.grid.window(owner).local(region)]
        thing = np.array([p >= 0 and self.isthing[p] for p in self.luts[owner].tolist()])
        if thing[mine].any():
            view = other_map[self.grid.window(other).local(region)]
            self.seconds.setdefault(owner, []).append((other, region, self.spill.put(view)))

    def _match(self, mine: np.ndarray, my_lut: np.ndarray, theirs: np.ndarray, their_lut: np.ndarray) -> None:
        """Join thing segments of one class whose masks' IoU in the shared region is high enough."""
        m, n = len(my_lut), len(their_lut)
        joint = np.bincount(mine.astype(np.int64).ravel() * n + theirs.astype(np.int64).ravel(),
                            minlength=m * n).reshape(m, n)
        area_mine, area_theirs = joint.sum(1), joint.sum(0)
        for a, b in zip(*np.nonzero(joint[1:, 1:])):
            a, b = int(a) + 1, int(b) + 1
            p, q = int(my_lut[a]), int(their_lut[b])
            if p < 0 or q < 0 or not self.isthing[p] or self.labels[p] != self.labels[q]:
                continue
            inter = int(joint[a, b])
            if inter >= self.iou_threshold * (int(area_mine[a]) + int(area_theirs[b]) - inter):
                self.sets.join(p, q)

    def result(self, *, sink: PanopticSink | None = None, keep_map: bool = True) -> TiledPanoptic:
        """The merged segments. The map is painted core by core, each handed to ``sink`` (e.g.
        a GeoTIFF written block by block) and, with ``keep_map``, into a full-size array."""
        try:
            return self._paint(sink, keep_map)
        finally:
            self.close()

    def close(self) -> None:
        """Remove the temporary file (``result`` does; a run stopped early calls it)."""
        self.spill.close()

    def _paint(self, sink: PanopticSink | None, keep_map: bool) -> TiledPanoptic:
        roots = np.array([self.sets.find(p) for p in range(len(self.labels))], dtype=np.int64)
        painted = np.bincount(roots, weights=self.core_areas, minlength=len(self.labels))  # by root
        members: dict[int, list[int]] = {}
        for p, r in enumerate(roots.tolist()):
            members.setdefault(r, []).append(p)
        final = np.zeros(len(self.labels), dtype=np.int64)  # root -> final segment id (0: dropped)
        infos: list[Segment] = []
        for root, group in members.items():
            largest = max(self.areas[p] for p in group)
            if painted[root] == 0 or painted[root] < self.overlap_threshold * largest:
                continue
            score = _weighted_score([self.scores[p] for p in group], [self.areas[p] for p in group])
            infos.append(Segment(id=len(infos) + 1, label=self.labels[root], isthing=self.isthing[root],
                                 score=score, area=0))
            final[root] = len(infos)
        dtype = np.uint16 if len(infos) < 65536 else np.int32
        segments = np.zeros((self.grid.height, self.grid.width), dtype) if keep_map else None
        ids = {index: np.append(final[roots], 0)[lut] for index, lut in self.luts.items()}  # local id -> final id
        counts = np.zeros(len(infos) + 1, dtype=np.int64)
        for index in range(len(self.grid)):
            box = self.grid.core(index)
            local = self.spill.get(self.cores[index])
            mine = ids[index][local]
            holes = (mine == 0) & (local != 0)  # a dropped segment's pixels
            for other, region, handle in sorted(self.seconds.get(index, []),
                                                key=lambda s: -s[1].height * s[1].width):
                part = box.local(region)
                theirs = ids[other][self.spill.get(handle)]
                fill = holes[part] & (theirs != 0)
                mine[part][fill] = theirs[fill]
                holes[part] &= ~fill
            mine = mine.astype(dtype)
            counts += np.bincount(mine.ravel(), minlength=len(infos) + 1)
            if sink is not None:
                sink(box, mine, len(infos))
            if segments is not None:
                segments[box.slices] = mine
        for seg in infos:
            seg.area = int(counts[seg.id])
        return TiledPanoptic(segments=segments, segments_info=infos)
