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
from typing import Any

from mask2former.data.coco import instance_split
from mask2former.data.datasets import DatasetSplit, FileIndex, Problems, Record, read_json
from mask2former.errors import brief

EVAL_KEYS = ("neg_category_ids", "not_exhaustive_category_ids")


def _resolver(folder: Path, files: FileIndex) -> Callable[[dict], Path | str]:
    def resolve(entry: dict) -> Path | str:
        candidates: list[Path] = []
        url = entry.get("coco_url")
        parts = url.rstrip("/").split("/")[-2:] if isinstance(url, str) else []
        if len(parts) == 2 and all(parts):  # ".../train2017/000000000001.jpg"
            candidates += [folder / parts[1], folder / parts[0] / parts[1]]
        name = entry.get("file_name")
        if isinstance(name, str) and name:
            candidates += [folder / name, folder / Path(name).name]
        if not candidates:
            return "missing 'coco_url' and 'file_name'"
        for path in dict.fromkeys(candidates):
            if files.exists(path):
                return path
        return f"image file not found (tried {', '.join(str(p) for p in candidates)})"
    return resolve


def _eval_ids(entry: dict) -> dict[str, Any]:
    """The evaluation id lists as given (checked by ``_eval_ids_problem``); absent = empty."""
    return {key: list(entry[key]) if isinstance(entry.get(key), list) else entry.get(key) or []
            for key in EVAL_KEYS}


def _eval_ids_problem(record: Record, known: set[int]) -> str | None:
    for key in EVAL_KEYS:
        ids = record.extra[key]
        if not isinstance(ids, list) or any(type(i) is not int for i in ids):
            return f"image {brief(record.image_id)}: {key} must be a list of category ids, got {brief(ids)}"
        unknown = [i for i in ids if i not in known]
        if unknown:  # evaluation would fail much later on these; say so now
            return f"image {brief(record.image_id)}: {key} holds unknown category ids {unknown[:10]}"
    return None


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
        problem = _eval_ids_problem(record, known)
        if problem is not None:
            problems.report(path, problem)
        else:
            kept.append(record)
    split.records = kept
    split.skipped.extend(problems.skipped)
    split.annotation_file = path
    return split
