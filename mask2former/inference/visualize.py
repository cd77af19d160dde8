"""Overlay images for people: segments blended over the photo, outlined and labelled.

The photo is what ``read_image`` decoded: 8-bit RGB as it is; a 16-bit or float image through the
model's intensity rule, and an N-channel one as the three channels ``pixels.display_channels``
choose (``data.intensity.display_image``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mask2former.config import PixelConfig
from mask2former.data.intensity import display_image
from mask2former.structures import ImageResult


def palette(num_classes: int, colors: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """``[K, 3]`` uint8 class colours: the dataset's own where given, else a fixed spread of hues."""
    if colors is not None and len(colors) == num_classes and any(any(c) for c in colors):
        return np.asarray(colors, dtype=np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(40, 256, size=(num_classes, 3), dtype=np.uint8)


def _jitter(color: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(color.astype(np.int32) + rng.integers(-50, 51, size=3), 0, 255).astype(np.uint8)


def _outline(ids: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour belongs to another segment."""
    edge = np.zeros(ids.shape, dtype=bool)
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    return edge


def _label_point(mask: np.ndarray) -> tuple[int, int] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    i = np.argsort(ys)[ys.size // 2]  # a pixel of the mask near its vertical middle
    return int(xs[i]), int(ys[i])


def _draw(image: np.ndarray, ids: np.ndarray, colors: dict[int, np.ndarray], labels: dict[int, str],
          alpha: float) -> Image.Image:
    out = image.astype(np.float32)
    colour_map = np.zeros_like(out)
    painted = ids > 0
    for seg_id, color in colors.items():
        colour_map[ids == seg_id] = color
    out[painted] = out[painted] * (1 - alpha) + colour_map[painted] * alpha
    out[_outline(ids) & (painted | np.roll(painted, -1, 1) | np.roll(painted, -1, 0))] = 255
    pil = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for seg_id, text in labels.items():
        point = _label_point(ids == seg_id)
        if point is not None:  # centred on the point, moved inside the image rather than cut at its edge
            left, top, right, bottom = draw.textbbox((0, 0), text)
            tw, th = right - left, bottom - top
            x = min(max(point[0] - tw // 2, 0), max(pil.width - tw, 0)) - left
            y = min(max(point[1] - th // 2, 0), max(pil.height - th, 0)) - top
            draw.rectangle(draw.textbbox((x, y), text), fill=(0, 0, 0))
            draw.text((x, y), text, fill=(255, 255, 255))
    return pil


def overlay(image: np.ndarray, result: ImageResult, task: str, class_names: Sequence[str],
            class_colors: np.ndarray, *, score_threshold: float = 0.5, alpha: float = 0.55,
            pixels: PixelConfig | None = None, tracks: Sequence[int] | None = None) -> Image.Image:
    """The image ``[H, W]`` or ``[H, W, C]`` (any dtype, as ``read_image`` gives it) with one task's
    result drawn over it; ``pixels`` (the model's) say how to show it (default: the default rule)."""
    image = display_image(image, pixels)
    if task == "panoptic":
        assert result.panoptic is not None
        ids = result.panoptic.segments.cpu().numpy()
        colors = {s.id: (_jitter(class_colors[s.label], s.id) if s.isthing else class_colors[s.label])
                  for s in result.panoptic.segments_info}
        labels = {s.id: class_names[s.label] for s in result.panoptic.segments_info}
        return _draw(image, ids, colors, labels, alpha)
    if task == "semantic":
        assert result.semantic is not None
        ids = result.semantic.labels.cpu().numpy().astype(np.int64) + 1
        present = [int(c) for c in np.unique(ids)]
        return _draw(image, ids, {c: class_colors[c - 1] for c in present},
                     {c: class_names[c - 1] for c in present}, alpha)
    assert result.instance is not None
    inst = result.instance
    ids = np.zeros(image.shape[:2], dtype=np.int64)
    colors, labels = {}, {}
    keep = (inst.scores >= score_threshold).nonzero().flatten().tolist()
    for rank in reversed(keep):  # highest score painted last, on top
        ids[inst.masks[rank].cpu().numpy()] = rank + 1
        label = int(inst.labels[rank])
        # in a video an instance keeps its track's shade and number from frame to frame
        colors[rank + 1] = _jitter(class_colors[label], rank if tracks is None else int(tracks[rank]))
        labels[rank + 1] = (f"{class_names[label]} {float(inst.scores[rank]):.2f}" if tracks is None
                            else f"#{int(tracks[rank])} {class_names[label]} {float(inst.scores[rank]):.2f}")
    pil = _draw(image, ids, colors, labels, alpha)
    draw = ImageDraw.Draw(pil)
    for rank in keep:
        x0, y0, x1, y1 = inst.boxes[rank].tolist()
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=tuple(int(v) for v in colors[rank + 1]), width=2)
    return pil
