"""LVIS v1 annotations -> Targets (decoded like COCO instances).

LVIS image entries name their file through ``coco_url`` (v1) or ``file_name`` (v0.5); the image
may sit in ``images/`` directly or in its COCO split folder below it (``images/train2017/...``,
detectron2's layout), so both are tried. Each record keeps ``neg_category_ids`` and
``not_exhaustive_category_ids`` (category ids as in the file) in ``extra`` for evaluation, which
must not count detections of not-exhaustively-annotated classes as false positives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mask2former.data.coco import instance_split
from mask2former.data.datasets import DatasetSplit, FileIndex, Problems, read_json

EVAL_KEYS = ("neg_category_ids", "not_exhaustive_category_ids")


def _resolver(folder: Path, files: FileIndex) -> Callable[[dict], Path | str]:
    def resolve(entry: dict) -> Path | str:
        candidates: list[Path] = []
        url = entry.get("coco_url")
        if isinstance(url, str) and "/" in url:
            split_folder, base = url.rstrip("/").split("/")[-2:]
            candidates += [folder / base, folder / split_folder / base]
        if isinstance(entry.get("file_name"), str):
            candidates += [folder / entry["file_name"], folder / Path(entry["file_name"]).name]
        if not candidates:
            return "missing 'coco_url' and 'file_name'"
        for path in dict.fromkeys(candidates):
            if files.exists(path):
                return path
        return f"image file not found (tried {', '.join(str(p) for p in candidates)})"
    return resolve


def _eval_ids(entry: dict) -> dict[str, list[int]]:
    return {key: list(entry.get(key) or []) for key in EVAL_KEYS}


def read_lvis(annotations: str | Path, images: str | Path, *, name: str = "", skip_bad: bool = False) -> DatasetSplit:
    """LVIS JSON + COCO image folder (the folder holding the images, or the COCO root above
    ``train2017/`` and ``val2017/``)."""
    path = Path(annotations)
    data = read_json(path)
    split = instance_split(data, path, _resolver(Path(images), FileIndex()), format="lvis", name=name,
                           skip_bad=skip_bad, extra=_eval_ids)
    known = {c.id for c in split.categories}
    problems, kept = Problems(skip_bad), []
    for record in split.records:
        unknown = {key: [i for i in record.extra[key] if i not in known] for key in EVAL_KEYS}
        bad = {key: ids for key, ids in unknown.items() if ids}
        if bad:  # evaluation would fail much later on these; say so now
            key, ids = next(iter(bad.items()))
            problems.report(path, f"image {record.image_id}: {key} holds unknown category ids {ids[:10]}")
        else:
            kept.append(record)
    split.records = kept
    split.skipped.extend(problems.skipped)
    return split
