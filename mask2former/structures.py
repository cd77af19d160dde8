"""Typed containers passed between the model, the losses, post-processing and writers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mask2former.formats import IGNORE_LABEL


@dataclass
class Prediction:
    """One set prediction: ``class_logits [B, Q, K+1]`` (no-object last) and
    ``mask_logits [B, Q, H/4, W/4]``."""

    class_logits: torch.Tensor
    mask_logits: torch.Tensor


@dataclass
class Mask2FormerOutput(Prediction):
    """The final prediction plus ``aux``: the nine earlier ones (from the learnable queries and
    decoder layers 1..8), in order. The same type in train and eval mode."""

    aux: list[Prediction] = field(default_factory=list)


@dataclass
class Target:
    """Ground truth of one image, the one structure every dataset reader produces.

    ``masks [N, H, W]`` bool, one per segment (a panoptic segment, an instance, or for label maps
    one per class present); ``labels [N]`` int64 contiguous class ids; ``is_thing [N]`` bool;
    ``iscrowd [N]`` bool marks crowd regions (kept for evaluation, not trained on);
    ``ignore [H, W]`` bool marks void pixels (no label, e.g. 255 in label maps).
    Sizes are those of the image the target belongs to (after any transform).
    """

    masks: torch.Tensor
    labels: torch.Tensor
    is_thing: torch.Tensor
    iscrowd: torch.Tensor
    ignore: torch.Tensor

    @staticmethod
    def empty(height: int, width: int) -> Target:
        return Target(masks=torch.zeros((0, height, width), dtype=torch.bool),
                      labels=torch.zeros(0, dtype=torch.long), is_thing=torch.zeros(0, dtype=torch.bool),
                      iscrowd=torch.zeros(0, dtype=torch.bool), ignore=torch.zeros((height, width), dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, keep: torch.Tensor) -> Target:
        """The segments where ``keep [N]`` is True (same image, same ignore map)."""
        return Target(self.masks[keep], self.labels[keep], self.is_thing[keep], self.iscrowd[keep], self.ignore)

    def semantic_map(self, ignore_value: int = IGNORE_LABEL) -> torch.Tensor:
        """``[H, W]`` int64 label map: each pixel's class (crowd regions included, their class is
        known), ``ignore_value`` where void."""
        h, w = self.ignore.shape
        out = torch.full((h, w), ignore_value, dtype=torch.long)
        for mask, label in zip(self.masks, self.labels):
            out[mask] = label
        out[self.ignore] = ignore_value
        return out


@dataclass
class SemanticResult:
    """``scores [K, H, W]`` (float32, per-class mask-weighted probabilities) and
    ``labels [H, W]`` (int64 contiguous class ids, the argmax) at the original image size."""

    scores: torch.Tensor
    labels: torch.Tensor


@dataclass
class InstanceResult:
    """Up to ``topk`` instances at the original size: ``masks [N, H, W]`` bool, ``scores [N]``,
    ``labels [N]`` (contiguous ids), ``boxes [N, 4]`` XYXY from the masks, and ``queries [N]``, the
    object query each came from (video tracking follows queries), when known."""

    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    queries: torch.Tensor | None = None


@dataclass
class Segment:
    """One panoptic segment: ``id`` is its value in the segment map (0 is void)."""

    id: int
    label: int
    isthing: bool
    score: float
    area: int


@dataclass
class PanopticResult:
    """``segments [H, W]`` int32 map of segment ids (0 = void) and the segments' info."""

    segments: torch.Tensor
    segments_info: list[Segment]


@dataclass
class ImageResult:
    """Everything predicted for one image; tasks that were not asked for stay ``None``."""

    height: int
    width: int
    semantic: SemanticResult | None = None
    instance: InstanceResult | None = None
    panoptic: PanopticResult | None = None
    file_name: str = ""

    def semantic_map(self) -> np.ndarray:
        assert self.semantic is not None
        return self.semantic.labels.cpu().numpy()
