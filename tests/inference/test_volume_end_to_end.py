"""Medical volumes end to end through the command line, on CPU, without downloads: synthetic
NIfTI and DICOM scans -> train a tiny model a few iterations -> eval (Dice and HD95 per volume
beside mIoU, equal to MONAI's on the predicted volumes) -> predict (label volumes in the input's
format with its geometry and shape)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

nib = pytest.importorskip("nibabel")
pytest.importorskip("pydicom")

from mask2former import load_model  # noqa: E402
from mask2former.cli import main  # noqa: E402
from mask2former.data.synthetic_volume import CLASSES, write_synthetic_volumes  # noqa: E402
from mask2former.data.volumes import read_geometry, read_volume  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """Two training scans and one validation scan of 32 x 32 x 8 voxels, both formats, and a tiny
    model trained on the NIfTI copy through ``mask2former train``."""
    root = tmp_path_factory.mktemp("volumes")
    nifti, dicom = write_synthetic_volumes(root / "data", num_train=2, num_val=1, shape=(32, 32, 8), seed=0)
    assert main(["-q", "train", "--data", str(nifti), "--preset", "tiny", "--output", str(root / "run"),
                 "--iters", "3", "--set", "num_workers=0", "log_period=1"]) == 0
    return {"root": root, "nifti": nifti, "dicom": dicom, "checkpoint": root / "run" / "model_final.pt"}


def test_synth_command_writes_both_formats(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--kind", "volume", "--train", "1", "--val", "0"]) == 0
    printed = capsys.readouterr().out
    for kind in ("nifti", "dicom"):
        path = tmp_path / f"{kind}.yaml"
        assert f"wrote {path}" in printed
        config = yaml.safe_load(path.read_text())
        assert config["format"] == kind and config["classes"] == CLASSES and "val" not in config
        assert config["intensity"] == "window" and config["window"] == [-1000, 400]


def test_the_checkpoint_maps_volumes_as_data_yaml_says(run):
    pixels = load_model(run["checkpoint"]).config.pixels
    assert (pixels.intensity, tuple(pixels.window), pixels.channels) == ("window", (-1000.0, 400.0), 3)


def _monai(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    def one_hot(labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([labels == c for c in range(len(CLASSES))])[None].astype(np.float32))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about classes a prediction leaves empty
        dice = DiceMetric(include_background=False)(one_hot(pred), one_hot(gt)).numpy()[0]
        hd95 = HausdorffDistanceMetric(include_background=False, percentile=95)(
            one_hot(pred), one_hot(gt), spacing=list(spacing)).numpy()[0]
    return dice, hd95


def test_eval_then_predict_nifti(run, tmp_path, capsys):
    data = run["root"] / "data"
    assert main(["eval", "--checkpoint", str(run["checkpoint"]), "--data", str(run["nifti"]),
                 "--output", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("semantic.mIoU", "dice", "hd95", *(f"{m}/{c}" for m in ("dice", "hd95") for c in CLASSES[1:])):
        assert key in metrics and f"{key} " in printed, key
    assert 0 <= metrics["semantic.mIoU"] <= 100 and 0 <= metrics["dice"] <= 100
    [row] = metrics["volumes"]
    assert row["volume"] == "case_val_000"
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Per volume" in report and "case_val_000" in report

    source = data / "nifti" / "images" / "val" / "case_val_000.nii.gz"
    assert main(["-q", "predict", "--checkpoint", str(run["checkpoint"]), "--input", str(source.parent),
                 "--output", str(tmp_path / "pred")]) == 0
    written = tmp_path / "pred" / "case_val_000.nii.gz"
    image, labels = nib.load(source), nib.load(written)
    assert labels.shape == image.shape == (32, 32, 8)
    np.testing.assert_array_equal(labels.affine, image.affine)
    assert labels.header["qform_code"] == image.header["qform_code"] == 1
    assert labels.header["sform_code"] == image.header["sform_code"] == 1

    # the reported scores are MONAI's on the predicted and the true label volumes
    pred = read_volume(written, label=True).array
    truth = read_volume(data / "nifti" / "labels" / "val" / "case_val_000.nii.gz", label=True).array
    dice, hd95 = _monai(pred, truth, read_geometry(source).spacing)
    for c, name in enumerate(CLASSES[1:]):
        assert row[f"dice/{name}"] == pytest.approx(100 * dice[c], abs=1e-4)
        if np.isnan(hd95[c]):
            assert row[f"hd95/{name}"] is None  # JSON null: no surface distance, as MONAI's NaN
        else:
            assert row[f"hd95/{name}"] == pytest.approx(float(hd95[c]), rel=1e-6)
    assert metrics["dice"] == pytest.approx(100 * float(np.nanmean(dice)), abs=1e-4)


def test_eval_then_predict_dicom(run, tmp_path):
    data = run["root"] / "data"
    assert main(["-q", "eval", "--checkpoint", str(run["checkpoint"]), "--data", str(run["dicom"]),
                 "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"dice", "hd95", "semantic.mIoU", "dice/liver"} <= set(metrics)

    series = data / "dicom" / "images" / "val" / "case_val_000"
    assert main(["-q", "predict", "--checkpoint", str(run["checkpoint"]), "--input", str(series),
                 "--output", str(tmp_path / "pred")]) == 0
    written = tmp_path / "pred" / "case_val_000"
    assert written.is_dir() and len(list(written.iterdir())) == 8  # one file per slice
    image, labels = read_geometry(series), read_geometry(written)
    assert labels.format == "dicom" and labels.shape == image.shape == (32, 32, 8)
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-6)
    # the same voxels as the NIfTI copy: the same labels
    nifti = data / "nifti" / "images" / "val" / "case_val_000.nii.gz"
    assert main(["-q", "predict", "--checkpoint", str(run["checkpoint"]), "--input", str(nifti),
                 "--output", str(tmp_path / "pred_nifti")]) == 0
    np.testing.assert_array_equal(read_volume(written, label=True).array,
                                  read_volume(tmp_path / "pred_nifti" / "case_val_000.nii.gz", label=True).array)
