"""Per-class Dice and 95% Hausdorff distance per volume, in millimetres, as medical papers report.

The definitions are MONAI's defaults (``DiceMetric``, ``HausdorffDistanceMetric(percentile=95)``
with ``spacing=``), written here with scipy so that the numbers can be compared with theirs:

- Dice = 2|P ∩ G| / (|P| + |G|); an empty ground truth gives NaN (MONAI's ``ignore_empty=True``),
  whatever the prediction; an empty prediction of a present class gives 0.
- Surfaces are the voxels of a mask with a face neighbour outside it or at the volume's border
  (``mask ^ binary_erosion(mask)``, scipy's cross structuring element). Each surface voxel's
  distance is the Euclidean distance, in mm (voxel index x spacing), to the nearest surface voxel
  of the other mask. HD95 is the larger of the two directed 95th percentiles, computed as
  MONAI computes them (``torch.quantile`` on float32 distances, whose float32 weight moves the
  result by up to a few micrometres from a float64 percentile; we follow it step for step so
  that the numbers are MONAI's, not merely close). A class empty in the prediction or in the
  ground truth (or both) has no surface distance: NaN, as MONAI gives.
- NaN is left out of every mean. Means: per class over volumes (MONAI ``mean_batch``), and
  overall as MONAI's ``mean``: each volume's mean over its classes, then the mean over volumes.
  Background (class 0) is not scored (MONAI's ``include_background=False`` for label maps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when ``gt`` is empty."""
    g = int(np.count_nonzero(gt))
    if g == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(pred & gt)) / (g + int(np.count_nonzero(pred)))


def surface(mask: np.ndarray) -> np.ndarray:
    """The mask's voxels with a face neighbour outside it (or outside the array)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _crop(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the box around their union plus one voxel: surfaces and distances are
    the same, and the distance transform runs on the box instead of the whole scan."""
    union = pred | gt
    box = []
    for axis in range(union.ndim):
        hit = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(int(hit[0]) - 1, 0), int(hit[-1]) + 2))
    return pred[tuple(box)], gt[tuple(box)]


def _directed(from_surface: np.ndarray, to_surface: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distances (mm) from each voxel of ``from_surface`` to the nearest voxel of ``to_surface``."""
    distances = ndimage.distance_transform_edt(~to_surface, sampling=spacing)
    return np.asarray(distances)[from_surface]


def hausdorff_distance(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None,
                       percentile: float | None = 95.0) -> float:
    """Symmetric (percentile) Hausdorff distance of two boolean masks in mm; NaN if either is
    empty (MONAI's value). ``percentile=None`` gives the maximum (the classic Hausdorff distance)."""
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * pred.ndim
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {spacing} for a {pred.ndim}-D mask")
    if not pred.any() or not gt.any():
        return float("nan")
    pred, gt = _crop(pred, gt)
    edges_pred, edges_gt = surface(pred), surface(gt)
    values = []
    for distances in (_directed(edges_pred, edges_gt, spacing), _directed(edges_gt, edges_pred, spacing)):
        distances = distances.astype(np.float32)
        values.append(float(distances.max()) if percentile is None else quantile_float32(distances, percentile / 100))
    return max(values)


def quantile_float32(values: np.ndarray, q: float) -> float:
    """``torch.quantile(values, q)`` (linear) for float32 ``values``, step for step as it runs on
    the CPU: the rank is the float32 ``q`` times the last index in double precision, the weight
    is rounded to float32, and ``torch.lerp`` rounds once (a fused multiply-add; the product of two
    float32 numbers is exact in float64, so float64 arithmetic rounded to float32 gives it)."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} outside [0, 1]")
    ordered = np.sort(values.astype(np.float32))
    rank = float(np.float32(q)) * (len(ordered) - 1)
    below, above = math.floor(rank), math.ceil(rank)
    weight = np.float32(rank - below)
    low, high = ordered[below], ordered[above]
    span = float(np.float32(high - low))
    if abs(weight) < 0.5:
        return float(np.float32(float(low) + float(weight) * span))
    return float(np.float32(float(high) - span * float(np.float32(1) - weight)))


@dataclass
class VolumeScore:
    """One volume's per-class ``dice`` and ``hd95`` (mm), keyed by class index."""

    name: str
    dice: dict[int, float]
    hd95: dict[int, float]


@dataclass
class VolumeMetrics:
    """Per-volume scores of classes ``classes`` (indices into ``names``), accumulated by ``update``."""

    names: list[str]
    include_background: bool = False
    volumes: list[VolumeScore] = field(default_factory=list)

    @property
    def classes(self) -> list[int]:
        return list(range(0 if self.include_background else 1, len(self.names)))

    def update(self, name: str, pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> VolumeScore:
        """Score one volume: ``pred`` and ``gt`` are integer class maps of the same shape."""
        if pred.shape != gt.shape:
            raise ValueError(f"{name}: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        score = VolumeScore(name, {}, {})
        for c in self.classes:
            p, g = pred == c, gt == c
            score.dice[c] = dice(p, g)
            score.hd95[c] = hausdorff_distance(p, g, spacing, 95.0)
        self.volumes.append(score)
        return score

    def per_class(self, metric: str) -> dict[str, float]:
        """Class name -> mean of ``metric`` ("dice" or "hd95") over the volumes where it is not
        NaN (NaN if none)."""
        out = {}
        for c in self.classes:
            values = [getattr(v, metric)[c] for v in self.volumes]
            out[self.names[c]] = _nanmean(values)
        return out

    def mean(self, metric: str) -> float:
        """MONAI's ``reduction="mean"``: per volume over classes, then over volumes (NaN skipped)."""
        return _nanmean([_nanmean(list(getattr(v, metric).values())) for v in self.volumes])

    def compute(self) -> dict[str, float]:
        """``dice`` (in percent, as the other metrics) and ``hd95`` (mm), plus ``dice/<class>`` and
        ``hd95/<class>``."""
        out = {"dice": 100.0 * self.mean("dice"), "hd95": self.mean("hd95")}
        for name, value in self.per_class("dice").items():
            out[f"dice/{name}"] = 100.0 * value
        for name, value in self.per_class("hd95").items():
            out[f"hd95/{name}"] = value
        return out

    def rows(self) -> list[dict[str, float | str]]:
        """One row per volume: its name, ``dice/<class>`` (percent) and ``hd95/<class>`` (mm)."""
        out: list[dict[str, float | str]] = []
        for v in self.volumes:
            row: dict[str, float | str] = {"volume": v.name}
            row.update({f"dice/{self.names[c]}": 100.0 * v.dice[c] for c in self.classes})
            row.update({f"hd95/{self.names[c]}": v.hd95[c] for c in self.classes})
            out.append(row)
        return out


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")
