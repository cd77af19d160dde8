"""What ``POST /v1/predict`` answers, in the formats ``predict`` writes to files: COCO results
entries with RLE masks (instance), COCO panoptic ``segments_info`` with the RGB-encoded segment
PNG (panoptic), the label PNG of contiguous class ids (semantic), or the overlay picture."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from mask2former.config import ModelConfig
from mask2former.formats import id_to_rgb
from mask2former.inference.records import class_colors, dataset_ids, instance_records, panoptic_segments
from mask2former.inference.visualize import overlay
from mask2former.inference.writers import semantic_png
from mask2former.structures import ImageResult

ANSWER_FORMATS = ("json", "png", "overlay")


@dataclass
class Labels:
    """The model's classes as answers name them (read once per service)."""

    names: list[str]
    category_ids: list[int]
    colors: np.ndarray
    thing_flags: list[bool] = field(default_factory=list)

    @classmethod
    def of(cls, config: ModelConfig) -> Labels:
        return cls(list(config.class_names), dataset_ids(config), class_colors(config), list(config.thing_flags))

    def records(self) -> list[dict]:
        return [{"index": i, "id": self.category_ids[i], "name": name, "isthing": self.thing_flags[i],
                 "color": [int(c) for c in self.colors[i]]} for i, name in enumerate(self.names)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def result_png(result: ImageResult, task: str) -> bytes:
    """The task's map as a PNG: panoptic segment ids RGB-encoded (COCO panoptic), semantic class
    indices (8-bit, 16-bit past 255 classes)."""
    if task == "panoptic":
        assert result.panoptic is not None
        return png_bytes(Image.fromarray(id_to_rgb(result.panoptic.segments.cpu().numpy())))
    if task == "semantic":
        assert result.semantic is not None
        return png_bytes(semantic_png(result.semantic.labels.cpu().numpy()))
    raise ValueError("instance results have no single PNG; ask for json (RLE masks) or overlay")


def overlay_png(image: np.ndarray, result: ImageResult, task: str, labels: Labels, config: ModelConfig,
                score_threshold: float) -> bytes:
    return png_bytes(overlay(image, result, task, labels.names, labels.colors, score_threshold=score_threshold,
                             pixels=config.pixels))


def result_json(result: ImageResult, task: str, labels: Labels) -> dict:
    """The task's records, each carrying its class name beside the dataset's category id."""
    answer: dict = {"task": task, "height": result.height, "width": result.width}
    if task == "instance":
        entries = instance_records(result, labels.category_ids, 0)
        assert result.instance is not None
        for entry, label in zip(entries, result.instance.labels.tolist()):
            del entry["image_id"]
            entry["category_name"] = labels.names[label]
        answer["instances"] = entries
    elif task == "panoptic":
        assert result.panoptic is not None
        ids = result.panoptic.segments.cpu().numpy()
        segments = panoptic_segments(result, ids, labels.category_ids)
        for entry, segment in zip(segments, result.panoptic.segments_info):
            entry["category_name"] = labels.names[segment.label]
        answer["segments_info"] = segments
        answer["png"] = base64.b64encode(result_png(result, task)).decode("ascii")
    else:
        assert result.semantic is not None
        classes, areas = np.unique(result.semantic.labels.cpu().numpy(), return_counts=True)
        answer["classes"] = [{"index": int(c), "category_id": labels.category_ids[int(c)],
                              "category_name": labels.names[int(c)], "area": int(a)} for c, a in zip(classes, areas)]
        answer["png"] = base64.b64encode(result_png(result, task)).decode("ascii")
    return answer
