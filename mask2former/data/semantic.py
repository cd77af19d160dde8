"""Semantic label PNGs (ADE20K layout: ``images/`` and ``masks/`` matched by file stem) -> Targets.

One mask per class present; ``ignore_label`` (255) is void. ``reduce_zero_label`` (ADE20K) makes
0 void and shifts every other value down by one. The label-map machinery here is shared with the
``folder`` reader, which adds instances of thing classes by connected components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from mask2former.config import CategoryInfo
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    Problems,
    Record,
    check_mask_budget,
    check_size,
    class_count_problem,
    default_color,
    make_target,
    read_label_map,
)
from mask2former.data.files import scan_files
from mask2former.data.image import IMAGE_SUFFIXES
from mask2former.formats import IGNORE_LABEL
from mask2former.structures import Target

VOID, INVALID = -1, -2  # class values in a mapped label map


def _by_stem(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Image files under ``folder`` keyed by relative path without suffix; and ambiguous keys."""
    files: dict[str, Path] = {}
    ambiguous: list[str] = []
    for p in scan_files(folder, lambda name: name.lower().endswith(IMAGE_SUFFIXES)):
        if p.is_file():
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in files:
                ambiguous.append(key)
            files[key] = p
    return files, ambiguous


def match_records(images: Path, masks: Path, problems: Problems) -> list[Record]:
    """Records pairing each image with the mask of the same relative path and stem."""
    image_files, ambiguous = _by_stem(images)
    mask_files, ambiguous_masks = _by_stem(masks)
    if not image_files:
        raise DatasetError(images, f"no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    if image_files and mask_files and not set(image_files) & set(mask_files):
        image_name, mask_name = next(iter(image_files.values())).name, next(iter(mask_files.values())).name
        raise DatasetError(masks, f"no mask has the name of an image (e.g. image {image_name} needs mask "
                                  f"{next(iter(image_files))}.png; found masks like {mask_name}): masks are "
                                  "matched by file stem")
    records = []
    for key, image_path in image_files.items():
        if key in ambiguous or key in ambiguous_masks:
            problems.report(image_path if key in ambiguous else masks / key,
                            "several files share this name with different suffixes; cannot pick its pair")
        elif key not in mask_files:
            problems.report(image_path, f"mask file not found: expected {masks / key}.png")
        else:
            records.append(Record(image_path=image_path, image_id=key, mask_path=mask_files[key]))
    return records


@dataclass
class LabelMapDecoder:
    """Target from a label PNG: ``table`` maps pixel values to class indices or VOID; other
    values are an error explained by ``hint``. Thing classes become one mask per connected
    component (8-connectivity) when ``split_things``."""

    table: dict[int, int]
    is_thing: list[bool]
    split_things: bool = False
    hint: str = ""
    _luts: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def classes(self, record: Record, height: int, width: int) -> np.ndarray:
        """``[H, W]`` int32 class index per pixel, VOID where ignored."""
        assert record.mask_path is not None
        values = read_label_map(record.mask_path)
        check_size(values, record.mask_path, record, height, width)
        lut = self._luts.get(values.dtype.str)
        if lut is None and values.dtype in (np.uint8, np.uint16):
            lut = self._luts[values.dtype.str] = _lut(self.table, 256 if values.dtype == np.uint8 else 65536)
        if lut is not None:
            mapped = lut[values]
        else:
            uniques, inverse = np.unique(values, return_inverse=True)
            mapped = np.array([self.table.get(int(u), INVALID) for u in uniques], np.int32)[inverse]
            mapped = mapped.reshape(values.shape)
        invalid = mapped == INVALID
        if invalid.any():
            bad = np.unique(values[invalid]).tolist()
            jpeg = record.mask_path.suffix.lower() in (".jpg", ".jpeg")
            raise DatasetError(record.mask_path, f"mask holds values {bad[:10]}{' ...' if len(bad) > 10 else ''} "
                                                 f"that are not class indices{self.hint}"
                                                 + ("; JPEG compression alters mask values, save masks as PNG"
                                                    if jpeg else ""))
        return mapped

    def __call__(self, record: Record, height: int, width: int) -> Target:
        mapped = self.classes(record, height, width)
        present = np.flatnonzero(np.bincount(mapped[mapped >= 0].ravel(), minlength=len(self.is_thing)))
        parts: list[tuple[int, np.ndarray | None, int]] = []  # (class, components or None, component id)
        for c in present.tolist():
            if self.split_things and self.is_thing[c]:
                components, n = ndimage.label(mapped == c, structure=np.ones((3, 3), dtype=bool))
                parts.extend((c, components, k) for k in range(1, n + 1))
            else:
                parts.append((c, None, 0))
        check_mask_budget(len(parts), height, width, record.mask_path or record.image_path)
        masks = np.zeros((len(parts), height, width), dtype=bool)  # filled in place: no [N, H, W] copies
        boxes: dict[int, list] = {}
        for j, (c, components, k) in enumerate(parts):
            if components is None:
                masks[j] = mapped == c
            else:  # compare only inside the component's bounding box
                if id(components) not in boxes:
                    boxes[id(components)] = ndimage.find_objects(components)
                box = boxes[id(components)][k - 1]
                masks[j][box] = components[box] == k
        labels = [c for c, _, _ in parts]
        return make_target(masks, labels, [self.is_thing[c] for c in labels], [False] * len(labels),
                           mapped == VOID)


def _lut(table: dict[int, int], size: int) -> np.ndarray:
    lut = np.full(size, INVALID, dtype=np.int32)
    for key, value in table.items():
        if 0 <= key < size:
            lut[key] = value
    return lut


def read_semantic(images: str | Path, masks: str | Path, *, classes: list[CategoryInfo] | None = None,
                  num_classes: int | None = None, ignore_label: int = IGNORE_LABEL, reduce_zero_label: bool = False,
                  name: str = "", skip_bad: bool = False) -> DatasetSplit:
    """Image folder + label PNG folder. Without ``classes``, ``num_classes`` stuff classes named
    ``class_<i>``. Category ids are the pixel values in the files (``i + 1`` with
    ``reduce_zero_label``)."""
    images, masks = Path(images), Path(masks)
    if classes is None:
        if num_classes is None:
            raise DatasetError(masks, "semantic datasets need classes or num_classes")
        problem = class_count_problem(num_classes)
        if problem is not None:
            raise DatasetError(masks, f"num_classes: {problem}")
        classes = [CategoryInfo(id=i, name=f"class_{i}", isthing=False, color=default_color(i))
                   for i in range(num_classes)]
    k, offset = len(classes), int(reduce_zero_label)
    if offset <= ignore_label < k + offset:
        raise DatasetError(masks, f"ignore_label {ignore_label} is also the pixel value of class "
                                  f"{classes[ignore_label - offset].name!r}")
    categories = [CategoryInfo(id=i + offset, name=c.name, isthing=c.isthing, color=c.color)
                  for i, c in enumerate(classes)]
    table = {v: v - offset for v in range(offset, k + offset)}
    table[ignore_label] = VOID
    if reduce_zero_label:
        table[0] = VOID
    hint = f" (0..{k - 1}, {ignore_label} = ignore)"
    if reduce_zero_label:
        hint = f" (1..{k} for classes 0..{k - 1} with reduce_zero_label, 0 and {ignore_label} = ignore)"
    else:
        hint += "; if the files count classes from 1 with 0 = void (ADE20K), set reduce_zero_label: true"
    problems = Problems(skip_bad)
    records = match_records(images, masks, problems)
    return DatasetSplit(name=name, categories=categories, records=records, format="semantic", skip_bad=skip_bad,
                        decoder=LabelMapDecoder(table, [c.isthing for c in categories], hint=hint),
                        skipped=problems.skipped)
