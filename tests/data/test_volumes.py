"""NIfTI and DICOM volumes: geometry read and written exactly, DICOM slices sorted by position and
rescaled, and every malformed input reported with its file and problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from mask2former.data.synthetic_volume import synthetic_affine, synthetic_scan, write_dicom_series  # noqa: E402
from mask2former.data.volumes import (  # noqa: E402
    check_pair,
    read_geometry,
    read_volume,
    write_label_volume,
)
from mask2former.errors import DatasetError  # noqa: E402

DSfloat = pydicom.valuerep.DSfloat

SHAPE, SPACING = (20, 18, 7), (0.8, 0.7, 2.5)
HEADER_FIELDS = ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                 "qoffset_z", "srow_x", "srow_y", "srow_z", "pixdim", "dim", "xyzt_units")


def _scan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return synthetic_scan(SHAPE, SPACING, np.random.default_rng(seed))


def _nifti(path: Path, array: np.ndarray, affine: np.ndarray, *, sform: np.ndarray | None = None) -> Path:
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine if sform is None else sform, code=2)
    image.header["descrip"] = b"test scan"
    nib.save(image, path)
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_label_round_trip_keeps_shape_affine_and_header(tmp_path, suffix):
    hu, labels = _scan()
    affine = synthetic_affine(SHAPE, SPACING, angle_degrees=25.0)
    sform = affine.copy()
    sform[:3, 3] += 0.5  # qform and sform differ: both must be written back as they were
    source = _nifti(tmp_path / f"scan{suffix}", hu.astype(np.int16), affine, sform=sform)
    image = read_volume(source)
    assert image.shape == SHAPE and image.geometry.format == "nifti"
    np.testing.assert_array_equal(image.array, hu)
    np.testing.assert_allclose(image.spacing, SPACING, rtol=1e-6)
    out = write_label_volume(labels, image.geometry, tmp_path / f"labels{suffix}")
    written = nib.load(out)
    original = nib.load(source)
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    for key in HEADER_FIELDS:
        np.testing.assert_array_equal(written.header[key], original.header[key], err_msg=key)
    assert written.header.get_data_dtype() == np.uint8 and written.header.get_intent()[0] == "label"
    back = read_volume(out, label=True)
    np.testing.assert_array_equal(back.array, labels)
    check_pair(image.geometry, back.geometry)


def test_nifti_scaling_is_applied_to_images(tmp_path):
    hu, _ = _scan()
    hu = 2 * np.round(hu / 2)  # representable with slope 2
    image = nib.Nifti1Image(((hu + 1024) / 2).astype(np.int16), synthetic_affine(SHAPE, SPACING))
    image.header.set_slope_inter(2.0, -1024.0)
    nib.save(image, tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(read_volume(tmp_path / "scaled.nii.gz").array, hu)


def test_dicom_series_sorted_by_position_whatever_the_file_names(tmp_path):
    hu, _ = _scan(1)
    affine = synthetic_affine(SHAPE, SPACING, angle_degrees=-10.0)
    folder = write_dicom_series(tmp_path / "series", hu, affine, seed=3)
    names = sorted(p.name for p in folder.iterdir())
    by_position = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    assert [p.name for p in by_position] != names  # the file names do not give the slice order
    volume = read_volume(folder)
    assert volume.geometry.format == "dicom" and volume.shape == SHAPE
    np.testing.assert_array_equal(volume.array, hu)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    np.testing.assert_allclose(volume.spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(volume.geometry.origin, affine[:3, 3], atol=1e-5)
    np.testing.assert_allclose(volume.geometry.direction, affine[:3, :3] / np.asarray(SPACING), atol=1e-6)


def test_dicom_slices_stored_against_the_normal_come_out_in_normal_order(tmp_path):
    """Slices written feet-first (the step opposite the row x column normal) are read in order
    along the normal: the array is flipped and the affine says so, voxel for voxel in mm."""
    hu, _ = _scan(2)
    affine = synthetic_affine(SHAPE, SPACING)
    affine[:3, 2] *= -1
    volume = read_volume(write_dicom_series(tmp_path / "series", hu, affine))
    np.testing.assert_array_equal(volume.array, hu[:, :, ::-1])
    k = SHAPE[2] - 1
    for index in ([0, 0, 0], [3, 5, 2], [19, 17, 6]):
        i, j, s = index
        np.testing.assert_allclose(volume.affine @ [i, j, s, 1], affine @ [i, j, k - s, 1], atol=1e-4)


def test_dicom_rescale_slope_and_intercept_are_applied(tmp_path):
    hu, _ = _scan(3)
    hu = 2 * np.round(hu / 2)  # representable with slope 2
    folder = write_dicom_series(tmp_path / "series", hu, synthetic_affine(SHAPE, SPACING), slope=2.0,
                                intercept=-1100.0)
    first = pydicom.dcmread(sorted(folder.iterdir())[0])
    assert first.pixel_array.dtype == np.uint16 and first.BitsAllocated == 16
    assert float(first.RescaleSlope) == 2.0 and float(first.RescaleIntercept) == -1100.0
    assert first.pixel_array.min() >= 0 > hu.min()  # the files hold stored values, not HU
    np.testing.assert_array_equal(read_volume(folder).array, hu)


def test_dicom_labels_are_written_as_nifti_in_the_series_geometry(tmp_path):
    hu, labels = _scan(4)
    folder = write_dicom_series(tmp_path / "series", hu, synthetic_affine(SHAPE, SPACING))
    geometry = read_geometry(folder)
    out = write_label_volume(labels, geometry, tmp_path / "series_labels.nii.gz")
    back = read_volume(out, label=True)
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, geometry.affine, atol=1e-5)
    header = nib.load(out).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    check_pair(geometry, back.geometry)


# --------------------------------------------------------------------------- bad input


def _error(call, *args, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        call(*args, **kwargs)
    return info.value


def test_nifti_of_wrong_dimensions_is_refused(tmp_path):
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7, 2), np.float32), affine), tmp_path / "series.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((5, 6), np.float32), affine), tmp_path / "flat.nii")
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7, 1), np.float32), affine), tmp_path / "trailing.nii")
    error = _error(read_volume, tmp_path / "series.nii.gz")
    assert error.path == str(tmp_path / "series.nii.gz") and "4-D volume" in error.problem and "2 time" in error.problem
    assert "2-D image" in _error(read_volume, tmp_path / "flat.nii").problem
    assert read_volume(tmp_path / "trailing.nii").shape == (5, 6, 7)


def test_unreadable_and_non_volume_files_are_named(tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    assert "cannot read NIfTI" in _error(read_volume, tmp_path / "broken.nii.gz").problem
    assert "expected a NIfTI file" in _error(read_volume, tmp_path / "photo.png").problem
    assert _error(read_volume, tmp_path / "missing.nii").problem == "file not found"


def test_non_integer_labels_and_non_finite_images_are_refused(tmp_path):
    values = np.zeros((4, 4, 4), np.float32)
    values[1, 1, 1] = 1.5
    nib.save(nib.Nifti1Image(values, np.eye(4)), tmp_path / "labels.nii")
    assert "non-integer values (e.g. 1.5)" in _error(read_volume, tmp_path / "labels.nii", label=True).problem
    values[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(values, np.eye(4)), tmp_path / "image.nii")
    assert "1 NaN or infinite voxels" in _error(read_volume, tmp_path / "image.nii").problem


def test_image_and_label_of_different_shape_or_affine_are_refused(tmp_path):
    affine = synthetic_affine(SHAPE, SPACING)
    image = read_geometry(_nifti(tmp_path / "image.nii", np.zeros(SHAPE, np.int16), affine))
    small = read_geometry(_nifti(tmp_path / "small.nii", np.zeros((20, 18, 6), np.uint8), affine))
    moved = affine.copy()
    moved[0, 3] += 1.0
    shifted = read_geometry(_nifti(tmp_path / "shifted.nii", np.zeros(SHAPE, np.uint8), moved))
    error = _error(check_pair, image, small)
    assert error.path == str(tmp_path / "small.nii") and "(20, 18, 6)" in error.problem
    error = _error(check_pair, image, shifted)
    assert error.path == str(tmp_path / "shifted.nii")
    assert "affine differs" in error.problem and "origin" in error.problem


def _series(tmp_path: Path) -> Path:
    hu, _ = _scan(5)
    return write_dicom_series(tmp_path / "series", hu, synthetic_affine(SHAPE, SPACING))


def _by_position(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def test_dicom_missing_slice_is_reported(tmp_path):
    folder = _series(tmp_path)
    _by_position(folder)[3].unlink()
    error = _error(read_volume, folder)
    assert error.path == str(folder) and "missing slices" in error.problem and "1 slice(s) missing" in error.problem


def test_dicom_inconsistent_spacing_and_duplicates_are_reported(tmp_path):
    folder = _series(tmp_path)
    files = _by_position(folder)
    ds = pydicom.dcmread(files[4])
    ds.ImagePositionPatient[2] = DSfloat(float(ds.ImagePositionPatient[2]) + 0.8, auto_format=True)
    ds.save_as(files[4])
    assert "inconsistent slice spacing" in _error(read_volume, folder).problem
    ds.ImagePositionPatient = pydicom.dcmread(files[3]).ImagePositionPatient
    ds.save_as(files[4])
    assert "two slices at the same position" in _error(read_volume, folder).problem


def test_dicom_folder_with_foreign_files_or_two_series_is_reported(tmp_path):
    folder = _series(tmp_path)
    other = pydicom.dcmread(next(folder.iterdir()))
    other.SeriesInstanceUID = "1.2.3.4"
    other.save_as(folder / "zz_other.dcm")
    assert "holds 2 series" in _error(read_volume, folder).problem
    (folder / "zz_other.dcm").unlink()
    (folder / "notes.txt").write_text("not a slice")
    error = _error(read_volume, folder)
    assert error.path == str(folder / "notes.txt") and "not a DICOM file" in error.problem
    (folder / "notes.txt").unlink()
    ds = pydicom.dcmread(next(folder.iterdir()))
    del ds.ImagePositionPatient
    ds.save_as(folder / "IM0000.dcm")
    assert "missing ImagePositionPatient" in _error(read_volume, folder).problem


def test_dicom_labels_written_as_a_series_read_back_with_the_same_geometry(tmp_path):
    hu, labels = _scan(6)
    affine = synthetic_affine(SHAPE, SPACING, angle_degrees=-20.0)
    affine[:3, 2] *= -1  # slices stored against the normal: the label files follow the input's slices
    folder = write_dicom_series(tmp_path / "series", hu, affine)
    geometry = read_geometry(folder)
    out = write_label_volume(labels, geometry, tmp_path / "labels", class_names=["background", "a", "b", "c"])
    back = read_volume(out, label=True)
    assert back.geometry.format == "dicom" and back.shape == geometry.shape
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, geometry.affine, atol=1e-6)
    check_pair(geometry, back.geometry)
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    assert first.SeriesDescription == "labels: 0=background, 1=a, 2=b, 3=c"
    assert first.SeriesInstanceUID != pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    nifti = read_geometry(_nifti(tmp_path / "scan.nii", hu.astype(np.int16), affine))
    assert "written as NIfTI" in _error(write_label_volume, labels, nifti, tmp_path / "as_series").problem
    for like, target in ((geometry, folder), (nifti, tmp_path / "scan.nii")):  # never over the input
        assert "would overwrite" in _error(write_label_volume, labels, like, target).problem
    assert len(list(folder.iterdir())) == SHAPE[2] and read_volume(tmp_path / "scan.nii").shape == SHAPE
