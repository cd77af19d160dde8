"""Overlays: segments painted in their class colour, labels kept whole inside the image."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from mask2former.inference.visualize import overlay, palette
from mask2former.structures import ImageResult, PanopticResult, Segment


def _panoptic(segments: np.ndarray, infos: list[Segment]) -> ImageResult:
    h, w = segments.shape
    return ImageResult(h, w, panoptic=PanopticResult(torch.from_numpy(segments), infos))


def test_label_at_the_right_edge_is_drawn_whole():
    """A segment in the last columns: its label box is moved left, not cut at the border."""
    image = np.full((40, 90, 3), 128, dtype=np.uint8)
    segments = np.zeros((40, 90), dtype=np.int32)
    segments[:, 87:] = 1
    name = "a long class name"
    out = np.asarray(overlay(image, _panoptic(segments, [Segment(1, 0, False, 1.0, 120)]), "panoptic", [name],
                             palette(1)))
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), name)
    black_columns = np.nonzero((out == 0).all(-1).any(0))[0]
    assert black_columns.size and black_columns.max() <= 89
    assert black_columns.max() - black_columns.min() + 1 >= right - left  # the whole box fits


def test_segments_take_their_class_colour_and_void_stays_as_is():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    segments = np.zeros((32, 32), dtype=np.int32)
    segments[:, 16:] = 1
    colours = np.array([[200, 0, 0], [0, 200, 0]], dtype=np.uint8)
    out = np.asarray(overlay(image, _panoptic(segments, [Segment(1, 1, False, 1.0, 512)]), "panoptic",
                             ["a", "b"], colours, alpha=1.0))
    assert (out[2, 2] == 0).all()  # void: the photo
    assert tuple(out[2, 28]) == (0, 200, 0)  # stuff segment of class 1, away from its label and outline
