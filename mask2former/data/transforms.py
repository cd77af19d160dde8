"""Image (and, for training, joint image + target) transforms."""

from __future__ import annotations

import numpy as np
from PIL import Image


def shortest_edge_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Size after scaling the short side to ``min_size`` unless the long side would pass
    ``max_size`` (detectron2's ResizeShortestEdge, rounding half up)."""
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``[H, W, 3]`` uint8 image to ``size=(h, w)`` with Pillow (as the
    reference does for uint8 images)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
