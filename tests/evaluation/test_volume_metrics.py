"""Dice and HD95 per class and volume equal MONAI's DiceMetric and HausdorffDistanceMetric
(percentile 95, with spacing) on the same volumes, empty cases included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from mask2former.evaluation.volume_metrics import VolumeMetrics, dice, hausdorff_distance, quantile_float32

NAMES = ["background", "a", "b", "c"]
SPACING = (0.8, 1.1, 2.5)


def _blobs(shape: tuple[int, ...], rng: np.random.Generator, classes: int = 4) -> np.ndarray:
    """A label map of smooth random regions, so that surfaces are surfaces and not noise."""
    field = ndimage.gaussian_filter(rng.normal(size=(classes, *shape)), sigma=(0, 2.5, 2.5, 1.2))
    labels = np.argmax(field, axis=0)
    labels[field.max(axis=0) < np.quantile(field.max(axis=0), 0.3)] = 0
    return labels


def _volumes() -> tuple[np.ndarray, np.ndarray]:
    """Four prediction / truth pairs, with: class 3 absent from the truth of volume 1 but
    predicted; class 2 absent from the prediction of volume 2; class 1 absent from both in
    volume 3."""
    rng = np.random.default_rng(0)
    shape = (30, 26, 12)
    gt = np.stack([_blobs(shape, rng) for _ in range(4)])
    pred = gt.copy()
    for v in range(4):  # a prediction that is close but not equal: shifted, with some blobs of its own
        pred[v] = np.roll(pred[v], shift=(1, -1, 0), axis=(0, 1, 2))
        noise = _blobs(shape, rng)
        pred[v][(noise == 2) & (rng.random(shape) < 0.2)] = 2
    gt[1][gt[1] == 3] = 0
    pred[2][pred[2] == 2] = 0
    gt[3][gt[3] == 1] = 0
    pred[3][pred[3] == 1] = 0
    return pred, gt


def _one_hot(labels: np.ndarray, classes: int = 4):
    import torch

    return torch.from_numpy(np.stack([labels == c for c in range(classes)], axis=1).astype(np.float32))


def _monai(pred: np.ndarray, gt: np.ndarray) -> dict:
    monai_metrics = pytest.importorskip("monai.metrics")
    dice_metric = monai_metrics.DiceMetric(include_background=False, reduction="mean")
    hd_metric = monai_metrics.HausdorffDistanceMetric(include_background=False, percentile=95, reduction="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty classes on purpose here
        per_dice = dice_metric(_one_hot(pred), _one_hot(gt)).numpy()
        per_hd = hd_metric(_one_hot(pred), _one_hot(gt), spacing=SPACING).numpy()
    return {"dice": per_dice, "hd95": per_hd, "mean_dice": float(dice_metric.aggregate()),
            "mean_hd95": float(hd_metric.aggregate()),
            "class_dice": dice_metric.aggregate("mean_batch").numpy(),
            "class_hd95": hd_metric.aggregate("mean_batch").numpy()}


def _ours(pred: np.ndarray, gt: np.ndarray) -> VolumeMetrics:
    metrics = VolumeMetrics(NAMES)
    for v in range(len(pred)):
        metrics.update(f"v{v}", pred[v], gt[v], SPACING)
    return metrics


def test_dice_and_hd95_equal_monai_per_class_and_volume():
    pred, gt = _volumes()
    reference = _monai(pred, gt)
    ours = _ours(pred, gt)
    dice_table = np.array([[v.dice[c] for c in (1, 2, 3)] for v in ours.volumes])
    hd_table = np.array([[v.hd95[c] for c in (1, 2, 3)] for v in ours.volumes])
    # the empty cases are there, and agree: Dice NaN for an empty truth, 0 for an empty prediction;
    # HD95 NaN whenever either side is empty (no surface distance)
    assert np.isnan(dice_table[1, 2]) and np.isnan(dice_table[3, 0]) and dice_table[2, 1] == 0.0
    assert np.isnan(hd_table[1, 2]) and np.isnan(hd_table[2, 1]) and np.isnan(hd_table[3, 0])
    np.testing.assert_array_equal(np.isnan(dice_table), np.isnan(reference["dice"]))
    np.testing.assert_allclose(dice_table, reference["dice"], rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(hd_table), np.isnan(reference["hd95"]))
    finite = np.isfinite(hd_table)
    assert finite.sum() >= 8 and hd_table[finite].max() > 2.0  # real distances, in mm, not all zero
    # MONAI's numbers to the last bit of its float32 (its torch.quantile is followed step for step)
    np.testing.assert_array_equal(hd_table[finite].astype(np.float32), reference["hd95"][finite])
    assert ours.mean("dice") == pytest.approx(reference["mean_dice"], abs=1e-6)
    assert ours.mean("hd95") == pytest.approx(reference["mean_hd95"], rel=1e-6)
    np.testing.assert_allclose(list(ours.per_class("dice").values()), reference["class_dice"], atol=1e-6)
    np.testing.assert_allclose(list(ours.per_class("hd95").values()), reference["class_hd95"], rtol=1e-6)


def test_means_without_empty_predictions_equal_monai():
    """Volumes where only a class absent from both sides is NaN: the means agree to MONAI's precision."""
    pred, gt = _volumes()
    pred, gt = pred[[0, 3]], gt[[0, 3]]  # volume 3: class 1 absent from both -> NaN, left out
    reference, ours = _monai(pred, gt), _ours(pred, gt)
    assert ours.mean("hd95") == pytest.approx(reference["mean_hd95"], rel=1e-6)
    np.testing.assert_allclose(list(ours.per_class("hd95").values()), reference["class_hd95"], rtol=1e-6)
    metrics = ours.compute()
    assert metrics["dice"] == pytest.approx(100 * reference["mean_dice"], abs=1e-4)
    assert metrics["hd95"] == pytest.approx(reference["mean_hd95"], rel=1e-6)
    assert set(metrics) >= {"dice/a", "hd95/a", "dice/c", "hd95/c"}
    rows = ours.rows()
    assert [r["volume"] for r in rows] == ["v0", "v1"] and rows[0]["hd95/a"] == ours.volumes[0].hd95[1]


def test_quantile_is_torch_quantile_to_the_bit():
    import torch

    rng = np.random.default_rng(1)
    for _ in range(300):
        values = (rng.random(int(rng.integers(1, 3000))) * 50).astype(np.float32)
        q = float(rng.choice([0.95, 0.5, 0.0, 1.0, rng.random()]))
        assert quantile_float32(values, q) == float(torch.quantile(torch.from_numpy(values), q))


def test_hausdorff_distance_uses_the_spacing():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros((10, 10, 10), bool)
    a[2, 4, 4] = True
    b[5, 4, 4] = True
    assert hausdorff_distance(a, b, (2.5, 1.0, 1.0)) == pytest.approx(7.5)
    assert hausdorff_distance(a, b, (1.0, 1.0, 1.0), percentile=None) == pytest.approx(3.0)
    assert hausdorff_distance(a, a, (2.5, 1.0, 1.0)) == 0.0
    empty = np.zeros_like(a)
    assert np.isnan(hausdorff_distance(empty, empty)) and np.isnan(hausdorff_distance(a, empty))
    assert np.isnan(hausdorff_distance(empty, a))
    assert dice(a, a) == 1.0 and dice(a, b) == 0.0 and np.isnan(dice(a, empty)) and dice(empty, a) == 0.0
