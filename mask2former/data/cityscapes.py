"""Cityscapes gtFine (``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
``gtFine/<split>/<city>/*_gtFine_labelIds.png`` and ``*_instanceIds.png``) -> Targets.

A split serves one of the official class sets (``CLASS_SETS``), as the official datasets do:

- ``panoptic`` (``cityscapes_fine_panoptic``, the default): the 19 evaluated classes in trainId
  order; stuff classes one mask per class from labelIds, the 8 thing classes one mask per instance
  from instanceIds (``id >= 1000``: labelId ``id // 1000``), and a thing labelId below 1000 there
  is a group region ("cars") marked ``iscrowd``; other labelIds are void;
- ``semantic`` (``cityscapes_fine_sem_seg``): the 19 classes, one mask per class present in
  labelIds, group regions included (the official semantic mapper reads labelTrainIds); no class is
  annotated per instance, so none is a thing here;
- ``instance`` (``cityscapes_fine_instance_seg``): the 8 thing classes only, one mask per instance
  and group regions as crowd; other pixels are background, not void (the official instance models
  have 8 classes).

Category ids are labelIds, from the bundled metadata.
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
CLASS_SETS = ("panoptic", "semantic", "instance")
# the label files each class set reads
_NEEDS = {"panoptic": (LABEL_SUFFIX, INSTANCE_SUFFIX), "semantic": (LABEL_SUFFIX,), "instance": (INSTANCE_SUFFIX,)}


@dataclass
class CityscapesDecoder:
    """``train_id [256]`` maps a labelId to its contiguous class (-1 = not a class of this set);
    ``is_thing [K]`` flags contiguous classes split into instances; ``class_set`` is one of
    ``CLASS_SETS``."""

    train_id: np.ndarray
    is_thing: np.ndarray
    class_set: str = "panoptic"

    def __call__(self, record: Record, height: int, width: int) -> Target:
        if self.class_set == "semantic":
            return self._per_class(record, height, width)
        instance_path = record.extra["instance_path"]
        instance_ids = read_label_map(instance_path).astype(np.int32, copy=False)
        check_size(instance_ids, instance_path, record, height, width)
        things = self._things(instance_ids)
        if self.class_set == "instance":
            check_mask_budget(len(things), height, width, instance_path)
            return _target([(instance_ids == s, label, crowd) for s, label, crowd in things],
                           self.is_thing, np.zeros((height, width), dtype=bool))
        classes = self._classes(record, height, width)
        stuff = [c for c in np.unique(classes[classes >= 0]).tolist() if not self.is_thing[c]]
        check_mask_budget(len(stuff) + len(things), height, width, instance_path)
        segments = [(classes == c, c, False) for c in stuff]
        segments += [(instance_ids == s, label, crowd) for s, label, crowd in things]
        return _target(segments, self.is_thing, classes < 0)

    def _classes(self, record: Record, height: int, width: int) -> np.ndarray:
        """``[H, W]`` contiguous class per pixel from labelIds, -1 where void."""
        assert record.mask_path is not None
        label_ids = read_label_map(record.mask_path)
        check_size(label_ids, record.mask_path, record, height, width)
        return self.train_id[_label_index(label_ids)]

    def _things(self, instance_ids: np.ndarray) -> list[tuple[int, int, bool]]:
        """``(instanceIds value, class, is a group)`` per thing segment, in value order."""
        label_of = _label_index(np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids))
        classes = self.train_id[label_of]
        thing = classes >= 0
        thing[thing] = self.is_thing[classes[thing]]
        out = []
        for segment in np.unique(instance_ids[thing]).tolist():
            label = int(self.train_id[segment // 1000 if segment >= 1000 else segment])
            out.append((segment, label, segment < 1000))
        return out

    def _per_class(self, record: Record, height: int, width: int) -> Target:
        classes = self._classes(record, height, width)
        present = np.unique(classes[classes >= 0]).tolist()
        check_mask_budget(len(present), height, width, record.mask_path or record.image_path)
        return _target([(classes == c, c, False) for c in present], self.is_thing, classes < 0)


def _target(segments: list[tuple[np.ndarray, int, bool]], is_thing: np.ndarray, ignore: np.ndarray) -> Target:
    """A Target of ``(mask, class, crowd)`` segments, sorted by class (stable)."""
    order = sorted(range(len(segments)), key=lambda i: segments[i][1])
    labels = [segments[i][1] for i in order]
    return make_target([segments[i][0] for i in order], labels, [bool(is_thing[c]) for c in labels],
                       [segments[i][2] for i in order], ignore)


def _label_index(values: np.ndarray) -> np.ndarray:
    """labelIds as indices into the 256-entry tables: values outside 0..255 (a 16-bit or signed
    32-bit file) become 255, which no evaluated class uses, i.e. void (a negative value must not
    index the tables from their end)."""
    return np.where((values >= 0) & (values <= 255), values, 255)


def _metadata(name: str) -> list[CategoryInfo]:
    try:
        return metadata.load_categories(name)
    except FileNotFoundError as e:
        raise DatasetError(f"mask2former/metadata/{name}.json", f"bundled metadata missing ({e})") from None


def cityscapes_categories(class_set: str = "panoptic") -> list[CategoryInfo]:
    """The classes of ``class_set`` in contiguous order (``id`` = labelId): the 19 evaluated ones
    in trainId order, or the 8 thing classes for ``instance``; none is a thing for ``semantic``."""
    if class_set not in CLASS_SETS:
        raise ValueError(f"unknown Cityscapes class set {class_set!r} (expected one of {', '.join(CLASS_SETS)})")
    if class_set == "instance":
        return _metadata("cityscapes_instance")
    categories = _metadata("cityscapes")
    if class_set == "semantic":
        return [CategoryInfo(id=c.id, name=c.name, isthing=False, color=c.color) for c in categories]
    return categories


def _records(images: Path, masks: Path, class_set: str, problems: Problems) -> list[Record]:
    """One record per image whose label files (those ``class_set`` reads) exist."""
    files, records = FileIndex(), []
    for image_path in scan_files(images, lambda name: name.endswith(IMAGE_SUFFIX)):
        base = image_path.name[: -len(IMAGE_SUFFIX)]
        folder = masks / image_path.parent.relative_to(images)
        paths = [folder / f"{base}{suffix}" for suffix in _NEEDS[class_set]]
        missing = [p for p in paths if not files.exists(p)]
        if missing:
            problems.report(image_path, f"mask file not found: {missing[0]}")
            continue
        label_path, instance_path = folder / f"{base}{LABEL_SUFFIX}", folder / f"{base}{INSTANCE_SUFFIX}"
        records.append(Record(image_path=image_path, image_id=base,
                              mask_path=instance_path if class_set == "instance" else label_path,
                              extra={"instance_path": instance_path} if class_set != "semantic" else {}))
    return records


def read_cityscapes(images: str | Path, masks: str | Path, *, classes: str = "panoptic", name: str = "",
                    skip_bad: bool = False) -> DatasetSplit:
    """``images`` = ``leftImg8bit/<split>``, ``masks`` = ``gtFine/<split>`` (city folders inside,
    or the files directly); ``classes`` one of ``CLASS_SETS``."""
    images, masks = Path(images), Path(masks)
    categories = cityscapes_categories(classes)
    train_id = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(categories):
        train_id[c.id] = i
    problems = Problems(skip_bad)
    records = _records(images, masks, classes, problems)
    if not records and not problems.skipped:
        raise DatasetError(images, f"no *{IMAGE_SUFFIX} files found (expected leftImg8bit/<split>/<city>/...)")
    return DatasetSplit(name=name, categories=categories, records=records, format="cityscapes", skip_bad=skip_bad,
                        decoder=CityscapesDecoder(train_id, np.array([c.isthing for c in categories]), classes),
                        skipped=problems.skipped)
