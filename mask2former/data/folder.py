"""Custom data: ``images/`` + ``masks/`` (one label PNG per image, same stem) and a class list.

A mask pixel's value is its class index (``ignore_label``, 255, is void) unless ``mask_values``
maps pixel values to class indices, e.g. ``{0: 0, 255: 1}`` for binary 0/255 masks. Classes marked
``isthing`` are split into instances by connected components (8-connectivity); stuff classes give
one mask per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mask2former.config import CategoryInfo
from mask2former.data.datasets import DatasetError, DatasetSplit, Problems, Record, read_label_map
from mask2former.data.semantic import VOID, LabelMapDecoder, match_records
from mask2former.formats import IGNORE_LABEL

PROBE = 4  # masks read at build time to catch binary 0/255 masks read as "class 0 + void"


def _probe_binary(records: list[Record], masks: Path, classes: list[CategoryInfo], ignore_label: int) -> None:
    """Raise if the first masks hold only 0 and ``ignore_label``: with the default reading no
    pixel would get a class other than class 0, the classic 0/255-mask trap."""
    seen = 0
    for record in records[:PROBE]:
        assert record.mask_path is not None
        try:
            values = set(np.unique(read_label_map(record.mask_path)).tolist())
        except DatasetError:
            continue  # load() reports it for this record
        if ignore_label not in values or values - {0, ignore_label}:
            return
        seen += 1
    if seen:
        raise DatasetError(masks, f"the first {seen} masks hold only the values 0 and {ignore_label}, and "
                                  f"{ignore_label} is ignore_label (void), so every labelled pixel would be class 0 "
                                  f"({classes[0].name!r}): this looks like binary 0/{ignore_label} masks. If "
                                  f"{ignore_label} marks the object, add `mask_values: {{0: 0, {ignore_label}: 1}}` "
                                  f"to DATA.yaml; if it really is void, confirm it with "
                                  f"`mask_values: {{0: 0, {ignore_label}: {ignore_label}}}`")


def _table(classes: list[CategoryInfo], ignore_label: int, mask_values: dict[int, int] | None,
           masks: Path) -> dict[int, int]:
    k = len(classes)
    if mask_values is None:
        if ignore_label < k:
            raise DatasetError(masks, f"ignore_label {ignore_label} is also the index of class "
                                      f"{classes[ignore_label].name!r}; choose another ignore_label or use mask_values")
        table = {v: v for v in range(k)}
    else:
        for value, index in mask_values.items():
            if not (0 <= index < k or index == ignore_label):
                raise DatasetError(masks, f"mask_values maps pixel value {value} to {index}, which is neither a "
                                          f"class index 0..{k - 1} nor ignore_label {ignore_label}")
        table = {v: VOID if c == ignore_label and c >= k else c for v, c in mask_values.items()}
    table.setdefault(ignore_label, VOID)
    return table


def read_folder(images: str | Path, masks: str | Path, *, classes: list[CategoryInfo], ignore_label: int = IGNORE_LABEL,
                mask_values: dict[int, int] | None = None, name: str = "", skip_bad: bool = False) -> DatasetSplit:
    """Images + label masks matched by stem. Category ids are the pixel values that mean each
    class in the files (the class index, or its smallest key in ``mask_values``)."""
    images, masks = Path(images), Path(masks)
    if not classes:
        raise DatasetError(masks, "format 'folder' needs a non-empty class list")
    table = _table(classes, ignore_label, mask_values, masks)
    pixel_value: dict[int, int] = {}
    for value, index in sorted(table.items()):
        pixel_value.setdefault(index, value)
    categories = [CategoryInfo(id=pixel_value.get(i, i), name=c.name, isthing=c.isthing, color=c.color)
                  for i, c in enumerate(classes)]
    k = len(classes)
    if mask_values is None:
        hint = (f": folder masks hold class indices 0..{k - 1} ({ignore_label} = ignore). If your masks encode "
                "classes with other values (binary 0/255 masks are the usual case), map them in DATA.yaml, e.g. "
                "`mask_values: {0: 0, 255: 1}`")
    else:
        hint = (f" (neither keys of mask_values {sorted(mask_values)} nor ignore_label {ignore_label}); "
                "add them to mask_values")
    problems = Problems(skip_bad)
    records = match_records(images, masks, problems)
    if mask_values is None:
        _probe_binary(records, masks, classes, ignore_label)
    return DatasetSplit(name=name, categories=categories, records=records, format="folder", skip_bad=skip_bad,
                        decoder=LabelMapDecoder(table, [c.isthing for c in categories], split_things=True, hint=hint),
                        skipped=problems.skipped)
