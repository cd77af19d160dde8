"""Results in the community's formats: COCO panoptic PNG + JSON, COCO results JSON with RLE
masks, semantic label PNGs (contiguous train ids), and overlay PNGs for people.

Layout under the output folder::

    panoptic/<stem>.png  panoptic.json   instances.json   semantic/<stem>.png   overlays/<stem>_<task>.png
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mask2former.config import ModelConfig
from mask2former.inference.visualize import overlay, palette
from mask2former.structures import ImageResult


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG encoding: id = R + 256 G + 256^2 B."""
    ids = ids.astype(np.uint32)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a binary ``[H, W]`` mask, with ``counts`` as a string (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def bbox_xywh(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def image_id_for(stem: str) -> int | str:
    """COCO-style numeric ids for numeric file names (``000000000139`` -> 139), else the stem."""
    return int(stem) if stem.isdigit() else stem


def save_semantic_png(labels: np.ndarray, path: str | os.PathLike) -> None:
    """uint8 PNG of contiguous class ids (16-bit when there are more than 255 classes)."""
    if labels.max(initial=0) > 255:
        Image.fromarray(labels.astype(np.uint16)).save(path)
    else:
        Image.fromarray(labels.astype(np.uint8)).save(path)


class ResultWriter:
    """Accumulates per-image results and writes files as they come; JSON files on ``close``."""

    def __init__(self, output_dir: str | os.PathLike, config: ModelConfig, tasks: tuple[str, ...],
                 *, overlays: bool = True, score_threshold: float = 0.5) -> None:
        self.out = Path(output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.tasks = tasks
        self.overlays = overlays
        self.score_threshold = score_threshold
        self.names = config.class_names
        cats = config.categories
        self.dataset_ids = [c.id for c in cats] if cats else list(range(config.num_classes))
        self.colors = palette(config.num_classes, [c.color for c in cats] if cats else None)
        self.panoptic_annotations: list[dict] = []
        self.instances: list[dict] = []
        self.images: list[dict] = []
        for task, folder in (("panoptic", "panoptic"), ("semantic", "semantic")):
            if task in tasks:
                (self.out / folder).mkdir(exist_ok=True)
        if overlays:
            (self.out / "overlays").mkdir(exist_ok=True)

    def add(self, result: ImageResult, stem: str, image: np.ndarray | None = None, image_id: int | str | None = None
            ) -> None:
        image_id = image_id if image_id is not None else image_id_for(stem)
        self.images.append({"id": image_id, "file_name": result.file_name or stem,
                            "height": result.height, "width": result.width})
        if result.panoptic is not None:
            self._add_panoptic(result, stem, image_id)
        if result.instance is not None:
            self._add_instances(result, image_id)
        if result.semantic is not None:
            save_semantic_png(result.semantic.labels.cpu().numpy(), self.out / "semantic" / f"{stem}.png")
        if self.overlays and image is not None:
            for task in self.tasks:
                overlay(image, result, task, self.names, self.colors,
                        score_threshold=self.score_threshold).save(self.out / "overlays" / f"{stem}_{task}.png")

    def _add_panoptic(self, result: ImageResult, stem: str, image_id: int | str) -> None:
        assert result.panoptic is not None
        ids = result.panoptic.segments.cpu().numpy()
        Image.fromarray(id_to_rgb(ids)).save(self.out / "panoptic" / f"{stem}.png")
        segments = []
        for s in result.panoptic.segments_info:
            segments.append({"id": s.id, "category_id": self.dataset_ids[s.label], "iscrowd": 0,
                             "area": s.area, "bbox": bbox_xywh(ids == s.id), "isthing": s.isthing,
                             "score": round(s.score, 6)})
        self.panoptic_annotations.append({"image_id": image_id, "file_name": f"{stem}.png",
                                          "segments_info": segments})

    def _add_instances(self, result: ImageResult, image_id: int | str) -> None:
        inst = result.instance
        assert inst is not None
        masks = inst.masks.cpu().numpy()
        for i in range(masks.shape[0]):
            x0, y0, x1, y1 = inst.boxes[i].tolist()
            self.instances.append({
                "image_id": image_id,
                "category_id": self.dataset_ids[int(inst.labels[i])],
                "segmentation": encode_rle(masks[i]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": round(float(inst.scores[i]), 6),
            })

    def categories(self) -> list[dict]:
        flags = self.config.thing_flags
        return [{"id": self.dataset_ids[i], "name": self.names[i], "isthing": int(flags[i]),
                 "color": [int(c) for c in self.colors[i]]} for i in range(self.config.num_classes)]

    def close(self) -> None:
        if "panoptic" in self.tasks:
            data = {"images": self.images, "annotations": self.panoptic_annotations, "categories": self.categories()}
            (self.out / "panoptic.json").write_text(json.dumps(data))
        if "instance" in self.tasks:
            (self.out / "instances.json").write_text(json.dumps(self.instances))
