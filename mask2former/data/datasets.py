"""One target structure out of every dataset format (DATA.yaml parsing lives in ``data_yaml``).

A ``DatasetSplit`` is the categories (list index = contiguous class id) plus one ``Record`` per
image; ``load(i)`` decodes image ``i`` and its ``Target``. Readers check what is cheap (JSON
structure, category ids, file existence) when the split is built, so a broken dataset fails in
seconds instead of hours into training; what needs pixels (mask sizes, segment ids, label values)
is checked in ``load``. Every error is a ``DatasetError`` naming the file and the problem.
"""

from __future__ import annotations

import colorsys
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.config import CategoryInfo, PixelConfig
from mask2former.data.files import NOT_FOUND, path_problem
from mask2former.data.image import open_image, read_image
from mask2former.data.intensity import to_model_input
from mask2former.errors import DatasetError, ImageError
from mask2former.structures import Target


@dataclass
class Record:
    """One image and what its format needs to decode its target.

    ``mask_path`` is the label / panoptic PNG (Cityscapes: ``*_labelIds.png``); ``annotations``
    the JSON annotations (COCO/LVIS: instance dicts, panoptic: ``segments_info``); ``extra`` the
    rest (Cityscapes ``instance_path``, LVIS ``neg_category_ids`` / ``not_exhaustive_category_ids``).
    """

    image_path: Path
    image_id: int | str
    height: int | None = None
    width: int | None = None
    mask_path: Path | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


TargetDecoder = Callable[[Record, int, int], Target]  # (record, image height, image width) -> Target
# the same, with each segment's COCO polygons (None for a dense mask) and the masks of polygon segments left empty
PolygonDecoder = Callable[[Record, int, int], tuple[Target, list[list[np.ndarray] | None]]]


@dataclass
class DatasetSplit:
    """The images of one split and how to decode them; ``skipped`` lists ``(file, reason)`` of
    records dropped at build time or failing ``load_or_none`` (in this process) with ``skip_bad``.
    ``pixels`` (DATA.yaml's channels and intensity rule over the model's) maps images for training."""

    name: str
    categories: list[CategoryInfo]
    records: list[Record]
    decoder: TargetDecoder
    format: str = ""
    skip_bad: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    annotation_file: Path | None = None  # LVIS: the JSON its AP is scored against (federated labels)
    polygon_decoder: PolygonDecoder | None = None  # formats whose segments may be polygons (COCO instances, LVIS)
    pixels: PixelConfig = field(default_factory=PixelConfig)
    _failed: dict[int, str] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> tuple[np.ndarray, Target]:
        """The image as decoded (``read_image``: ``[H, W, 3]`` uint8 RGB for 8-bit files, float32
        raw values ``[H, W, C]`` otherwise; a ``Predictor`` maps them by its model's rule) and its
        target at the image's size."""
        record = self.records[index]
        image = self._image(record)
        return image, self.decoder(record, *image.shape[:2])

    def load_with_polygons(self, index: int) -> tuple[np.ndarray, Target, list[list[np.ndarray] | None]]:
        """``load`` for training: the image on the model's scale (``training_image``), and
        segments annotated as COCO polygons come with their rings (``[K, 2]`` x, y arrays) and an
        empty mask, because the official mappers move polygons through the augmentation and
        rasterise them only at the output size; ``None`` for every segment that is a mask (RLE,
        label maps, panoptic PNGs)."""
        record = self.records[index]
        image = self._mapped(self._image(record), record)
        if self.polygon_decoder is None:
            target = self.decoder(record, *image.shape[:2])
            return image, target, [None] * len(target)
        target, polygons = self.polygon_decoder(record, *image.shape[:2])
        return image, target, polygons

    def training_image(self, index: int) -> np.ndarray:
        """Image ``index`` as training feeds it to the model before normalising: ``[H, W,
        pixels.channels]``, 8-bit images unchanged, others mapped by ``pixels.intensity``."""
        record = self.records[index]
        return self._mapped(self._image(record), record)

    def _mapped(self, image: np.ndarray, record: Record) -> np.ndarray:
        try:
            return to_model_input(image, self.pixels, str(record.image_path))
        except ImageError as e:
            raise DatasetError(record.image_path, str(e).removeprefix(f"{record.image_path}: ")) from None

    def _image(self, record: Record) -> np.ndarray:
        try:
            image = read_image(record.image_path)
        except ImageError as e:
            raise DatasetError(record.image_path, str(e).removeprefix(f"{record.image_path}: ")) from None
        height, width = image.shape[:2]
        if record.height is not None and (record.height, record.width) != (height, width):
            raise DatasetError(record.image_path, f"image is {height}x{width} (HxW) but its annotation says "
                                                  f"{record.height}x{record.width}")
        return image

    def load_or_none(self, index: int) -> tuple[np.ndarray, Target] | None:
        """``load``, or ``None`` (remembering why) if it fails and the split was built with
        ``skip_bad``, so a training loop can go on without the image."""
        if not self.skip_bad:
            return self.load(index)
        if index in self._failed:
            return None
        try:
            return self.load(index)
        except DatasetError as e:
            self._failed[index] = e.problem
            self.skipped.append((e.path, e.problem))
            return None

    def segment_counts(self, *, scan: bool = False) -> tuple[list[int], list[int]] | None:
        """``(segments, images)`` per contiguous class. JSON formats count their annotations;
        label-map formats need ``scan=True`` (decodes every image) and return None otherwise."""
        segments, images = [0] * len(self.categories), [0] * len(self.categories)
        if self.format in ("coco_instances", "coco_panoptic", "lvis"):
            index = {c.id: i for i, c in enumerate(self.categories)}
            for record in self.records:
                labels = [index[a["category_id"]] for a in record.annotations]
                for label in labels:
                    segments[label] += 1
                for label in set(labels):
                    images[label] += 1
            return segments, images
        if not scan:
            return None
        for i in range(len(self)):
            loaded = self.load_or_none(i)
            if loaded is not None:
                labels = loaded[1].labels.tolist()
                for label in labels:
                    segments[label] += 1
                for label in set(labels):
                    images[label] += 1
        return segments, images

    def summary(self, *, scan: bool = False) -> str:
        """Counts of images, skipped records and segments per class, as a table for people."""
        things = sum(c.isthing for c in self.categories)
        lines = [f"{self.name} ({self.format}): {len(self)} images, {len(self.skipped)} skipped, "
                 f"{len(self.categories)} classes ({things} thing, {len(self.categories) - things} stuff)"]
        counts = self.segment_counts(scan=scan)
        if counts is None:
            lines.append("  (per-class counts need pixels: summary(scan=True) decodes every mask)")
            return "\n".join(lines)
        width = max([len(c.name) for c in self.categories] + [5])
        lines.append(f"  {'index':>5} {'id':>6}  {'class':<{width}}  {'thing':<5} {'segments':>8} {'images':>7}")
        for i, (c, n, m) in enumerate(zip(self.categories, *counts)):
            lines.append(f"  {i:>5} {c.id:>6}  {c.name:<{width}}  {'yes' if c.isthing else 'no':<5} {n:>8} {m:>7}"
                         + ("  <- never annotated" if n == 0 else ""))
        for path, reason in self.skipped[:20]:
            lines.append(f"  skipped {path}: {reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers for readers


MAX_CLASSES = 65_536  # the values of a 16-bit label PNG; also keeps a typo'd 1e9 from allocating per class


def class_count_problem(n: int) -> str | None:
    """Why ``n`` classes cannot be trained, or None."""
    if n > MAX_CLASSES:
        return f"{n:,} classes are more than the {MAX_CLASSES:,} this toolkit supports"
    return None


MAX_MASK_BYTES = 4 * 2**30  # dense [N, H, W] masks of one image; real data needs < 1.5 GB (Mapillary, LVIS)


def check_mask_budget(count: int, height: int, width: int, path: str | os.PathLike, where: str = "") -> None:
    """Raise before allocating ``count`` dense ``height x width`` masks past ``MAX_MASK_BYTES``:
    a checkerboard thing mask or a JSON listing 10^5 segments is valid but asks for terabytes."""
    if count * height * width > MAX_MASK_BYTES:
        raise DatasetError(path, f"{where}{count:,} segments of {height}x{width} pixels would take "
                                 f"{count * height * width / 2**30:,.1f} GB as dense masks, more than the "
                                 f"{MAX_MASK_BYTES / 2**30:g} GB allowed per image")


class Problems:
    """Per-record build-time failures: raised at once, or (``skip_bad``) dropped and listed."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    def report(self, path: str | os.PathLike, problem: str) -> None:
        if not self.skip_bad:
            raise DatasetError(path, problem)
        self.skipped.append((str(path), problem))


class FileIndex:
    """File existence by cached directory listings: one ``scandir`` per folder instead of one
    ``stat`` per image, which matters for 100k-image datasets on network storage."""

    def __init__(self) -> None:
        self._dirs: dict[Path, dict[str, bool]] = {}  # folder -> {name: is a file (not a folder)}

    def _listing(self, folder: Path) -> dict[str, bool]:
        names = self._dirs.get(folder)
        if names is None:
            names = {}
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            names[entry.name] = not entry.is_dir()
                        except OSError:
                            names[entry.name] = False
            except (OSError, ValueError):  # missing, unreadable, a NUL byte or an over-long name
                pass
            self._dirs[folder] = names
        return names

    def exists(self, path: Path) -> bool:
        """Whether ``path`` names a file (not a folder)."""
        return self.problem(path) is None

    def problem(self, path: Path) -> str | None:
        """None for a file, else ``"not found"`` or ``"is a directory"``."""
        is_file = self._listing(path.parent).get(path.name)
        return NOT_FOUND if is_file is None else None if is_file else "is a directory"


def read_json(path: Path) -> Any:
    """Parsed JSON; errors say where in the file the syntax breaks."""
    problem = path_problem(path)
    if problem is not None:
        raise DatasetError(path, "file not found" if problem == NOT_FOUND else f"{problem}, expected a JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno} (char {e.pos})"
        raise DatasetError(path, f"malformed JSON at {where}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise DatasetError(path, "malformed JSON: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise DatasetError(path, f"malformed JSON: {str(e)[:200]}") from None
    except OSError as e:
        raise DatasetError(path, f"cannot read the file ({e.strerror or e})") from None


LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")


def read_label_map(path: Path) -> np.ndarray:
    """``[H, W]`` integer values of a single-channel label PNG (palette PNGs give their indices,
    16- and 32-bit PNGs their full values); colour masks are rejected, as their colours are not
    class indices."""
    with open_image(path, error=DatasetError, what="mask") as image:
        image.load()
        if image.mode in LABEL_MODES:
            return np.asarray(image)
        if image.mode == "1":
            return np.asarray(image).astype(np.uint8)
        if image.mode == "LA":
            return np.asarray(image)[..., 0]
        if image.mode in ("RGB", "RGBA"):
            rgb = np.asarray(image)[..., :3]
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
                raise DatasetError(path, "colour mask: expected a single-channel label PNG whose pixel values "
                                         "are class indices (convert colours to indices first)")
            return rgb[..., 0]
        raise DatasetError(path, f"unsupported mask mode {image.mode!r}; expected a single-channel PNG")


def read_rgb_png(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 pixels of an RGB PNG, without any EXIF re-orientation; 16-bit and
    float files are refused (converting them to 8 bits would silently change the ids)."""
    with open_image(path, error=DatasetError, what="mask") as image:
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            raise DatasetError(path, f"{image.mode}-mode mask: expected an 8-bit RGB PNG")
        return np.asarray(image.convert("RGB"))


def check_size(array: np.ndarray, path: Path, record: Record, height: int, width: int) -> None:
    """Raise if a mask is not the size of its image (EXIF-rotated photos are a common cause)."""
    h, w = array.shape[:2]
    if (h, w) != (height, width):
        hint = " (is the image rotated by its EXIF orientation tag?)" if (h, w) == (width, height) else ""
        raise DatasetError(path, f"mask is {h}x{w} (HxW) but its image {record.image_path} is {height}x{width}{hint}")


def make_target(masks: list[np.ndarray] | np.ndarray, labels: list[int] | np.ndarray, is_thing: list[bool] | np.ndarray,
                iscrowd: list[bool] | np.ndarray, ignore: np.ndarray) -> Target:
    """A ``Target`` from numpy parts (``masks`` ``[N, H, W]`` or a list of ``[H, W]``)."""
    h, w = ignore.shape
    if isinstance(masks, list):
        masks = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
    return Target(masks=torch.from_numpy(np.ascontiguousarray(masks, dtype=bool)),
                  labels=torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1)),
                  is_thing=torch.as_tensor(np.asarray(is_thing, dtype=bool).reshape(-1)),
                  iscrowd=torch.as_tensor(np.asarray(iscrowd, dtype=bool).reshape(-1)),
                  ignore=torch.from_numpy(np.ascontiguousarray(ignore, dtype=bool)))


def default_color(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class index (golden-ratio hues) for files without colours."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.65 + 0.35 * (index % 2), 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def duplicates(values: Iterable[Any]) -> list[Any]:
    """The values that occur more than once, in first-seen order (linear time: a 100k-entry list
    with one duplicate must not take ``list.count`` per entry)."""
    return [v for v, n in Counter(values).items() if n > 1]
