"""Backbones: each maps ``[B, 3, H, W]`` to ``{"res2": .., "res5": ..}`` at strides 4, 8, 16, 32
and reports ``out_channels`` per level."""

from mask2former.modeling.backbone.resnet import ResNetBackbone
from mask2former.modeling.backbone.swin import SwinBackbone

__all__ = ["ResNetBackbone", "SwinBackbone"]
