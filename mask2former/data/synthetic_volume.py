"""Synthetic CT-like volumes, written as NIfTI files and as DICOM series with the real libraries.

Each scan is a body (soft tissue, 0 HU) in air (-1000 HU) holding three ellipsoid "organs" of
distinct densities (liver 150 HU, kidneys -200 HU as a pair, bone 350 HU), placed and sized at
random in millimetres, with Gaussian noise. Voxels are anisotropic (0.9 x 0.9 x 3 mm by default)
and the affine is rotated about the slice axis and shifted, so the readers and writers are tested
on geometry that an identity affine would hide.

Layout under ``out_dir``::

    nifti/images/{split}/case_NNN.nii.gz    int16 HU
    nifti/labels/{split}/case_NNN.nii.gz    uint8 class values (0 background, 1 liver, 2 kidney, 3 bone)
    dicom/images/{split}/case_NNN/*.dcm     CT series, 16-bit stored values with RescaleSlope/Intercept,
                                            file names shuffled against the slice order
    dicom/labels/{split}/case_NNN/*.dcm     label series, each file with its image slice's geometry
    nifti.yaml, dicom.yaml                  their DATA.yaml files (format: nifti / dicom; CT window)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from mask2former.data.volumes import INSTALL_HINT, LPS_TO_RAS, Geometry, read_geometry, write_dicom_labels
from mask2former.errors import DatasetError

CLASSES = ["background", "liver", "kidney", "bone"]
HU = {"air": -1000.0, "body": 0.0, "liver": 150.0, "kidney": -200.0, "bone": 350.0}


def synthetic_affine(shape: Sequence[int], spacing: Sequence[float], *, angle_degrees: float = 15.0,
                     offset: Sequence[float] = (-30.0, 20.0, -50.0)) -> np.ndarray:
    """RAS+ affine: ``spacing`` along the axes, rotated by ``angle_degrees`` about the third
    axis, voxel (0, 0, 0) at ``offset`` mm."""
    a = math.radians(angle_degrees)
    rotation = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = offset
    return affine


def synthetic_scan(shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(hu float32 [I, J, K], labels uint8 [I, J, K])`` of one random scan."""
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")  # mm
    extent = [n * s for n, s in zip(shape, spacing)]
    centre = [e / 2 for e in extent]

    def ellipsoid(c: Sequence[float], r: Sequence[float]) -> np.ndarray:
        return sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grid, c, r)) <= 1.0

    hu = np.full(tuple(shape), HU["air"], dtype=np.float32)
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    body = ((grid[0] - centre[0]) / (0.46 * extent[0])) ** 2 + ((grid[1] - centre[1]) / (0.44 * extent[1])) ** 2 <= 1
    hu[body] = HU["body"]

    def jitter(value: float, fraction: float = 0.12) -> float:
        return value * (1 + rng.uniform(-fraction, fraction))

    organs = [
        ("liver", 1, [[jitter(0.38 * extent[0]), jitter(0.42 * extent[1]), jitter(0.5 * extent[2])]],
         [jitter(0.2 * extent[0]), jitter(0.18 * extent[1]), jitter(0.32 * extent[2])]),
        ("kidney", 2, [[jitter(0.66 * extent[0]), jitter(0.32 * extent[1]), jitter(0.5 * extent[2])],
                       [jitter(0.66 * extent[0]), jitter(0.68 * extent[1]), jitter(0.5 * extent[2])]],
         [jitter(0.08 * extent[0]), jitter(0.1 * extent[1]), jitter(0.25 * extent[2])]),
        ("bone", 3, [[jitter(0.5 * extent[0], 0.03), jitter(0.82 * extent[1], 0.03), centre[2]]],
         [jitter(0.07 * extent[0]), jitter(0.06 * extent[1]), 0.6 * extent[2]]),
    ]
    for name, value, centres, radii in organs:
        for c in centres:
            inside = ellipsoid(c, radii) & body
            hu[inside] = HU[name]
            labels[inside] = value
    hu += rng.normal(0.0, 15.0, size=hu.shape).astype(np.float32)
    return np.clip(np.round(hu), -1024, 3071).astype(np.float32), labels


def write_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray, dtype: type = np.int16) -> Path:
    """An image volume with ``affine`` as both qform and sform (code 1, scanner)."""
    path = Path(path)
    try:
        import nibabel as nib
    except ImportError:
        raise DatasetError(path, f"writing NIfTI needs nibabel ({INSTALL_HINT})") from None
    image = nib.Nifti1Image(array.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def write_dicom_series(folder: str | os.PathLike, hu: np.ndarray, affine: np.ndarray, *, slope: float = 1.0,
                       intercept: float = -1024.0, seed: int = 0, patient: str = "SYNTH") -> Path:
    """A CT series of ``hu [columns, rows, slices]`` with the RAS+ ``affine``: one file per slice,
    16-bit unsigned stored values ``(hu - intercept) / slope`` (rounded), ImagePositionPatient /
    ImageOrientationPatient / PixelSpacing / SliceThickness from the affine, file names in a
    random order (``seed``) unrelated to the slice positions."""
    try:
        import pydicom
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
        from pydicom.valuerep import DSfloat
    except ImportError:
        raise DatasetError(folder, f"writing DICOM needs pydicom ({INSTALL_HINT})") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS_TO_RAS @ affine
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    col_spacing, row_spacing = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    stored = np.round((hu - intercept) / slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"HU {hu.min()}..{hu.max()} do not fit 16-bit unsigned with slope {slope}, "
                         f"intercept {intercept}")
    stored = stored.astype(np.uint16)

    def ds(values: Sequence[float]) -> list:
        return [DSfloat(float(v), auto_format=True) for v in values]

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    names = np.random.default_rng(seed).permutation(hu.shape[2])
    for k in range(hu.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        d = Dataset()
        d.file_meta = meta
        d.SOPClassUID, d.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        d.StudyInstanceUID, d.SeriesInstanceUID, d.FrameOfReferenceUID = study, series, frame
        d.Modality, d.PatientID, d.PatientName = "CT", patient, "Synthetic^Phantom"
        d.StudyDate, d.SeriesNumber, d.InstanceNumber = "20260101", 1, k + 1
        d.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        d.ImagePositionPatient = ds(lps[:3, 3] + k * slice_step)
        d.ImageOrientationPatient = ds([*(col_step / col_spacing), *(row_step / row_spacing)])
        d.PixelSpacing = ds([row_spacing, col_spacing])
        d.SliceThickness = DSfloat(float(np.linalg.norm(slice_step)), auto_format=True)
        d.Rows, d.Columns = int(hu.shape[1]), int(hu.shape[0])
        d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
        d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 0
        d.RescaleSlope, d.RescaleIntercept, d.RescaleType = DSfloat(slope), DSfloat(intercept), "HU"
        d.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype("<u2").tobytes()  # [rows, columns]
        pydicom.dcmwrite(folder / f"IM{int(names[k]):04d}.dcm", d, enforce_file_format=True)
    return folder


def write_synthetic_volumes(out_dir: str | os.PathLike, *, num_train: int = 3, num_val: int = 1,
                            shape: Sequence[int] = (64, 56, 16), spacing: Sequence[float] = (0.9, 0.9, 3.0),
                            seed: int = 0, dicom: bool = True) -> list[Path]:
    """Write the dataset (see the module docstring); returns the DATA.yaml files written (NIfTI,
    then DICOM). The same seed writes the same voxels (DICOM UIDs are new each time)."""
    if num_train < 1 or num_val < 0:
        raise ValueError(f"num_train >= 1 and num_val >= 0, got {num_train}, {num_val}")
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    affine = synthetic_affine(shape, spacing)
    for split, count in (("train", num_train), ("val", num_val)):
        for n in range(count):
            name = f"case_{split}_{n:03d}"
            hu, labels = synthetic_scan(shape, spacing, rng)
            write_nifti(root / "nifti" / "images" / split / f"{name}.nii.gz", hu, affine)
            write_nifti(root / "nifti" / "labels" / split / f"{name}.nii.gz", labels, affine, dtype=np.uint8)
            if dicom:
                series = write_dicom_series(root / "dicom" / "images" / split / name, hu, affine,
                                            seed=seed * 1000 + n)
                geometry: Geometry = read_geometry(series)  # the labels take the geometry a reader finds
                write_dicom_labels(labels, geometry, root / "dicom" / "labels" / split / name, class_names=CLASSES)
    written = []
    for kind in ("nifti", "dicom") if dicom else ("nifti",):
        config = {
            "format": kind,
            **{split: {"images": f"{kind}/images/{split}", "masks": f"{kind}/labels/{split}"}
               for split, count in (("train", num_train), ("val", num_val)) if count},
            "classes": CLASSES,
            "axis": "auto",  # the acquisition axis; 0, 1 or 2 to slice along another
            "context": 1,  # 2.5D: one neighbouring slice on each side, three channels
            "intensity": "window",  # CT; MRI: intensity: zscore (over the nonzero region)
            "window": [-1000, 400],
        }
        path = root / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        written.append(path)
    return written
