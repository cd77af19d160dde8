"""DATA.yaml: the file that describes a dataset, and ``build_split`` that reads the split it names.

Validation is strict because a key silently ignored (a typo in ``annotations``, an option the
format does not use) would train on the wrong data without a word; every error names the YAML
file, the key and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mask2former.config import CategoryInfo
from mask2former.data.datasets import DatasetError, DatasetSplit, default_color, did_you_mean

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
