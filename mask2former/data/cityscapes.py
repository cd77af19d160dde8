"""Cityscapes gtFine (``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
``gtFine/<split>/<city>/*_gtFine_labelIds.png`` and ``*_instanceIds.png``) -> Targets.

The 19 evaluated classes, in trainId order, come from the bundled metadata (``id`` = labelId);
every other labelId is void. Stuff classes give one mask per class from labelIds; the 8 thing
classes one mask per instance from instanceIds (``id >= 1000``: labelId ``id // 1000``), and a
thing labelId below 1000 there is a group region ("cars") marked ``iscrowd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2former import metadata
from mask2former.config import CategoryInfo
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    FileIndex,
    Problems,
    Record,
    check_mask_budget,
    check_size,
    make_target,
    read_label_map,
)
from mask2former.data.files import scan_files
from mask2former.structures import Target

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


@dataclass
class CityscapesDecoder:
    """``train_id [256]`` maps a labelId to its contiguous class (-1 = void); ``thing_label [256]``
    marks labelIds of evaluated thing classes; ``is_thing [K]`` flags contiguous classes."""

    train_id: np.ndarray
    thing_label: np.ndarray
    is_thing: np.ndarray

    def __call__(self, record: Record, height: int, width: int) -> Target:
        assert record.mask_path is not None
        label_ids = read_label_map(record.mask_path)
        check_size(label_ids, record.mask_path, record, height, width)
        instance_path = record.extra["instance_path"]
        instance_ids = read_label_map(instance_path).astype(np.int32, copy=False)
        check_size(instance_ids, instance_path, record, height, width)
        classes = self.train_id[_label_index(label_ids)]  # [H, W], -1 = void
        stuff = [c for c in np.unique(classes[classes >= 0]).tolist() if not self.is_thing[c]]
        label_of = _label_index(np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids))
        things = np.unique(instance_ids[self.thing_label[label_of]]).tolist()
        check_mask_budget(len(stuff) + len(things), height, width, instance_path)
        masks, labels, crowd = [classes == c for c in stuff], list(stuff), [False] * len(stuff)
        for segment in things:
            masks.append(instance_ids == segment)
            labels.append(int(self.train_id[segment // 1000 if segment >= 1000 else segment]))
            crowd.append(segment < 1000)
        order = np.argsort(labels, kind="stable").tolist()  # stuff and things in class order
        return make_target([masks[i] for i in order], [labels[i] for i in order],
                           [bool(self.is_thing[labels[i]]) for i in order], [crowd[i] for i in order], classes < 0)


def _label_index(values: np.ndarray) -> np.ndarray:
    """labelIds as indices into the 256-entry tables: values outside 0..255 (a 16-bit or signed
    32-bit file) become 255, which no evaluated class uses, i.e. void (a negative value must not
    index the tables from their end)."""
    return np.where((values >= 0) & (values <= 255), values, 255)


def cityscapes_categories() -> list[CategoryInfo]:
    """The 19 evaluated classes in trainId order (``id`` = labelId) from the bundled metadata."""
    try:
        return metadata.load_categories("cityscapes")
    except FileNotFoundError as e:
        raise DatasetError("mask2former/metadata/cityscapes.json", f"bundled metadata missing ({e})") from None


def read_cityscapes(images: str | Path, masks: str | Path, *, name: str = "", skip_bad: bool = False) -> DatasetSplit:
    """``images`` = ``leftImg8bit/<split>``, ``masks`` = ``gtFine/<split>`` (city folders inside,
    or the files directly)."""
    images, masks = Path(images), Path(masks)
    categories = cityscapes_categories()
    train_id = np.full(256, -1, dtype=np.int64)
    thing_label = np.zeros(256, dtype=bool)
    for i, c in enumerate(categories):
        train_id[c.id] = i
        thing_label[c.id] = c.isthing
    problems, files = Problems(skip_bad), FileIndex()
    records = []
    for image_path in scan_files(images, lambda name: name.endswith(IMAGE_SUFFIX)):
        base = image_path.name[: -len(IMAGE_SUFFIX)]
        folder = masks / image_path.parent.relative_to(images)
        label_path, instance_path = folder / f"{base}{LABEL_SUFFIX}", folder / f"{base}{INSTANCE_SUFFIX}"
        missing = [p for p in (label_path, instance_path) if not files.exists(p)]
        if missing:
            problems.report(image_path, f"mask file not found: {missing[0]}")
            continue
        records.append(Record(image_path=image_path, image_id=base, mask_path=label_path,
                              extra={"instance_path": instance_path}))
    if not records and not problems.skipped:
        raise DatasetError(images, f"no *{IMAGE_SUFFIX} files found (expected leftImg8bit/<split>/<city>/...)")
    return DatasetSplit(name=name, categories=categories, records=records, format="cityscapes", skip_bad=skip_bad,
                        decoder=CityscapesDecoder(train_id, thing_label, np.array([c.isthing for c in categories])),
                        skipped=problems.skipped)
