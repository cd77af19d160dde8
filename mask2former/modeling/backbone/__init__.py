"""Backbones: each maps ``[B, 3, H, W]`` to ``{"res2": .., "res5": ..}`` and reports
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

    def __call__(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]: ...
