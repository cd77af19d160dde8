"""The one place where a config becomes modules."""

from __future__ import annotations

from torch import nn

from mask2former.config import ModelConfig
from mask2former.modeling import Mask2Former, MaskedAttentionDecoder, MSDeformAttnPixelDecoder
from mask2former.modeling.backbone import ResNetBackbone, SwinBackbone


def build_backbone(config: ModelConfig) -> nn.Module:
    b = config.backbone
    if b.name == "resnet":
        return ResNetBackbone(depth=b.depth, norm=b.norm)
    return SwinBackbone(embed_dim=b.embed_dim, depths=tuple(b.depths), num_heads=tuple(b.num_heads),
                        window_size=b.window_size, mlp_ratio=b.mlp_ratio, drop_path_rate=b.drop_path_rate)


def build_model(config: ModelConfig) -> Mask2Former:
    """A randomly initialised Mask2Former for ``config`` (which it keeps as ``model.config``)."""
    config.validate()
    backbone = build_backbone(config)
    p, d = config.pixel_decoder, config.decoder
    pixel_decoder = MSDeformAttnPixelDecoder(
        in_channels=dict(backbone.out_channels), conv_dim=p.conv_dim, mask_dim=p.mask_dim,
        num_encoder_layers=p.num_encoder_layers, encoder_ffn_dim=p.encoder_ffn_dim, num_heads=p.num_heads,
        num_points=p.num_points, dropout=p.dropout, common_stride=p.common_stride,
    )
    decoder = MaskedAttentionDecoder(
        in_channels=p.conv_dim, num_classes=config.num_classes, hidden_dim=d.hidden_dim,
        num_queries=d.num_queries, num_heads=d.num_heads, ffn_dim=d.ffn_dim, num_layers=d.num_layers,
        pre_norm=d.pre_norm, dropout=d.dropout, mask_dim=p.mask_dim, enforce_input_proj=d.enforce_input_proj,
    )
    return Mask2Former(backbone=backbone, pixel_decoder=pixel_decoder, transformer_decoder=decoder, config=config)
