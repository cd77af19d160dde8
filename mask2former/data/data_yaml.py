"""DATA.yaml: the file that describes a dataset, and ``build_split`` that reads the split it names.

Validation is strict because a key silently ignored (a typo in ``annotations``, an option the
format does not use) would train on the wrong data without a word; every error names the YAML
file, the key and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mask2former.config import MAX_CHANNELS, CategoryInfo, ModelConfig, PixelConfig, from_dict, imagenet_stats, to_dict
from mask2former.data.cityscapes import CLASS_SETS as CITYSCAPES_CLASS_SETS
from mask2former.data.cityscapes import cityscapes_categories
from mask2former.data.coco import color_problem
from mask2former.data.datasets import (
    DatasetError,
    DatasetSplit,
    class_count_problem,
    default_color,
    duplicates,
)
from mask2former.data.files import NOT_FOUND, expand_user, path_problem
from mask2former.errors import ConfigError, brief
from mask2former.formats import IGNORE_LABEL, did_you_mean
from mask2former.safe_yaml import load_yaml_file

FORMATS = ("coco_panoptic", "coco_instances", "semantic", "cityscapes", "lvis", "folder", "geotiff", "nifti", "dicom")
SPLIT_KEYS = ("images", "annotations", "masks", "instances", "semantic")
FILE_KEYS = ("annotations", "instances")  # split keys naming a file; the others name folders
# split keys each format needs (all of them required)
FORMAT_SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "coco_panoptic": ("images", "annotations", "masks"),
    "coco_instances": ("images", "annotations"),
    "lvis": ("images", "annotations"),
    "semantic": ("images", "masks"),
    "folder": ("images", "masks"),
    "cityscapes": ("images", "masks"),
    "geotiff": ("images", "masks"),  # an image raster and its label raster, or two folders of them
    "nifti": ("images", "masks"),  # folders of .nii / .nii.gz volumes and their label volumes (same names)
    "dicom": ("images", "masks"),  # folders of series folders; label volumes (NIfTI or series) of the same names
}
# split keys a format may add: the ground truth the official evaluation scores some tasks against
# (mask AP: a COCO instances JSON; mIoU: semantic label PNGs), instead of the panoptic PNGs
FORMAT_OPTIONAL_SPLIT_KEYS: dict[str, tuple[str, ...]] = {"coco_panoptic": ("instances", "semantic")}
# top-level options each format understands
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "coco_panoptic": ("ignore_label", "reduce_zero_label"),  # of the splits' 'semantic' label PNGs
    "coco_instances": (), "lvis": (),
    "cityscapes": ("classes",),  # which official class set: instance (8) | semantic | panoptic (19)
    "semantic": ("classes", "num_classes", "ignore_label", "reduce_zero_label"),
    "folder": ("classes", "ignore_label", "mask_values"),
    "geotiff": ("classes", "ignore_label", "tile", "tiles_per_raster"),  # training windows: side, count
    "nifti": ("classes", "num_classes", "ignore_label", "axis", "context"),  # slice axis, 2.5D neighbours
    "dicom": ("classes", "num_classes", "ignore_label", "axis", "context"),
}
OPTION_KEYS = ("classes", "num_classes", "ignore_label", "reduce_zero_label", "mask_values",
               "tile", "tiles_per_raster", "axis", "context")
# what the images are, for every format: the model's input channels and intensity rule (model.pixels)
PIXEL_KEYS = ("channels", "intensity", "window", "mean", "std", "display_channels")
MAX_LABEL = 2**31  # pixel values of label maps are at most 32-bit signed integers (Pillow's "I" mode)


@dataclass
class DataConfig:
    """A parsed DATA.yaml: the format, its options, and per split the paths (absolute) to
    ``images`` / ``annotations`` / ``masks`` (and, for COCO panoptic, the optional ``instances``
    JSON and ``semantic`` label folder). ``classes`` hold ``id`` = list index here; readers set
    the ids their files use. ``cityscapes_classes`` is the Cityscapes class set (None: not said,
    ``for_model`` picks it)."""

    format: str
    splits: dict[str, dict[str, Path]]
    classes: list[CategoryInfo] | None = None
    num_classes: int | None = None
    ignore_label: int = IGNORE_LABEL
    reduce_zero_label: bool = False
    mask_values: dict[int, int] | None = None
    source: Path | None = None
    cityscapes_classes: str | None = None
    tile: int | None = None  # geotiff: side of the training windows, pixels (None: the reader's default)
    tiles_per_raster: int | None = None  # geotiff: training windows drawn per raster (None: the reader's default)
    axis: int | str = "auto"  # nifti / dicom: the slice axis, 0, 1, 2 or auto (the acquisition axis)
    context: int | None = None  # nifti / dicom: neighbouring slices on each side as channels (2 context + 1)
    pixels: dict[str, Any] = field(default_factory=dict)  # PIXEL_KEYS given, by their model.pixels names


def load_data_config(path: str | os.PathLike) -> DataConfig:
    """Read a DATA.yaml; relative paths inside are relative to the file's folder."""
    path = Path(path)
    return data_config_from_dict(load_yaml_file(path), base_dir=path.parent, source=path)


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
        raise DatasetError(where, f"unknown format {brief(fmt)}{did_you_mean(fmt, FORMATS)}")
    options: dict[str, Any] = {}
    splits: dict[str, dict[str, Path]] = {}
    for key, value in data.items():
        if key == "format":
            continue
        if key in PIXEL_KEYS:
            options[key] = value
        elif key in OPTION_KEYS:
            if key not in FORMAT_OPTIONS[fmt]:
                users = [f for f, keys in FORMAT_OPTIONS.items() if key in keys]
                raise DatasetError(where, f"{key!r} is not used by format {fmt!r} (only by: {', '.join(users)})")
            options[key] = value
        elif isinstance(value, dict) and (key in ("train", "val", "test") or set(map(str, value)) & set(SPLIT_KEYS)):
            splits[str(key)] = _split_paths(value, str(key), fmt, base, where)
        elif key in ("train", "val", "test"):
            raise DatasetError(where, f"{key}: expected a mapping of {', '.join(FORMAT_SPLIT_KEYS[fmt])} paths, "
                                      f"got {brief(value)}")
        else:
            known = ["format", *FORMAT_OPTIONS[fmt], *PIXEL_KEYS, "train", "val", "test"]
            raise DatasetError(where, f"unknown key {brief(key)}{did_you_mean(key, known)}")
    if not splits:
        raise DatasetError(where, "no splits: add e.g. 'train: {images: ..., "
                                  + ", ".join(f"{k}: ..." for k in FORMAT_SPLIT_KEYS[fmt][1:]) + "}'")
    _check_semantic_options(options, fmt, splits, where)
    pixels = {k: options.pop(k) for k in PIXEL_KEYS if k in options}
    config = DataConfig(format=fmt, splits=splits, source=Path(source) if source is not None else None,
                        pixels=pixels, **_parse_options(options, fmt, base, where))
    pixel_config(config, PixelConfig(), need_stats=False)  # a bad channel count or window fails now
    return config


def pixel_config(data_config: DataConfig, base: PixelConfig, *, need_stats: bool = True) -> PixelConfig:
    """``base`` (the model's ``pixels``) with what DATA.yaml says of its images: ``channels``,
    ``intensity`` (a ``window`` alone means ``intensity: window``), ``window``, per-channel ``mean`` /
    ``std`` and ``display_channels``. A channel count other than ``base``'s without ``mean`` / ``std``
    takes ImageNet's statistics spread over the channels (``config.imagenet_stats``); ``intensity:
    dataset`` needs the dataset's own (``mask2former stats``) unless not ``need_stats``. Errors name
    the YAML file and the key."""
    where = data_config.source or Path("DATA.yaml")
    given = dict(data_config.pixels)
    if "window" in given and "intensity" not in given:
        given["intensity"] = "window"
    if "intensity" in given and given["intensity"] != "window" and "window" not in given:
        given["window"] = []  # the model's window belongs to the model's window rule only
    if need_stats and given.get("intensity", base.intensity) == "dataset" and not ("mean" in given and "std" in given):
        raise DatasetError(where, "intensity 'dataset' normalises by the dataset's own per-channel mean and std, and "
                                  "this file has none: run `mask2former stats` on it to compute and add them")
    if data_config.context is not None:  # nifti / dicom 2.5D: the stacked slices are the channels
        stacked = 2 * data_config.context + 1
        if given.setdefault("channels", stacked) != stacked:
            raise DatasetError(where, f"context {data_config.context} stacks {stacked} slices as channels but "
                                      f"channels is {brief(given['channels'])}")
    channels = given.get("channels", base.channels)
    if channels != base.channels and not ("mean" in given and "std" in given) and type(channels) is int \
            and channels >= 1:
        mean, std = imagenet_stats(min(channels, MAX_CHANNELS + 1))  # a huge count fails the check below
        given.setdefault("mean", list(mean))
        given.setdefault("std", list(std))
    try:
        pixels = from_dict(PixelConfig, {**to_dict(base), **given}, _where="pixels")
        pixels.check("pixels")
    except ConfigError as e:
        raise DatasetError(where, str(e).replace("pixels.", "")) from None
    return pixels


def _short(name: str) -> str:
    """A split name for a message, cut if a hostile file made it long."""
    return name if len(name) <= 60 else name[:57] + "..."


def _split_paths(value: dict, split: str, fmt: str, base: Path, where: Path) -> dict[str, Path]:
    needed = FORMAT_SPLIT_KEYS[fmt]
    allowed = needed + FORMAT_OPTIONAL_SPLIT_KEYS.get(fmt, ())
    paths: dict[str, Path] = {}
    for key, item in value.items():
        if key not in allowed:
            hint = (f" (format {fmt!r} uses only: {', '.join(allowed)})" if key in SPLIT_KEYS
                    else did_you_mean(key, allowed))
            raise DatasetError(where, f"{_short(split)}: unknown key {brief(key)}{hint}")
        if not isinstance(item, str | os.PathLike) or not str(item):
            raise DatasetError(where, f"{_short(split)}.{key}: expected a path, got {brief(item)}")
        paths[key] = base / expand_user(item)
    missing = [k for k in needed if k not in paths]
    if missing:
        raise DatasetError(where, f"{_short(split)}: format {fmt!r} needs {', '.join(repr(k) for k in missing)}")
    return paths


def _check_semantic_options(options: dict[str, Any], fmt: str, splits: dict[str, dict[str, Path]],
                            where: Path) -> None:
    """COCO panoptic's ``ignore_label`` / ``reduce_zero_label`` describe the splits' ``semantic``
    label PNGs: without one they would be silently ignored."""
    given = [k for k in ("ignore_label", "reduce_zero_label") if k in options]
    if fmt == "coco_panoptic" and given and not any("semantic" in paths for paths in splits.values()):
        raise DatasetError(where, f"{given[0]!r} describes the 'semantic' label PNGs of a split, and no split "
                                  "names any (e.g. val: {..., semantic: path/to/label_pngs})")


def _cityscapes_classes(value: Any, where: Path) -> str:
    """The official class set a Cityscapes split serves (the datasets cityscapes_fine_instance_seg,
    _sem_seg and _panoptic): a list of names would have nothing to say about the files."""
    if value not in CITYSCAPES_CLASS_SETS:
        raise DatasetError(where, "classes: format 'cityscapes' takes instance (the 8 thing classes) or semantic / "
                                  f"panoptic (the 19), got {brief(value)}"
                                  f"{did_you_mean(value, CITYSCAPES_CLASS_SETS, fallback='')}")
    return str(value)


def _parse_options(options: dict[str, Any], fmt: str, base: Path, where: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if fmt == "cityscapes":
        if "classes" in options:
            out["cityscapes_classes"] = _cityscapes_classes(options["classes"], where)
    elif "classes" in options:
        out["classes"] = parse_classes(options["classes"], base, where)
    elif fmt in ("folder", "geotiff"):
        raise DatasetError(where, f"format {fmt!r} needs 'classes': a list of names or {{name, isthing}} "
                                  "entries, or a .json/.yaml/.txt file")
    for key, low in (("tile", 32), ("tiles_per_raster", 1)):  # geotiff training windows
        if key in options:
            if type(options[key]) is not int or options[key] < low:
                raise DatasetError(where, f"{key}: expected a whole number >= {low}, got {brief(options[key])}")
            out[key] = options[key]
    if "num_classes" in options:
        n = options["num_classes"]
        if type(n) is not int or n < 1:
            raise DatasetError(where, f"num_classes: expected a positive integer, got {brief(n)}")
        problem = class_count_problem(n)
        if problem is not None:
            raise DatasetError(where, f"num_classes: {problem}")
        if "classes" in out and len(out["classes"]) != n:
            raise DatasetError(where, f"num_classes is {n} but 'classes' lists {len(out['classes'])}")
        out["num_classes"] = n
    if fmt in ("semantic", "nifti", "dicom") and "classes" not in out and "num_classes" not in out:
        raise DatasetError(where, f"format {fmt!r} needs 'classes' or 'num_classes'")
    if "axis" in options:  # nifti / dicom slice axis
        if options["axis"] not in ("auto", 0, 1, 2) or isinstance(options["axis"], bool):
            raise DatasetError(where, f"axis: expected auto, 0, 1 or 2, got {brief(options['axis'])}")
        out["axis"] = options["axis"]
    if "context" in options:  # nifti / dicom 2.5D: the model's channels are 2 context + 1 slices
        if type(options["context"]) is not int or not 0 <= options["context"] <= (MAX_CHANNELS - 1) // 2:
            raise DatasetError(where, f"context: expected a whole number of neighbouring slices 0.."
                                      f"{(MAX_CHANNELS - 1) // 2}, got {brief(options['context'])}")
        out["context"] = options["context"]
    if "ignore_label" in options:
        v = options["ignore_label"]
        if type(v) is not int or not 0 <= v < MAX_LABEL:
            raise DatasetError(where, f"ignore_label: expected a non-negative integer below {MAX_LABEL:,} "
                                      f"(a label map pixel value), got {brief(v)}")
        out["ignore_label"] = v
    if "reduce_zero_label" in options:
        if not isinstance(options["reduce_zero_label"], bool):
            raise DatasetError(where, "reduce_zero_label: expected true or false, "
                                      f"got {brief(options['reduce_zero_label'])}")
        out["reduce_zero_label"] = options["reduce_zero_label"]
    if "mask_values" in options:
        out["mask_values"] = _mask_values(options["mask_values"], where)
    return out


def _mask_values(mv: Any, where: Path) -> dict[int, int]:
    """``{pixel value: class index}``: integers, or strings of digits (JSON keys are strings);
    a float 1.5 or a bool would silently read as 1."""
    if not isinstance(mv, dict) or not mv:
        raise DatasetError(where, f"mask_values: expected a mapping pixel_value: class_index, got {brief(mv)}")
    out: dict[int, int] = {}
    for k, v in mv.items():
        key, value = _whole_number(k), _whole_number(v)
        if key is None or value is None:
            raise DatasetError(where, f"mask_values: keys and values must be integers, got {brief(k)}: {brief(v)}")
        if not 0 <= key < MAX_LABEL or not 0 <= value < MAX_LABEL:
            raise DatasetError(where, f"mask_values: {key}: {value} is outside 0..{MAX_LABEL - 1} "
                                      "(label map pixel values)")
        out[key] = value
    return out


def _whole_number(value: Any) -> int | None:
    if type(value) is int:
        return value
    text = value.strip() if isinstance(value, str) else ""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return int(text) if digits.isascii() and digits.isdecimal() and len(digits) <= 18 else None


_CLASS_KEYS = ("name", "isthing", "color")


def parse_classes(value: Any, base: Path, where: Path) -> list[CategoryInfo]:
    """Classes from a list of names or ``{name, isthing, color}`` dicts, or from a .json / .yaml
    (the same list, or a mapping with a ``classes`` list) or .txt file (one name per line)."""
    if isinstance(value, str):
        value, where = _classes_file(value, base, where)
    if not isinstance(value, list) or not value:
        raise DatasetError(where, f"classes: expected a non-empty list of names or {{name, isthing}} entries, "
                                  f"got {brief(value)}")
    problem = class_count_problem(len(value))
    if problem is not None:
        raise DatasetError(where, f"classes: {problem}")
    classes = [_class_entry(item, i, where) for i, item in enumerate(value)]
    repeated = duplicates(c.name for c in classes)
    if repeated:
        raise DatasetError(where, f"classes: duplicate names {brief(sorted(repeated))}")
    return classes


def _classes_file(name: str, base: Path, where: Path) -> tuple[Any, Path]:
    """The class list in a .txt, .json or .yaml file named by DATA.yaml, and that file."""
    file = base / expand_user(name)
    problem = path_problem(file)
    if problem == NOT_FOUND:
        raise DatasetError(where, f"classes: file {file} not found")
    if problem is not None:
        raise DatasetError(where, f"classes: file {file} {problem}")
    suffix = file.suffix.lower()
    if suffix == ".txt":
        text = _text_lines(file)
        return [s.strip() for s in text if s.strip() and not s.strip().startswith("#")], file
    if suffix in (".json", ".yaml", ".yml"):
        value = load_yaml_file(file)  # YAML reads JSON too
        if isinstance(value, dict) and "classes" in value:
            value = value["classes"]
        return value, file
    raise DatasetError(where, f"classes: {file.name} must be a .json, .yaml or .txt file")


def _text_lines(file: Path) -> list[str]:
    """The lines of a UTF-8 text file; unreadable or non-UTF-8 files are a DatasetError."""
    try:
        return file.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(file, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DatasetError(file, f"cannot read the file ({e.strerror or e})") from None


def _class_entry(item: Any, i: int, where: Path) -> CategoryInfo:
    """One class from a name or a ``{name, isthing, color}`` mapping."""
    if type(item) in (str, int):
        return CategoryInfo(id=i, name=str(item), isthing=False, color=default_color(i))
    if not isinstance(item, dict) or "name" not in item:
        raise DatasetError(where, f"classes[{i}]: expected a name or a mapping with 'name', got {brief(item)}")
    for key in item:
        if key not in _CLASS_KEYS:
            raise DatasetError(where, f"classes[{i}]: unknown key {brief(key)}{did_you_mean(key, _CLASS_KEYS)}")
    if type(item["name"]) not in (str, int):
        raise DatasetError(where, f"classes[{i}].name: expected a string, got {brief(item['name'])}")
    if not isinstance(item.get("isthing", False), bool):
        raise DatasetError(where, f"classes[{i}].isthing: expected true or false, got {brief(item['isthing'])}")
    color = item.get("color", default_color(i))
    problem = color_problem(color, f"classes[{i}].color")
    if problem is not None:
        raise DatasetError(where, problem)
    return CategoryInfo(id=i, name=str(item["name"]), isthing=item.get("isthing", False), color=tuple(color))


def build_split(data_config: DataConfig | str | os.PathLike, split: str = "train", *,
                skip_bad: bool = False, pixels: PixelConfig | None = None) -> DatasetSplit:
    """The split ``split`` of a dataset described by a DataConfig or a DATA.yaml path; with
    ``skip_bad``, records failing a check are dropped and listed in ``skipped`` instead of raising.
    Its ``pixels`` (how training maps its images) are ``pixel_config`` over ``pixels`` (default:
    the defaults): pass the model's to train it."""
    from mask2former.data import cityscapes, coco, folder, ground_truth, lvis, panoptic, semantic

    cfg = data_config if isinstance(data_config, DataConfig) else load_data_config(data_config)
    where = cfg.source or Path("DATA.yaml")
    if split not in cfg.splits:
        raise DatasetError(where, f"no split {brief(split)}{did_you_mean(split, list(cfg.splits))}")
    paths = cfg.splits[split]
    for key, path in paths.items():
        raster_file = cfg.format == "geotiff" and path_problem(path) is None  # a raster, or a folder of them
        problem = path_problem(path, expect="file" if key in FILE_KEYS or raster_file else "dir")
        if problem is not None:
            raise DatasetError(path, f"{problem} ({split}.{key} in {where})")
    if cfg.format == "coco_instances":
        result = coco.read_coco_instances(paths["annotations"], paths["images"], name=split, skip_bad=skip_bad)
        ground_truth.own_instances(result, paths["annotations"])
    elif cfg.format == "lvis":
        result = lvis.read_lvis(paths["annotations"], paths["images"], name=split, skip_bad=skip_bad)
    elif cfg.format == "coco_panoptic":
        result = panoptic.read_coco_panoptic(paths["annotations"], paths["images"], paths["masks"], name=split,
                                             skip_bad=skip_bad)
        if "instances" in paths:
            ground_truth.attach_instances(result, paths["instances"])
        if "semantic" in paths:
            ground_truth.attach_semantic(result, paths["semantic"], paths["images"], ignore_label=cfg.ignore_label,
                                         reduce_zero_label=cfg.reduce_zero_label)
    elif cfg.format == "cityscapes":
        result = cityscapes.read_cityscapes(paths["images"], paths["masks"], classes=cfg.cityscapes_classes or
                                            "panoptic", name=split, skip_bad=skip_bad)
    elif cfg.format == "semantic":
        result = semantic.read_semantic(paths["images"], paths["masks"], classes=cfg.classes,
                                        num_classes=cfg.num_classes, ignore_label=cfg.ignore_label,
                                        reduce_zero_label=cfg.reduce_zero_label, name=split, skip_bad=skip_bad)
    elif cfg.format == "geotiff":
        from mask2former.data.geotiff import read_geotiff_split

        assert cfg.classes is not None
        windows = {k: v for k, v in (("tile", cfg.tile), ("tiles_per_raster", cfg.tiles_per_raster)) if v is not None}
        result = read_geotiff_split(paths["images"], paths["masks"], classes=cfg.classes,
                                    ignore_label=cfg.ignore_label, sampling="random" if split == "train" else "grid",
                                    name=split, **windows)
    elif cfg.format in ("nifti", "dicom"):
        from mask2former.data.volume_dataset import read_volume_split

        result = read_volume_split(paths["images"], paths["masks"], classes=cfg.classes, num_classes=cfg.num_classes,
                                   axis=cfg.axis, ignore_label=cfg.ignore_label, data_format=cfg.format, name=split,
                                   skip_bad=skip_bad)
    else:
        assert cfg.format == "folder" and cfg.classes is not None
        result = folder.read_folder(paths["images"], paths["masks"], classes=cfg.classes,
                                    ignore_label=cfg.ignore_label, mask_values=cfg.mask_values, name=split,
                                    skip_bad=skip_bad)
    result.pixels = pixel_config(cfg, pixels or PixelConfig(), need_stats=False)
    if not result.records and result.skipped:  # skip_bad must not turn a wrong path into an empty dataset
        first, reason = result.skipped[0]
        raise DatasetError(first, f"every record of split {split!r} failed its checks ({len(result.skipped)} "
                                 f"skipped); the first: {reason}")
    return result


def for_model(data_config: DataConfig, model: ModelConfig) -> DataConfig:
    """``data_config`` with the Cityscapes class set ``model`` needs, when DATA.yaml does not say
    (``classes``): the 8 thing classes for an 8-class model (the official instance models), one
    mask per class for a semantic-only model (the official semantic training reads labelIds),
    the 19 panoptic classes otherwise. Other formats are returned as they are."""
    if data_config.format != "cityscapes" or data_config.cityscapes_classes is not None:
        return data_config
    inference = model.inference
    if model.num_classes == len(cityscapes_categories("instance")):
        class_set = "instance"
    elif inference.semantic_on and not (inference.instance_on or inference.panoptic_on):
        class_set = "semantic"
    else:
        class_set = "panoptic"
    return replace(data_config, cityscapes_classes=class_set)


def ground_truth_sources(data_config: DataConfig, split: str) -> dict[str, str]:
    """Which files each task of ``split`` is scored against, for the reports (task -> text)."""
    paths, fmt = data_config.splits[split], data_config.format
    out = {"panoptic": f"panoptic PNGs in {paths.get('masks')}"}
    if fmt == "coco_panoptic":
        out["instance"] = (f"{paths['instances']} (its area, crowd flags and segmentations, by pycocotools)"
                           if "instances" in paths else "thing masks of the panoptic PNGs (area = their pixel count)")
        out["semantic"] = (f"label PNGs in {paths['semantic']}" if "semantic" in paths
                           else "label maps of the panoptic PNGs")
    elif fmt == "coco_instances":
        out = {"instance": f"{paths['annotations']} (its area, crowd flags and segmentations, by pycocotools)"}
    elif fmt == "lvis":
        out = {"instance": f"{paths['annotations']} (by the lvis package)"}
    elif fmt == "semantic":
        out = {"semantic": f"label PNGs in {paths['masks']}"}
    elif fmt == "cityscapes":
        out.update(instance=f"*_instanceIds.png in {paths['masks']} (cityscapesscripts)",
                   semantic=f"*_labelIds.png in {paths['masks']}",
                   panoptic=f"*_labelIds.png and *_instanceIds.png in {paths['masks']}")
    elif fmt == "geotiff":
        out = {"semantic": f"label raster(s) {paths['masks']}",
               "instance": f"connected components of thing classes in the label raster(s) {paths['masks']}",
               "panoptic": f"label raster(s) {paths['masks']}"}
    else:
        out = {"semantic": f"label PNGs in {paths['masks']}",
               "instance": f"connected components of the label PNGs in {paths['masks']}",
               "panoptic": f"label PNGs in {paths['masks']}"}
    return out


# --------------------------------------------------------------------------- mask2former stats


def dataset_stats(data: str | os.PathLike, split: str = "train", *, write: bool = True,
                  progress: bool = False) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """``mask2former stats``: the per-channel ``(mean, std, images)`` of ``split``'s images as
    training feeds them (after the file's intensity rule: raw values for ``dataset``), streamed one
    image at a time; with ``write`` they become the file's ``mean`` / ``std`` (written atomically,
    every other line of the file kept as it was)."""
    from mask2former.data.intensity import ChannelStats
    from mask2former.progress import track

    path = Path(data)
    dataset = build_split(load_data_config(path), split)
    stats = ChannelStats()
    images = range(len(dataset))
    for i in track(images, total=len(dataset), desc=f"stats {split}", unit="img") if progress else images:
        stats.add(dataset.training_image(i))
    if write:
        write_stats(path, stats.mean, stats.std)
    return stats.mean, stats.std, len(dataset)


def write_stats(path: str | os.PathLike, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Set the top-level ``mean`` / ``std`` of a DATA.yaml, keeping its other lines (comments
    included) as they are; the result is checked as a DATA.yaml before it replaces the file."""
    import yaml

    from mask2former.atomic_files import atomic_write
    from mask2former.safe_yaml import load_yaml

    path = Path(path)
    load_yaml_file(path)  # the bounded, checked read first: compose below trusts the document
    text = path.read_bytes().decode("utf-8-sig")
    values = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:  # no lines to keep: write the mapping anew
        text = yaml.safe_dump({**load_yaml(text, origin=str(path)), **values}, sort_keys=False)
    else:
        lines = text.splitlines(keepends=True)
        for key, value in reversed(root.value):
            if isinstance(key, yaml.ScalarNode) and key.value in values:
                last = value.end_mark.line - (1 if value.end_mark.column == 0 else 0)
                del lines[key.start_mark.line:last + 1]
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += [f"{k}: {yaml.safe_dump(v, default_flow_style=True).strip()}\n" for k, v in values.items()]
        text = "".join(lines)
    data_config_from_dict(load_yaml(text, origin=str(path)), base_dir=path.parent, source=path)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
