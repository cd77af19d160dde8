"""Predicting volumes slice by slice: the label volume keeps the input's format, shape and
geometry (a NIfTI input's own header; a DICOM series' per-slice geometry), each slice is the
predictor on that slice mapped by the whole volume's intensity ranges, bad volumes are reported."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from mask2former import Predictor  # noqa: E402
from mask2former.data.intensity import OnModelScale  # noqa: E402
from mask2former.data.synthetic_volume import write_synthetic_volumes  # noqa: E402
from mask2former.data.volume_dataset import slice_input, take_slice, volume_ranges  # noqa: E402
from mask2former.data.volumes import check_pair, read_geometry, read_volume  # noqa: E402
from mask2former.errors import DatasetError  # noqa: E402
from mask2former.inference.predict_volumes import is_volume_input, predict_volume, predict_volumes  # noqa: E402

HEADER_FIELDS = ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "srow_x", "srow_y",
                 "srow_z", "pixdim", "dim")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("volumes")
    write_synthetic_volumes(root, num_train=1, num_val=1, shape=(48, 40, 8), seed=2)
    return root


def _predictor(model, **pixels) -> Predictor:
    """The tiny model reading CT: the window rule (or ``pixels``) over its 3 channels."""
    settings = {"intensity": "window", "window": (-1000.0, 400.0), **pixels}
    return Predictor(model, config=replace(model.config, pixels=replace(model.config.pixels, **settings)))


def test_nifti_prediction_keeps_shape_affine_and_header(tmp_path, synthetic, tiny_model):
    images = synthetic / "nifti" / "images" / "val"
    assert is_volume_input(images) and is_volume_input(images / "case_val_000.nii.gz")
    report = predict_volumes(_predictor(tiny_model), [images], tmp_path)
    assert not report.failed and [p.name for p in report.written] == ["case_val_000.nii.gz"]
    source, written = nib.load(images / "case_val_000.nii.gz"), nib.load(report.written[0])
    assert written.shape == source.shape == (48, 40, 8)
    np.testing.assert_array_equal(written.affine, source.affine)
    for key in HEADER_FIELDS:
        np.testing.assert_array_equal(written.header[key], source.header[key], err_msg=key)
    labels = np.asarray(written.dataobj)
    assert labels.dtype == np.uint8 and labels.max() < 4


def test_dicom_prediction_is_a_dicom_series_in_the_series_geometry(tmp_path, synthetic, tiny_model):
    series = synthetic / "dicom" / "images" / "val" / "case_val_000"
    assert is_volume_input(series) and is_volume_input(series.parent) and not is_volume_input(tmp_path)
    predictor = _predictor(tiny_model)
    report = predict_volumes(predictor, [series.parent], tmp_path)
    assert [p.name for p in report.written] == ["case_val_000"] and report.written[0].is_dir()
    geometry, written = read_geometry(series), read_geometry(report.written[0])
    assert written.shape == geometry.shape and written.format == "dicom"
    check_pair(geometry, written)
    np.testing.assert_allclose(written.affine, geometry.affine, atol=1e-6)
    labels = read_volume(report.written[0], label=True).array
    np.testing.assert_array_equal(labels, predict_volume(predictor, read_volume(series)))
    sources = {float(pydicom.dcmread(p).ImagePositionPatient[2]): pydicom.dcmread(p) for p in series.iterdir()}
    outputs = [pydicom.dcmread(p) for p in sorted(report.written[0].iterdir())]
    assert len(outputs) == len(sources) == 8
    uids = {d.SeriesInstanceUID for d in outputs}
    assert len(uids) == 1 and uids.isdisjoint({d.SeriesInstanceUID for d in sources.values()})
    for d in outputs:
        source = sources[float(d.ImagePositionPatient[2])]
        for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows",
                    "Columns", "StudyInstanceUID", "FrameOfReferenceUID"):
            assert d[key].value == source[key].value, key
        assert d.SOPInstanceUID != source.SOPInstanceUID and d.pixel_array.dtype == np.uint16
        assert float(d.RescaleSlope) == 1 and float(d.RescaleIntercept) == 0 and "labels" in d.SeriesDescription


def test_each_slice_is_the_predictor_on_that_slice(synthetic, tiny_model):
    volume = read_volume(synthetic / "nifti" / "images" / "val" / "case_val_000.nii.gz")
    for axis, predictor in ((2, _predictor(tiny_model)), (0, _predictor(tiny_model, intensity="zscore", window=()))):
        labels = predict_volume(predictor, volume, axis=axis)
        ranges = volume_ranges(volume.array, predictor.pixels)  # the whole volume's, not each slice's
        for k in (0, 3):
            stack = slice_input(take_slice(volume.array, axis, k, 1), ranges, 3)
            alone = predictor(OnModelScale(stack), task="semantic")
            np.testing.assert_array_equal(take_slice(labels, axis, k), alone.semantic.labels.numpy())


def test_bad_volumes_are_reported_and_the_others_written(tmp_path, synthetic, tiny_model):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(synthetic / "nifti" / "images" / "val" / "case_val_000.nii.gz", inputs / "good.nii.gz")
    (inputs / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08 cut short")
    report = predict_volumes(_predictor(tiny_model), [inputs], tmp_path / "out")
    assert [p.name for p in report.written] == ["good.nii.gz"]
    assert len(report.failed) == 1 and report.failed[0].path.endswith("broken.nii.gz")
    assert "cannot read NIfTI" in report.failed[0].problem
    with pytest.raises(DatasetError, match="broken.nii.gz"):
        predict_volumes(_predictor(tiny_model), [inputs], tmp_path / "strict", strict=True)
