"""One target structure out of every dataset format, and the DATA.yaml file that describes a dataset.

A ``DatasetSplit`` is the categories (list index = contiguous class id) plus one ``Record`` per
image; ``load(i)`` decodes image ``i`` and its ``Target``. Readers check what is cheap (JSON
structure, category ids, file existence) when the split is built, so a broken dataset fails in
seconds instead of hours into training; what needs pixels (mask sizes, segment ids, label values)
is checked in ``load``. Every error is a ``DatasetError`` naming the file and the problem.
"""

from __future__ import annotations

import colorsys
import difflib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image, UnidentifiedImageError

from mask2former.config import CategoryInfo
from mask2former.data.image import ImageError, read_image
from mask2former.structures import Target

FORMATS = ("coco_panoptic", "coco_instances", "semantic", "cityscapes", "lvis", "folder")
SPLIT_KEYS = ("images", "annotations", "masks")
# split keys each format needs (all of them required)
FORMAT_SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "coco_panoptic": ("images", "annotations", "masks"),
    "coco_instances": ("images", "annotations"),
    "lvis": ("images", "annotations"),
    "semantic": ("images", "masks"),
    "folder": ("images", "masks"),
    "cityscapes": ("images", "masks"),
}
# top-level options each format understands
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "coco_panoptic": (), "coco_instances": (), "lvis": (), "cityscapes": (),
    "semantic": ("classes", "num_classes", "ignore_label", "reduce_zero_label"),
    "folder": ("classes", "ignore_label", "mask_values"),
}
OPTION_KEYS = ("classes", "num_classes", "ignore_label", "reduce_zero_label", "mask_values")


class DatasetError(ValueError):
    """A dataset file is missing, malformed or inconsistent; ``path`` names the file."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.problem))


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


@dataclass
class DatasetSplit:
    """The images of one split and how to decode them; ``skipped`` lists ``(file, reason)`` of
    records dropped at build time or failing ``load_or_none`` (in this process) with ``skip_bad``."""

    name: str
    categories: list[CategoryInfo]
    records: list[Record]
    decoder: TargetDecoder
    format: str = ""
    skip_bad: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _failed: dict[int, str] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> tuple[np.ndarray, Target]:
        """Image ``[H, W, 3]`` uint8 RGB and its target at the image's size."""
        record = self.records[index]
        try:
            image = read_image(record.image_path)
        except ImageError as e:
            raise DatasetError(record.image_path, str(e).removeprefix(f"{record.image_path}: ")) from None
        height, width = image.shape[:2]
        if record.height is not None and (record.height, record.width) != (height, width):
            raise DatasetError(record.image_path, f"image is {height}x{width} (HxW) but its annotation says "
                                                  f"{record.height}x{record.width}")
        return image, self.decoder(record, height, width)

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
    """File existence by cached directory listings: one ``listdir`` per folder instead of one
    ``stat`` per image, which matters for 100k-image datasets on network storage."""

    def __init__(self) -> None:
        self._dirs: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        names = self._dirs.get(path.parent)
        if names is None:
            try:
                names = frozenset(os.listdir(path.parent))
            except OSError:
                names = frozenset()
            self._dirs[path.parent] = names
        return path.name in names


def read_json(path: Path) -> Any:
    """Parsed JSON; errors say where in the file the syntax breaks."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno} (char {e.pos})"
        raise DatasetError(path, f"malformed JSON at {where}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_label_map(path: Path) -> np.ndarray:
    """``[H, W]`` integer values of a single-channel label PNG (palette PNGs give their indices,
    16- and 32-bit PNGs their full values); colour masks are rejected, as their colours are not
    class indices."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                array = np.asarray(image)
            elif image.mode == "1":
                array = np.asarray(image).astype(np.uint8)
            elif image.mode == "LA":
                array = np.asarray(image)[..., 0]
            elif image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image)[..., :3]
                if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
                    raise DatasetError(path, "colour mask: expected a single-channel label PNG whose pixel values "
                                             "are class indices (convert colours to indices first)")
                array = rgb[..., 0]
            else:
                raise DatasetError(path, f"unsupported mask mode {image.mode!r}; expected a single-channel PNG")
    except FileNotFoundError:
        raise DatasetError(path, "mask file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(path, f"cannot decode mask ({e})") from None
    return array


def read_rgb_png(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 pixels of an RGB PNG, without any EXIF re-orientation."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(path, "mask file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(path, f"cannot decode mask ({e})") from None


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


def did_you_mean(key: str, options: list[str] | tuple[str, ...]) -> str:
    key = str(key)
    prefixed = [o for o in options if key and (o.startswith(key) or key.startswith(o))]  # "val" -> "validation"
    close = prefixed[:1] or difflib.get_close_matches(key, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(options)}"


# --------------------------------------------------------------------------- DATA.yaml


@dataclass
class DataConfig:
    """A parsed DATA.yaml: the format, its options, and per split the paths (absolute) to
    ``images`` / ``annotations`` / ``masks``. ``classes`` hold ``id`` = list index here; readers
    set the ids their files use."""

    format: str
    splits: dict[str, dict[str, Path]]
    classes: list[CategoryInfo] | None = None
    num_classes: int | None = None
    ignore_label: int = 255
    reduce_zero_label: bool = False
    mask_values: dict[int, int] | None = None
    source: Path | None = None


def load_data_config(path: str | os.PathLike) -> DataConfig:
    """Read a DATA.yaml; relative paths inside are relative to the file's folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise DatasetError(path, f"malformed YAML{where}: {getattr(e, 'problem', None) or e}") from None
    return data_config_from_dict(data, base_dir=path.parent, source=path)


def data_config_from_dict(data: Any, *, base_dir: str | os.PathLike = ".", source: str | os.PathLike | None = None
                          ) -> DataConfig:
    """Validate a DATA.yaml mapping: unknown keys and formats get "did you mean", keys a format
    needs are named when missing, keys it does not use are rejected (they would be silently
    ignored otherwise)."""
    where = Path(source) if source is not None else Path("DATA.yaml")
    base = Path(base_dir)
    if not isinstance(data, dict):
        raise DatasetError(where, "expected a mapping with 'format' and splits such as 'train' and 'val'")
    fmt = data.get("format")
    if fmt is None:
        raise DatasetError(where, f"missing 'format' (one of: {', '.join(FORMATS)})")
    if fmt not in FORMATS:
        raise DatasetError(where, f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}")
    options: dict[str, Any] = {}
    splits: dict[str, dict[str, Path]] = {}
    for key, value in data.items():
        if key == "format":
            continue
        if key in OPTION_KEYS:
            if key not in FORMAT_OPTIONS[fmt]:
                users = [f for f, keys in FORMAT_OPTIONS.items() if key in keys]
                raise DatasetError(where, f"{key!r} is not used by format {fmt!r} (only by: {', '.join(users)})")
            options[key] = value
        elif isinstance(value, dict) and (key in ("train", "val", "test") or set(map(str, value)) & set(SPLIT_KEYS)):
            splits[str(key)] = _split_paths(value, str(key), fmt, base, where)
        else:
            known = ["format", *FORMAT_OPTIONS[fmt], "train", "val", "test"]
            raise DatasetError(where, f"unknown key {key!r}{did_you_mean(key, known)}")
    if not splits:
        raise DatasetError(where, "no splits: add e.g. 'train: {images: ..., "
                                  + ", ".join(f"{k}: ..." for k in FORMAT_SPLIT_KEYS[fmt][1:]) + "}'")
    return DataConfig(format=fmt, splits=splits, source=Path(source) if source is not None else None,
                      **_parse_options(options, fmt, base, where))


def _split_paths(value: dict, split: str, fmt: str, base: Path, where: Path) -> dict[str, Path]:
    needed = FORMAT_SPLIT_KEYS[fmt]
    paths: dict[str, Path] = {}
    for key, item in value.items():
        if key not in needed:
            hint = (f" (format {fmt!r} uses only: {', '.join(needed)})" if key in SPLIT_KEYS
                    else did_you_mean(key, needed))
            raise DatasetError(where, f"{split}: unknown key {key!r}{hint}")
        if not isinstance(item, str | os.PathLike):
            raise DatasetError(where, f"{split}.{key}: expected a path, got {item!r}")
        paths[key] = base / Path(item).expanduser()
    missing = [k for k in needed if k not in paths]
    if missing:
        raise DatasetError(where, f"{split}: format {fmt!r} needs {', '.join(repr(k) for k in missing)}")
    return paths


def _parse_options(options: dict[str, Any], fmt: str, base: Path, where: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "classes" in options:
        out["classes"] = parse_classes(options["classes"], base, where)
    elif fmt == "folder":
        raise DatasetError(where, "format 'folder' needs 'classes': a list of names or {name, isthing} "
                                  "entries, or a .json/.yaml/.txt file")
    if "num_classes" in options:
        n = options["num_classes"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DatasetError(where, f"num_classes: expected a positive integer, got {n!r}")
        if "classes" in out and len(out["classes"]) != n:
            raise DatasetError(where, f"num_classes is {n} but 'classes' lists {len(out['classes'])}")
        out["num_classes"] = n
    if fmt == "semantic" and "classes" not in out and "num_classes" not in out:
        raise DatasetError(where, "format 'semantic' needs 'classes' or 'num_classes'")
    if "ignore_label" in options:
        v = options["ignore_label"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DatasetError(where, f"ignore_label: expected a non-negative integer, got {v!r}")
        out["ignore_label"] = v
    if "reduce_zero_label" in options:
        if not isinstance(options["reduce_zero_label"], bool):
            raise DatasetError(where, "reduce_zero_label: expected true or false, "
                                      f"got {options['reduce_zero_label']!r}")
        out["reduce_zero_label"] = options["reduce_zero_label"]
    if "mask_values" in options:
        mv = options["mask_values"]
        if not isinstance(mv, dict) or not mv:
            raise DatasetError(where, f"mask_values: expected a mapping pixel_value: class_index, got {mv!r}")
        try:
            out["mask_values"] = {int(k): int(v) for k, v in mv.items()}
        except (TypeError, ValueError):
            raise DatasetError(where, f"mask_values: keys and values must be integers, got {mv!r}") from None
    return out


_CLASS_KEYS = ("name", "isthing", "color")


def parse_classes(value: Any, base: Path, where: Path) -> list[CategoryInfo]:
    """Classes from a list of names or ``{name, isthing, color}`` dicts, or from a .json / .yaml
    (the same list, or a mapping with a ``classes`` list) or .txt file (one name per line)."""
    if isinstance(value, str):
        file = base / Path(value).expanduser()
        if not file.is_file():
            raise DatasetError(where, f"classes: file {file} not found")
        if file.suffix.lower() == ".txt":
            lines = file.read_text(encoding="utf-8").splitlines()
            value = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
        elif file.suffix.lower() in (".json", ".yaml", ".yml"):
            try:
                value = yaml.safe_load(file.read_text(encoding="utf-8"))  # YAML reads JSON too
            except yaml.YAMLError as e:
                raise DatasetError(file, f"malformed {file.suffix[1:].upper()}: {e}") from None
            if isinstance(value, dict) and "classes" in value:
                value = value["classes"]
        else:
            raise DatasetError(where, f"classes: {file.name} must be a .json, .yaml or .txt file")
        where = file
    if not isinstance(value, list) or not value:
        raise DatasetError(where, f"classes: expected a non-empty list of names or {{name, isthing}} entries, "
                                  f"got {value!r}")
    classes: list[CategoryInfo] = []
    for i, item in enumerate(value):
        if isinstance(item, str | int) and not isinstance(item, bool):
            classes.append(CategoryInfo(id=i, name=str(item), isthing=False, color=default_color(i)))
            continue
        if not isinstance(item, dict) or "name" not in item:
            raise DatasetError(where, f"classes[{i}]: expected a name or a mapping with 'name', got {item!r}")
        for key in item:
            if key not in _CLASS_KEYS:
                raise DatasetError(where, f"classes[{i}]: unknown key {key!r}{did_you_mean(key, _CLASS_KEYS)}")
        if not isinstance(item.get("isthing", False), bool):
            raise DatasetError(where, f"classes[{i}].isthing: expected true or false, got {item['isthing']!r}")
        color = item.get("color", default_color(i))
        if not (isinstance(color, list | tuple) and len(color) == 3):
            raise DatasetError(where, f"classes[{i}].color: expected [r, g, b], got {color!r}")
        classes.append(CategoryInfo(id=i, name=str(item["name"]), isthing=bool(item.get("isthing", False)),
                                    color=tuple(int(c) for c in color)))
    names = [c.name for c in classes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(where, f"classes: duplicate names {duplicates}")
    return classes


def build_split(data_config: DataConfig | str | os.PathLike, split: str = "train", *,
                skip_bad: bool = False) -> DatasetSplit:
    """The split ``split`` of a dataset described by a DataConfig or a DATA.yaml path; with
    ``skip_bad``, records failing a check are dropped and listed in ``skipped`` instead of raising."""
    from mask2former.data import cityscapes, coco, folder, lvis, panoptic, semantic

    cfg = data_config if isinstance(data_config, DataConfig) else load_data_config(data_config)
    where = cfg.source or Path("DATA.yaml")
    if split not in cfg.splits:
        raise DatasetError(where, f"no split {split!r}{did_you_mean(split, list(cfg.splits))}")
    paths = cfg.splits[split]
    for key, path in paths.items():
        if not path.exists():
            raise DatasetError(path, f"not found ({split}.{key} in {where})")
    if cfg.format == "coco_instances":
        result = coco.read_coco_instances(paths["annotations"], paths["images"], name=split, skip_bad=skip_bad)
    elif cfg.format == "lvis":
        result = lvis.read_lvis(paths["annotations"], paths["images"], name=split, skip_bad=skip_bad)
    elif cfg.format == "coco_panoptic":
        result = panoptic.read_coco_panoptic(paths["annotations"], paths["images"], paths["masks"], name=split,
                                             skip_bad=skip_bad)
    elif cfg.format == "cityscapes":
        result = cityscapes.read_cityscapes(paths["images"], paths["masks"], name=split, skip_bad=skip_bad)
    elif cfg.format == "semantic":
        result = semantic.read_semantic(paths["images"], paths["masks"], classes=cfg.classes,
                                        num_classes=cfg.num_classes, ignore_label=cfg.ignore_label,
                                        reduce_zero_label=cfg.reduce_zero_label, name=split, skip_bad=skip_bad)
    else:
        assert cfg.format == "folder" and cfg.classes is not None
        result = folder.read_folder(paths["images"], paths["masks"], classes=cfg.classes,
                                    ignore_label=cfg.ignore_label, mask_values=cfg.mask_values, name=split,
                                    skip_bad=skip_bad)
    if not result.records and result.skipped:  # skip_bad must not turn a wrong path into an empty dataset
        path, reason = result.skipped[0]
        raise DatasetError(path, f"every record of split {split!r} failed its checks ({len(result.skipped)} "
                                 f"skipped); the first: {reason}")
    return result
