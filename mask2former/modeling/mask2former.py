"""Mask2Former: backbone -> pixel decoder -> masked-attention decoder -> set predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mask2former.modeling.pixel_decoder import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MaskedAttentionDecoder
from mask2former.structures import Mask2FormerOutput, Prediction

if TYPE_CHECKING:  # the type only: modules never read a config object
    from mask2former.config import ModelConfig


class Mask2Former(nn.Module):
    """The network only: inputs are normalised and padded by the caller (see ``Predictor``).

    ``config`` is not used by ``forward``; ``build_model`` attaches the ``ModelConfig`` so that a
    loaded model carries its own inference settings and class metadata.
    """

    def __init__(self, *, backbone: nn.Module, pixel_decoder: MSDeformAttnPixelDecoder,
                 transformer_decoder: MaskedAttentionDecoder, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.transformer_decoder = transformer_decoder
        self.config = config

    def forward_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone + pixel decoder: (mask_features ``[B, C, H/4, W/4]``, ``[1/32, 1/16, 1/8]`` maps)."""
        return self.pixel_decoder(self.backbone(pixel_values))

    def forward_decoder(self, mask_features: torch.Tensor, multi_scale: list[torch.Tensor]) -> Mask2FormerOutput:
        predictions = self.transformer_decoder(multi_scale, mask_features)
        *aux, (class_logits, mask_logits) = predictions
        return Mask2FormerOutput(class_logits=class_logits, mask_logits=mask_logits,
                                 aux=[Prediction(c, m) for c, m in aux])

    def forward(self, pixel_values: torch.Tensor) -> Mask2FormerOutput:
        """pixel_values ``[B, C, H, W]``, normalised (C: the stem's channels, 3 for RGB). Returns
        logits at ``H/4 x W/4``."""
        channels = getattr(self.backbone, "in_channels", 3)
        if pixel_values.ndim != 4 or pixel_values.shape[1] != channels:
            raise ValueError(f"pixel_values must be [B, {channels}, H, W], got {tuple(pixel_values.shape)}")
        mask_features, multi_scale = self.forward_features(pixel_values)
        return self.forward_decoder(mask_features, multi_scale)
