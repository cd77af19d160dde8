"""Backbones: each maps ``[B, 3, H, W]`` to ``{"res2": .., "res5": ..}`` and reports
``out_channels`` and ``strides`` per level (4, 8, 16, 32 for these two); ``build.py`` hands both to
the pixel decoder, which assumes no stride of its own."""

from mask2former.modeling.backbone.resnet import ResNetBackbone
from mask2former.modeling.backbone.swin import SwinBackbone

__all__ = ["ResNetBackbone", "SwinBackbone"]
