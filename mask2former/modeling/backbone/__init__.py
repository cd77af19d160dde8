"""Backbones: each maps ``[B, in_channels, H, W]`` (3 for RGB) to ``{"res2": .., "res5": ..}`` and reports
``out_channels`` and ``strides`` per level (4, 8, 16, 32 for these two); ``build.py`` hands both to
the pixel decoder, which assumes no stride of its own."""

from typing import Protocol

import torch

from mask2former.modeling.backbone.resnet import ResNetBackbone
from mask2former.modeling.backbone.swin import SwinBackbone

__all__ = ["Backbone", "ResNetBackbone", "SwinBackbone"]


class Backbone(Protocol):
    """What the rest of the model needs of a backbone: its levels, their channels and strides."""

    out_channels: dict[str, int]
    strides: dict[str, int]
    in_channels: int
    stem_weight: str  # the name of the stem's convolution weight ``[out, in_channels, k, k]``

    def __call__(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]: ...
