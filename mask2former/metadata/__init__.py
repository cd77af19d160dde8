"""The class lists of the datasets the model zoo was trained on (COCO, ADE20K, Cityscapes,
Mapillary Vistas), bundled as JSON: names, dataset ids, thing flags and colours, read by the
presets, the Cityscapes reader and the checkpoint loaders alike."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from mask2former.config import CategoryInfo

DATASETS = ("coco_panoptic", "coco_instance", "ade20k_semantic", "ade20k_instance", "cityscapes",
            "cityscapes_instance", "mapillary_vistas")


@cache
def _metadata(name: str) -> dict:
    path = resources.files("mask2former.metadata") / f"{name}.json"
    return json.loads(path.read_text())


def load_categories(name: str) -> list[CategoryInfo]:
    """Categories (contiguous order) of a bundled dataset description, e.g. ``"coco_panoptic"``."""
    return [
        CategoryInfo(id=int(c["id"]), name=c["name"], isthing=bool(c["isthing"]), color=tuple(c["color"]))
        for c in _metadata(name)["categories"]
    ]
