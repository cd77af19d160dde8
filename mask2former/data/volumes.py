"""Medical volumes in (NIfTI files, DICOM series) and label volumes out, with their geometry.

A ``Volume`` is a 3-D array plus the affine that maps voxel indices ``(i, j, k, 1)`` to patient
coordinates in millimetres, in NIfTI's RAS+ convention for both formats (DICOM's LPS coordinates
have x and y negated), so an image series and a label file of the same scan compare equal
whatever format each one is in. DICOM arrays are ``[columns, rows, slices]`` (the layout NIfTI
converters give), slices sorted along the slice normal, each slice's RescaleSlope/Intercept
applied.

Label volumes are written in their image's format (``write_label_volume``): a NIfTI file with the
input's own header (qform, sform, their codes, pixdim, units) so it overlays its image exactly;
or a DICOM series, one file per input slice with that slice's geometry tags copied, a new series
in the same study and frame of reference, so that reading it back gives the same affine and shape.
A DICOM series' labels may also be written as NIfTI in the series' geometry (name the file .nii.gz).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.atomic_files import atomic_write
from mask2former.data.files import NOT_FOUND, path_problem
from mask2former.errors import DatasetError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_VOXELS = 2**31  # 8 GB as float32: far past any CT or MRI scan, short of a hostile header's 10^15
AFFINE_TOLERANCE = 1e-3  # mm: NIfTI stores its affine in float32, so one scan's two files differ by ~1e-5
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
INSTALL_HINT = "pip install 'mask2former[medical]'"


@dataclass
class Geometry:
    """Where a volume's voxels are: ``shape`` ``(I, J, K)`` and ``affine [4, 4]`` (voxel index ->
    RAS+ mm). ``header`` is the NIfTI header of a NIfTI source (None for DICOM), kept so that a
    label volume is written with the very same qform and sform."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    source: Path
    format: str  # "nifti" | "dicom"
    header: Any = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ mm position of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """``[3, 3]`` unit vectors (columns) of the array axes in RAS+."""
        return self.affine[:3, :3] / np.asarray(self.spacing)

    def slice_axis(self) -> int:
        """The acquisition axis: DICOM's slice axis; for NIfTI the axis of largest spacing (the
        last axis on a tie), as thick-slice scans are acquired along it."""
        if self.format == "dicom":
            return 2
        spacing = np.asarray(self.spacing)
        return int(np.flatnonzero(spacing >= spacing.max() * (1 - 1e-6))[-1])


@dataclass
class Volume:
    """``array [I, J, K]`` (float32 intensities, or integer labels) and its ``geometry``."""

    array: np.ndarray
    geometry: Geometry

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def affine(self) -> np.ndarray:
        return self.geometry.affine

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def source(self) -> Path:
        return self.geometry.source


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def volume_name(path: str | os.PathLike) -> str:
    """A file's name without ``.nii`` / ``.nii.gz``; a DICOM folder's name."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kind(path: Path) -> str:
    """"dicom" for a folder, "nifti" for a .nii / .nii.gz file; anything else is an error."""
    if path_problem(path, expect="dir") is None:
        return "dicom"
    problem = path_problem(path)
    if problem is not None:
        raise DatasetError(path, "file not found" if problem == NOT_FOUND else problem)
    if not is_nifti(path):
        raise DatasetError(path, "expected a NIfTI file (.nii, .nii.gz) or a folder holding one DICOM series")
    return "nifti"


def read_volume(path: str | os.PathLike, *, label: bool = False) -> Volume:
    """A NIfTI file or a DICOM series folder; ``label`` reads integer class values instead of
    float intensities (non-integer values are an error)."""
    path = Path(path)
    return read_dicom_series(path, label=label) if _kind(path) == "dicom" else read_nifti(path, label=label)


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The geometry alone (headers only, no voxel decoded), to check a dataset in seconds."""
    path = Path(path)
    if _kind(path) == "dicom":
        return _dicom_layout(path)[0]
    return _nifti_geometry(path)[0]


# --------------------------------------------------------------------------- NIfTI


def _nibabel(path: Path) -> Any:
    try:
        import nibabel
    except ImportError:
        raise DatasetError(path, f"reading and writing NIfTI needs nibabel ({INSTALL_HINT})") from None
    return nibabel


def _nifti_geometry(path: Path) -> tuple[Geometry, Any]:
    """The file's geometry and its (lazy) nibabel image."""
    problem = path_problem(path)
    if problem is not None:
        raise DatasetError(path, "file not found" if problem == NOT_FOUND else problem)
    nib = _nibabel(path)
    try:
        image = nib.load(path)
    except Exception as e:  # nibabel's ImageFileError, a truncated gzip (EOFError, zlib.error), a bad header
        raise DatasetError(path, f"cannot read NIfTI header ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DatasetError(path, f"not a single-file NIfTI image (nibabel reads it as {type(image).__name__})")
    shape = _volume_shape(tuple(int(n) for n in image.shape), path)
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DatasetError(path, "the header's affine (qform/sform) is degenerate or not finite")
    return Geometry(shape=shape, affine=affine, source=path, format="nifti", header=image.header), image


def read_nifti(path: str | os.PathLike, *, label: bool = False) -> Volume:
    """A ``.nii`` / ``.nii.gz`` file; scaling (scl_slope/scl_inter) applied to images."""
    path = Path(path)
    geometry, image = _nifti_geometry(path)
    try:
        # labels: a copy, not a memory map of the file; images: scl_slope / scl_inter applied
        array = (_as_labels(np.array(np.asanyarray(image.dataobj)), path) if label
                 else image.get_fdata(dtype=np.float32))
    except DatasetError:
        raise
    except Exception as e:  # truncated data, a gzip stream cut short
        raise DatasetError(path, f"cannot read NIfTI voxels ({type(e).__name__}: {str(e)[:200]})") from None
    array = array.reshape(geometry.shape)
    if not label:
        _check_finite(array, path)
    return Volume(array=array, geometry=geometry)


def _volume_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """The 3-D shape of a file's array: trailing singleton dimensions are dropped; time series,
    multi-channel files and 2-D images are errors saying what was found."""
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        what = (f"{len(shape)}-D image {shape}" if len(shape) < 3
                else f"{len(shape)}-D volume {shape} ({shape[3]} time points or channels)")
        raise DatasetError(path, f"{what}; expected a 3-D volume (one file per channel or time point)")
    if min(shape) < 1:
        raise DatasetError(path, f"empty volume of shape {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise DatasetError(path, f"volume of shape {shape} has {voxels:,} voxels, more than the {MAX_VOXELS:,} "
                                 "allowed")
    return shape


def _as_labels(values: np.ndarray, path: Path) -> np.ndarray:
    """Integer class values; a float label file is accepted when every value is a whole number."""
    if values.dtype.kind in "iub":
        return values.astype(np.uint8) if values.dtype.kind == "b" else values
    if values.dtype.kind != "f":
        raise DatasetError(path, f"label volume of type {values.dtype}; expected integer class values")
    finite = np.isfinite(values)
    whole = finite & (values == np.round(values))
    if not whole.all():
        bad = values[~whole][:5].tolist()
        raise DatasetError(path, f"label volume holds {int((~whole).sum()):,} non-integer values (e.g. "
                                 f"{', '.join(f'{v:g}' for v in bad)}); expected integer class values (is this "
                                 "the image instead of its labels?)")
    if values.size and (values.min() < -(2**31) or values.max() >= 2**31):
        raise DatasetError(path, "label values outside the 32-bit integer range")
    return values.astype(np.int32)


def _check_finite(array: np.ndarray, path: Path) -> None:
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise DatasetError(path, f"volume holds {bad:,} NaN or infinite voxels")


# --------------------------------------------------------------------------- DICOM


@dataclass
class _Slice:
    path: Path
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient: row then column direction cosines
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns)
    size: tuple[int, int]  # (Rows, Columns)
    series: str


_REQUIRED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")


def _pydicom(path: Path) -> Any:
    try:
        import pydicom
    except ImportError:
        raise DatasetError(path, f"reading DICOM needs pydicom ({INSTALL_HINT})") from None
    return pydicom


def _read_header(path: Path, pydicom: Any) -> _Slice:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        raise DatasetError(path, "not a DICOM file (no 'DICM' marker); a series folder must hold only its "
                                 "slices") from None
    except Exception as e:
        raise DatasetError(path, f"cannot read DICOM ({type(e).__name__}: {str(e)[:200]})") from None
    missing = [k for k in _REQUIRED if k not in ds]
    if missing:
        raise DatasetError(path, f"missing {', '.join(missing)}: cannot place the slice in the volume")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DatasetError(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported; expected one "
                                 "slice per file")
    try:
        position = np.array([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        size = (int(ds.Rows), int(ds.Columns))
    except (TypeError, ValueError) as e:
        raise DatasetError(path, f"malformed geometry tags ({e})") from None
    if position.shape != (3,) or orientation.shape != (6,) or len(spacing) != 2 or min(spacing) <= 0 \
            or not (np.isfinite(position).all() and np.isfinite(orientation).all()):
        raise DatasetError(path, "malformed ImagePositionPatient / ImageOrientationPatient / PixelSpacing")
    if min(size) < 1:
        raise DatasetError(path, f"empty slice ({size[0]}x{size[1]})")
    return _Slice(path, position, orientation, (spacing[0], spacing[1]), size, str(ds.get("SeriesInstanceUID", "")))


def _series_files(folder: Path) -> list[Path]:
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.name.upper() != "DICOMDIR")
    except OSError as e:
        raise DatasetError(folder, f"cannot list the folder ({e.strerror or e})") from None
    if not files:
        raise DatasetError(folder, "no files: expected the DICOM files of one series")
    return files


def _check_same(slices: list[_Slice], folder: Path) -> None:
    first = slices[0]
    series = sorted({s.series for s in slices})
    if len(series) > 1:
        raise DatasetError(folder, f"holds {len(series)} series (SeriesInstanceUID {', '.join(series[:3])}); "
                                   "expected one folder per series")
    for s in slices[1:]:
        if s.size != first.size:
            raise DatasetError(s.path, f"slice is {s.size[0]}x{s.size[1]} but {first.path.name} is "
                                       f"{first.size[0]}x{first.size[1]} (rows x columns)")
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise DatasetError(s.path, f"ImageOrientationPatient differs from {first.path.name}'s")
        if not np.allclose(s.spacing, first.spacing, rtol=1e-4, atol=1e-6):
            raise DatasetError(s.path, f"PixelSpacing {s.spacing} differs from {first.path.name}'s {first.spacing}")


def _slice_step(slices: list[_Slice], normal: np.ndarray, folder: Path) -> np.ndarray:
    """The LPS vector from one slice to the next (sorted along ``normal``), after checking
    that positions are distinct, evenly spaced (a gap is named as missing slices) and on a line."""
    distances = np.array([float(s.position @ normal) for s in slices])
    if len(slices) == 1:
        return normal * 1.0  # a lone slice: no spacing to measure; 1 mm keeps the affine invertible
    steps = np.diff(distances)
    step = float(np.median(steps))
    tolerance = max(1e-3, 0.01 * abs(step))
    for k, d in enumerate(steps):
        a, b = slices[k].path.name, slices[k + 1].path.name
        if d < tolerance:
            raise DatasetError(slices[k + 1].path, f"two slices at the same position ({a} and {b}, "
                                                   f"{distances[k]:.3f} mm along the slice normal)")
        if abs(d - step) > tolerance:
            ratio = d / step
            if abs(ratio - round(ratio)) * step <= tolerance and round(ratio) >= 2:
                raise DatasetError(folder, f"missing slices: a gap of {d:.3f} mm between {a} and {b} where the "
                                           f"series steps {step:.3f} mm ({round(ratio) - 1} slice(s) missing)")
            raise DatasetError(folder, f"inconsistent slice spacing: {d:.3f} mm between {a} and {b}, "
                                       f"{step:.3f} mm elsewhere")
    vector = (slices[-1].position - slices[0].position) / (len(slices) - 1)
    for k, s in enumerate(slices):
        off = float(np.linalg.norm(s.position - (slices[0].position + k * vector)))
        if off > max(tolerance, 1e-2):
            raise DatasetError(s.path, f"slice is {off:.3f} mm off the line through the series' slice positions")
    return vector


def _dicom_layout(folder: Path) -> tuple[Geometry, list[_Slice]]:
    """The series' geometry (headers only) and its slices in order along the slice normal."""
    pydicom = _pydicom(folder)
    slices = [_read_header(p, pydicom) for p in _series_files(folder)]
    _check_same(slices, folder)
    row_dir, col_dir = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(np.linalg.norm(normal) - 1) > 1e-3 or abs(float(row_dir @ col_dir)) > 1e-3:
        raise DatasetError(slices[0].path, "ImageOrientationPatient is not two orthogonal unit vectors")
    slices.sort(key=lambda s: float(s.position @ normal))
    step = _slice_step(slices, normal, folder)
    rows, cols = slices[0].size
    shape = _volume_shape((cols, rows, len(slices)), folder)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * slices[0].spacing[1]  # along a row the column index grows
    affine_lps[:3, 1] = col_dir * slices[0].spacing[0]
    affine_lps[:3, 2] = step
    affine_lps[:3, 3] = slices[0].position
    return Geometry(shape=shape, affine=LPS_TO_RAS @ affine_lps, source=folder, format="dicom"), slices


def read_dicom_series(folder: str | os.PathLike, *, label: bool = False) -> Volume:
    """One series' folder -> ``[columns, rows, slices]`` values after RescaleSlope/Intercept
    (Hounsfield units for CT), slices in order along the slice normal whatever the file names."""
    folder = Path(folder)
    geometry, slices = _dicom_layout(folder)
    pydicom = _pydicom(folder)
    cols, rows, _ = geometry.shape
    array = np.empty(geometry.shape, dtype=np.float32)
    for k, s in enumerate(slices):
        array[:, :, k] = _pixels(s.path, pydicom, (rows, cols)).T
    if label:
        return Volume(array=_as_labels(array, folder), geometry=geometry)
    _check_finite(array, folder)
    return Volume(array=array, geometry=geometry)


def _pixels(path: Path, pydicom: Any, size: tuple[int, int]) -> np.ndarray:
    """``[rows, columns]`` float32 of one file with its own RescaleSlope/RescaleIntercept."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    except Exception as e:  # a compressed transfer syntax without its decoder, truncated pixel data
        raise DatasetError(path, f"cannot decode the pixel data ({type(e).__name__}: {str(e)[:200]})") from None
    if pixels.shape != size:
        raise DatasetError(path, f"pixel data is {pixels.shape} but Rows/Columns say {size} (colour or "
                                 "multi-frame pixel data is not supported)")
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


# --------------------------------------------------------------------------- pairs and writing


def check_pair(image: Geometry, label: Geometry) -> None:
    """Raise unless ``label`` covers ``image`` voxel for voxel: same shape, same affine (to
    ``AFFINE_TOLERANCE`` mm), the files named in the error."""
    if image.shape != label.shape:
        raise DatasetError(label.source, f"label volume is {label.shape} but its image {image.source} is "
                                         f"{image.shape} (voxels)")
    if not np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE, rtol=0):
        worst = float(np.abs(image.affine - label.affine).max())
        raise DatasetError(label.source, f"label volume's affine differs from its image {image.source}'s by up to "
                                         f"{worst:.4g} (spacing {_fmt(label.spacing)} vs {_fmt(image.spacing)} mm, "
                                         f"origin {_fmt(label.origin)} vs {_fmt(image.origin)} mm)")


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _label_dtype(labels: np.ndarray) -> type:
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low >= 0:
        return np.uint8 if high < 2**8 else np.uint16 if high < 2**16 else np.int32
    return np.int16 if low >= -(2**15) and high < 2**15 else np.int32


def write_label_volume(labels: np.ndarray, like: Geometry, path: str | os.PathLike, *,
                       class_names: Sequence[str] = ()) -> Path:
    """Write integer ``labels`` (shape ``like.shape``) with ``like``'s geometry: a ``.nii`` /
    ``.nii.gz`` path gets a NIfTI file (a NIfTI source's own header, qform, sform and their codes
    kept; a DICOM series' affine as both qform and sform, code 1, scanner), written atomically;
    any other path, for a DICOM source, a DICOM series folder (``write_dicom_labels``)."""
    path = Path(path)
    if labels.shape != like.shape:
        raise ValueError(f"labels of shape {labels.shape} for a volume of shape {like.shape}")
    if path.resolve() == like.source.resolve():
        raise DatasetError(path, "the labels would overwrite their own image volume: choose another output folder")
    if not is_nifti(path):
        if like.format == "dicom":
            return write_dicom_labels(labels, like, path, class_names=class_names)
        raise DatasetError(path, "label volumes of a NIfTI image are written as NIfTI: name the file .nii or .nii.gz")
    nib = _nibabel(path)
    data: np.ndarray = np.ascontiguousarray(labels, dtype=_label_dtype(labels))
    if like.header is not None and isinstance(like.header, nib.Nifti1Header):
        header = like.header.copy()
        header.set_data_dtype(data.dtype)
        header.set_slope_inter(1.0, 0.0)
        header.set_intent("label")
        kind = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        image = kind(data, None, header)  # affine None: the header's qform and sform are written as they are
    else:
        image = nib.Nifti1Image(data, like.affine)
        image.set_qform(like.affine, code=1)
        image.set_sform(like.affine, code=1)
        image.header.set_xyzt_units("mm")
        image.header.set_intent("label")
    payload = image.to_bytes()
    if str(path).lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return atomic_write(path, lambda f: f.write(payload))


def write_dicom_labels(labels: np.ndarray, like: Geometry, folder: str | os.PathLike, *,
                       class_names: Sequence[str] = ()) -> Path:
    """Write ``labels [columns, rows, slices]`` as a DICOM series into ``folder`` (emptied of
    earlier ``.dcm`` files): one file per slice of the series ``like.source``, each copying its
    slice's geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
    Rows, Columns) and the patient, study and frame of reference, with a new SeriesInstanceUID and
    SOPInstanceUIDs, 16-bit unsigned label values, RescaleSlope 1 / RescaleIntercept 0 and a
    SeriesDescription naming the labels."""
    folder = Path(folder)
    if labels.shape != like.shape:
        raise ValueError(f"labels of shape {labels.shape} for a volume of shape {like.shape}")
    if like.format != "dicom":
        raise DatasetError(folder, "a DICOM label series needs a DICOM image series to copy its geometry from")
    if folder.resolve() == like.source.resolve():
        raise DatasetError(folder, "the labels would overwrite their own image series: choose another output folder")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise DatasetError(folder, f"label values {labels.min()}..{labels.max()} do not fit 16-bit unsigned pixels")
    pydicom = _pydicom(folder)
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    _, slices = _dicom_layout(like.source)
    if len(slices) != like.shape[2]:
        raise DatasetError(like.source, f"the series now has {len(slices)} slices, the labels {like.shape[2]}")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    series = generate_uid()
    names = ", ".join(f"{i}={n}" for i, n in enumerate(class_names))
    description = f"labels: {names}" if names else "labels"
    copied = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
              "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
              "StudyTime", "StudyID", "AccessionNumber", "FrameOfReferenceUID", "PositionReferenceIndicator",
              "Modality", "SOPClassUID")
    for k, s in enumerate(slices):
        source = pydicom.dcmread(s.path, stop_before_pixels=True)
        d = Dataset()
        for key in copied:
            if key in source:
                setattr(d, key, source.data_element(key).value)
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = d.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")  # else Secondary Capture
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        d.file_meta = meta
        d.SOPClassUID, d.SOPInstanceUID = meta.MediaStorageSOPClassUID, uid
        d.SeriesInstanceUID, d.InstanceNumber = series, k + 1
        d.SeriesNumber = 9000 + int(source.get("SeriesNumber", 0) or 0)
        d.SeriesDescription = description[:64]
        d.ImageType = ["DERIVED", "SECONDARY", "LABELS"]
        d.Rows, d.Columns = s.size
        d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
        d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 0
        d.RescaleSlope, d.RescaleIntercept = "1", "0"
        d.PixelData = np.ascontiguousarray(labels[:, :, k].T).astype("<u2").tobytes()  # [rows, columns]
        pydicom.dcmwrite(folder / f"IM{k + 1:04d}.dcm", d, enforce_file_format=True)
    return folder
