"""The community formats every layer reads and writes, stated once.

Readers (``data/``), metrics (``evaluation/``), writers (``inference/``) and the baselines all meet
these conventions; a second copy of any of them in one layer would be free to drift from the rest.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np

TASKS = ("semantic", "instance", "panoptic")  # what one model predicts; every command names them so
PRECISIONS = ("fp32", "bf16", "int8")  # what a model runs at (mask2former.precision)
PRECISION_CHOICES = ("auto", *PRECISIONS)
IGNORE_LABEL = 255  # void in semantic label maps, read and written (ADE20K, Cityscapes trainIds, detectron2)
EXPORT_FORMATS = ("onnx", "openvino", "torch-export")  # what `mask2former export` writes and --checkpoint runs
PANOPTIC_VOID_ID = 0  # segment id 0 in a COCO panoptic PNG: no segment, not scored


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """``[H, W]`` int64 segment ids of an ``[H, W, 3]`` COCO panoptic PNG: id = R + 256 G + 256² B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 COCO panoptic PNG pixels of ``[H, W]`` segment ids (the inverse of ``rgb_to_id``)."""
    ids = ids.astype(np.uint32)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a binary ``[H, W]`` mask, with ``counts`` as a string (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def bbox_xywh(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, width, height]`` of a binary ``[H, W]`` mask (zeros for an empty mask)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def did_you_mean(key: Any, options: Iterable[str], *, n: int = 1, fallback: str | None = None) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` (a prefix counts: "val" finds
    "validation"); else ``fallback`` or ``"; expected one of: ..."`` listing up to 20 of them. A key
    that is not a short string (a list, a 10 MB string from a hostile file) is not matched."""
    options = [str(o) for o in options]
    if isinstance(key, str) and len(key) <= 100:
        prefixed = [o for o in options if key and (o.startswith(key) or key.startswith(o))]
        close = prefixed[:n] or difflib.get_close_matches(key, options, n=n)
        if close:
            return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    if fallback is not None:
        return fallback
    shown = options[:20]
    return f"; expected one of: {', '.join(shown)}{' ...' if len(options) > len(shown) else ''}"
