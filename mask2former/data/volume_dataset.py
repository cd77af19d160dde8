"""Slice-wise 2D samples of medical volumes, as a ``DatasetSplit`` that train and eval take as is.

Each record is one slice of one volume along a slice axis (default: the acquisition axis, see
``Geometry.slice_axis``). Its image is the slice's intensities mapped to the model's 0..255 scale
by the model's intensity rule (``pixels.intensity``: ``window`` for CT, ``zscore`` for MRI,
``percentile``, ``dataset``; ``data.intensity``) with ranges fixed once from the whole volume, so
per-scan statistics such as the MRI z-score are the scan's, as nnU-Net computes them. A model of
``2 K + 1`` input channels takes slice ``k`` with ``K`` neighbours on each side stacked as channels
(2.5D; edge slices repeat the first / last slice): an RGB model takes three slices.

Each label value is a class (0 = background). Organs are one connected structure per scan, so
classes are stuff by default (the semantic task); a class marked ``isthing`` (lesions, nodules)
gets one instance per 2-D connected component of a slice, as the ``folder`` reader does.
Volumes are decoded once and kept in a per-process cache bounded in bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2former.config import CategoryInfo, PixelConfig
from mask2former.data.datasets import DatasetSplit, Problems, Record, default_color
from mask2former.data.files import path_problem
from mask2former.data.intensity import apply_ranges, match_channels, rule_ranges
from mask2former.data.semantic import VOID, LabelMapDecoder
from mask2former.data.volumes import (
    Geometry,
    check_pair,
    is_nifti,
    read_geometry,
    read_volume,
    volume_name,
)
from mask2former.errors import ConfigError, DatasetError, ImageError
from mask2former.formats import IGNORE_LABEL


def context_for(channels: int) -> int:
    """The neighbouring slices on each side a model of ``channels`` input channels takes (2.5D):
    ``2 K + 1`` channels are slice ``k`` and ``K`` slices on each side, so a 1-channel model takes
    one slice and an RGB model three (``context`` 1)."""
    if channels < 1 or channels % 2 == 0:
        raise ConfigError(f"volume slices fill a model's channels as 2 context + 1 neighbouring slices; the model "
                          f"takes {channels} channels (model.pixels.channels; DATA.yaml 'channels' or 'context')")
    return (channels - 1) // 2


Ranges = tuple[np.ndarray, np.ndarray] | None


def volume_ranges(array: np.ndarray, pixels: PixelConfig, source: str = "volume") -> Ranges:
    """``pixels.intensity``'s ``(low, high)`` fixed once from a whole volume (its voxels as one
    channel: a CT window, the scan's percentiles, or the MRI z-score of its nonzero region), so
    that every slice of one scan is mapped alike (``apply_ranges``)."""
    return rule_ranges(array.reshape(-1, 1), pixels, source)


# --------------------------------------------------------------------------- slices


def slice_count(shape: Sequence[int], axis: int) -> int:
    return int(shape[axis])


def plane_size(shape: Sequence[int], axis: int) -> tuple[int, int]:
    """``(H, W)`` of a slice: the later remaining axis is the height, the earlier the width, so a
    DICOM slice reads as in the file (rows x columns)."""
    a, b = (n for i, n in enumerate(shape) if i != axis)
    return int(b), int(a)


def take_slice(array: np.ndarray, axis: int, index: int, context: int = 0) -> np.ndarray:
    """``[H, W]`` slice ``index`` along ``axis``; with ``context`` > 0, ``[H, W, 2 context + 1]``
    of the neighbours ``index - context .. index + context`` (clamped at the volume's ends)."""
    if context == 0:
        return np.take(array, index, axis=axis).T
    n = array.shape[axis]
    indices = np.clip(np.arange(index - context, index + context + 1), 0, n - 1)
    stack = np.moveaxis(np.take(array, indices, axis=axis), axis, -1)  # [A, B, C]
    return np.ascontiguousarray(stack.transpose(1, 0, 2))


def put_slice(out: np.ndarray, axis: int, index: int, plane: np.ndarray) -> None:
    """The inverse of ``take_slice`` (no context): write ``plane [H, W]`` as slice ``index``."""
    where: list[slice | int] = [slice(None)] * out.ndim
    where[axis] = index
    out[tuple(where)] = plane.T


def resolve_axis(axis: int | str, geometry: Geometry) -> int:
    """``"auto"`` -> the acquisition axis; 0, 1, 2 as given."""
    if axis == "auto":
        return geometry.slice_axis()
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ConfigError(f"slice axis: expected auto, 0, 1 or 2, got {axis!r}")
    return int(axis)


# --------------------------------------------------------------------------- cases and the cache


@dataclass
class VolumeCase:
    """One scan: its image (a NIfTI file or a DICOM series folder), its label volume (NIfTI; None
    to predict), and the slice axis chosen for it."""

    name: str
    image: Path
    label: Path | None
    axis: int
    geometry: Geometry


class VolumeCache:
    """Decoded cases (float32 intensities as read, labels) and each one's intensity ranges, least
    recently used evicted past ``max_bytes`` (the last one read always stays). One per process:
    DataLoader workers fill their own."""

    def __init__(self, cases: Sequence[VolumeCase], *, max_bytes: int = 2 * 2**30) -> None:
        self.cases, self.max_bytes = list(cases), max_bytes
        self._items: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._ranges: dict[tuple[int, str, tuple[float, ...]], Ranges] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_items": OrderedDict()}  # workers start empty instead of copying volumes

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(image float32 [I, J, K], labels [I, J, K] or None)`` of case ``index``."""
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        case = self.cases[index]
        volume = read_volume(case.image)
        check_pair(case.geometry, volume.geometry)  # the files changed since the split was built
        labels = None
        if case.label is not None:
            label = read_volume(case.label, label=True)
            check_pair(volume.geometry, label.geometry)
            labels = label.array
        self._items[index] = (volume.array, labels)
        while len(self._items) > 1 and sum(a.nbytes + (b.nbytes if b is not None else 0)
                                           for a, b in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)
        return volume.array, labels

    def ranges(self, index: int, pixels: PixelConfig) -> Ranges:
        """Case ``index``'s intensity ranges under ``pixels`` (``volume_ranges``), computed once."""
        key = (index, pixels.intensity, tuple(pixels.window))
        if key not in self._ranges:
            image, _ = self.get(index)
            try:
                self._ranges[key] = volume_ranges(image, pixels, str(self.cases[index].image))
            except ImageError as e:
                raise DatasetError(self.cases[index].image, str(e)) from None
        return self._ranges[key]


# --------------------------------------------------------------------------- the split


@dataclass
class VolumeLabelDecoder(LabelMapDecoder):
    """Target of one slice from its label volume, as ``LabelMapDecoder`` makes it from a label
    PNG: value ``v`` is class ``v``, ``ignore_label`` is void; thing classes get one mask per
    8-connected component of the slice (``split_things``)."""

    cache: VolumeCache | None = None
    ignore_label: int | None = IGNORE_LABEL

    def classes(self, record: Record, height: int, width: int) -> np.ndarray:
        """``[H, W]`` int32 class per pixel, ``VOID`` where void."""
        assert self.cache is not None
        _, labels = self.cache.get(record.extra["case"])
        case = self.cache.cases[record.extra["case"]]
        assert labels is not None and case.label is not None
        values = take_slice(labels, case.axis, record.extra["slice"]).astype(np.int64)
        mapped = values.astype(np.int32)
        void = values == self.ignore_label if self.ignore_label is not None else np.zeros(values.shape, bool)
        invalid = ~void & ((values < 0) | (values >= len(self.is_thing)))
        if invalid.any():
            bad = np.unique(values[invalid]).tolist()
            raise DatasetError(case.label, f"label volume holds values {bad[:10]} that are not class indices "
                                           f"(0..{len(self.is_thing) - 1}"
                                           + (f", {self.ignore_label} = ignore)" if self.ignore_label is not None
                                              else ")"))
        mapped[void] = VOID
        return mapped


@dataclass
class VolumeSplit(DatasetSplit):
    """A ``DatasetSplit`` whose records are slices. ``load(i)`` gives the slice stack as read
    (float32 intensities, ``[H, W, 2 context + 1]``); training (``training_image``) maps it by the
    whole volume's intensity ranges (``volume_ranges``) onto the model's ``pixels.channels``.
    Evaluation predicts whole volumes (``inference.predict_volumes.evaluate_volumes``) with the
    same mapping, so the per-scan rules (percentile, zscore) never see one slice alone."""

    cache: VolumeCache | None = None

    @property
    def cases(self) -> list[VolumeCase]:
        return self.cache.cases if self.cache is not None else []

    @property
    def context(self) -> int:
        """Neighbouring slices on each side, from the model's channels (``context_for``)."""
        return context_for(self.pixels.channels)

    def _image(self, record: Record) -> np.ndarray:
        assert self.cache is not None
        image, _ = self.cache.get(record.extra["case"])
        case = self.cache.cases[record.extra["case"]]
        return take_slice(image, case.axis, record.extra["slice"], self.context)

    def _mapped(self, image: np.ndarray, record: Record) -> np.ndarray:
        assert self.cache is not None
        ranges = self.cache.ranges(record.extra["case"], self.pixels)
        return slice_input(image, ranges, self.pixels.channels, str(record.image_path))


def slice_input(stack: np.ndarray, ranges: Ranges, channels: int, source: str = "slice") -> np.ndarray:
    """A slice stack (``take_slice``) on the model's scale: float32 mapped by the volume's
    ``ranges`` (``apply_ranges``), with the model's channel count (``match_channels``)."""
    try:
        return match_channels(apply_ranges(stack, ranges, source), channels, source)
    except ImageError as e:
        raise DatasetError(source, str(e).removeprefix(f"{source}: ")) from None


def find_cases(images: Path, masks: Path | None, problems: Problems, *, axis: int | str = "auto") -> list[VolumeCase]:
    """Volumes under ``images`` (NIfTI files; folders holding DICOM files are series) paired with
    the label volume of the same name in ``masks`` (a NIfTI file or a DICOM series folder;
    nnU-Net's ``_0000`` channel suffix of image files is dropped for the match); shapes and
    affines checked from the headers."""
    found = _volume_sources(images)
    if not found:
        raise DatasetError(images, "no volumes found (.nii, .nii.gz files or folders of DICOM files)")
    labels = {volume_name(p): p for p in _volume_sources(masks)} if masks is not None else {}
    cases = []
    for path in found:
        name = volume_name(path)
        key = name[:-5] if name.endswith("_0000") and name not in labels else name
        label = labels.get(key)
        if masks is not None and label is None:
            problems.report(path, f"label volume not found: expected {masks / key}.nii.gz (or .nii, or a DICOM "
                                  "series folder of that name)")
            continue
        try:
            geometry = read_geometry(path)
            if label is not None:
                check_pair(geometry, read_geometry(label))
            cases.append(VolumeCase(name=key, image=path, label=label, axis=resolve_axis(axis, geometry),
                                    geometry=geometry))
        except DatasetError as e:
            problems.report(e.path, e.problem)
    return cases


def _volume_sources(folder: Path) -> list[Path]:
    """NIfTI files and DICOM series folders (folders with files and no sub-folders) under ``folder``."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise DatasetError(folder, f"cannot list the folder ({e.strerror or e})") from None
    found = []
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_dir():
            children = list(p.iterdir())
            if any(c.is_dir() for c in children):
                found.extend(_volume_sources(p))
            elif children:
                found.append(p)
        elif is_nifti(p):
            found.append(p)
    return found


def read_volume_split(images: str | Path, masks: str | Path, *, classes: list[CategoryInfo] | None = None,
                      num_classes: int | None = None, axis: int | str = "auto",
                      ignore_label: int | None = IGNORE_LABEL, data_format: str = "nifti", name: str = "",
                      skip_bad: bool = False, cache_bytes: int = 2 * 2**30) -> VolumeSplit:
    """Every slice of every volume of ``images`` along its slice axis, with its label slice from
    ``masks``. Without ``classes``, ``num_classes`` stuff classes ``background, class_1, ...``;
    category id = label value = class index. How slices become model input (intensity rule,
    channels and so the 2.5D context) is the split's ``pixels``, set by ``build_split``."""
    images, masks = Path(images), Path(masks)
    for folder, key in ((images, "images"), (masks, "masks")):
        problem = path_problem(folder, expect="dir")
        if problem is not None:
            raise DatasetError(folder, f"{problem} ({key}: expected a folder)")
    if classes is None:
        if num_classes is None or num_classes < 1:
            raise DatasetError(masks, "volume datasets need classes or num_classes")
        classes = [CategoryInfo(id=i, name="background" if i == 0 else f"class_{i}", isthing=False,
                                color=default_color(i)) for i in range(num_classes)]
    if ignore_label is not None and 0 <= ignore_label < len(classes):
        raise DatasetError(masks, f"ignore_label {ignore_label} is also class {classes[ignore_label].name!r}")
    categories = [CategoryInfo(id=i, name=c.name, isthing=c.isthing, color=c.color) for i, c in enumerate(classes)]
    problems = Problems(skip_bad)
    cases = find_cases(images, masks, problems, axis=axis)
    records = []
    for i, case in enumerate(cases):
        height, width = plane_size(case.geometry.shape, case.axis)
        for k in range(slice_count(case.geometry.shape, case.axis)):
            records.append(Record(image_path=case.image, image_id=f"{case.name}#{k}", height=height, width=width,
                                  mask_path=case.label, extra={"case": i, "slice": k}))
    cache = VolumeCache(cases, max_bytes=cache_bytes)
    decoder = VolumeLabelDecoder(table={}, is_thing=[c.isthing for c in categories], split_things=True, cache=cache,
                                 ignore_label=ignore_label)
    return VolumeSplit(name=name, categories=categories, records=records, decoder=decoder, format=data_format,
                       skip_bad=skip_bad, skipped=problems.skipped, cache=cache)
