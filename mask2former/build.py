"""The one place where a config becomes modules: the model and its training loss."""

from __future__ import annotations

from mask2former.config import ModelConfig
from mask2former.losses import HungarianMatcher, SetCriterion
from mask2former.modeling import Mask2Former, MaskedAttentionDecoder, MSDeformAttnPixelDecoder
from mask2former.modeling.backbone import Backbone, ResNetBackbone, SwinBackbone


def build_backbone(config: ModelConfig) -> ResNetBackbone | SwinBackbone:
    """The backbone of ``config``, its stem taking ``config.pixels.channels``; it reports
    ``out_channels`` and ``strides`` of res2..res5."""
    b = config.backbone
    channels = config.pixels.channels
    if b.name == "resnet":
        return ResNetBackbone(depth=b.depth, norm=b.norm, in_channels=channels)
    return SwinBackbone(embed_dim=b.embed_dim, depths=tuple(b.depths), num_heads=tuple(b.num_heads),
                        window_size=b.window_size, mlp_ratio=b.mlp_ratio, drop_path_rate=b.drop_path_rate,
                        in_channels=channels)


def build_pixel_decoder(config: ModelConfig, backbone: Backbone) -> MSDeformAttnPixelDecoder:
    """The pixel decoder of ``config`` over ``backbone``'s levels: their channels and strides come
    from the backbone itself, so another backbone needs no change in the decoder."""
    p = config.pixel_decoder
    return MSDeformAttnPixelDecoder(
        in_channels=dict(backbone.out_channels), in_strides=dict(backbone.strides), conv_dim=p.conv_dim,
        mask_dim=p.mask_dim, num_encoder_layers=p.num_encoder_layers, encoder_ffn_dim=p.encoder_ffn_dim,
        num_heads=p.num_heads, num_points=p.num_points, dropout=p.dropout, common_stride=p.common_stride,
    )


def build_transformer_decoder(config: ModelConfig, pixel_decoder: MSDeformAttnPixelDecoder) -> MaskedAttentionDecoder:
    """The masked-attention decoder of ``config``, reading ``pixel_decoder``'s maps."""
    d = config.decoder
    return MaskedAttentionDecoder(
        in_channels=pixel_decoder.conv_dim, num_classes=config.num_classes, hidden_dim=d.hidden_dim,
        num_queries=d.num_queries, num_heads=d.num_heads, ffn_dim=d.ffn_dim, num_layers=d.num_layers,
        pre_norm=d.pre_norm, dropout=d.dropout, mask_dim=config.pixel_decoder.mask_dim,
        enforce_input_proj=d.enforce_input_proj, num_feature_levels=pixel_decoder.num_levels,
    )


def build_model(config: ModelConfig) -> Mask2Former:
    """A randomly initialised Mask2Former for ``config`` (which it keeps as ``model.config``)."""
    config.validate()
    backbone = build_backbone(config)
    pixel_decoder = build_pixel_decoder(config, backbone)
    decoder = build_transformer_decoder(config, pixel_decoder)
    return Mask2Former(backbone=backbone, pixel_decoder=pixel_decoder, transformer_decoder=decoder, config=config)


def build_criterion(config: ModelConfig) -> SetCriterion:
    """The training loss of ``config`` (matching costs = loss weights, as the reference)."""
    loss = config.loss
    matcher = HungarianMatcher(class_weight=loss.class_weight, mask_weight=loss.mask_weight,
                               dice_weight=loss.dice_weight, num_points=loss.num_points)
    return SetCriterion(num_classes=config.num_classes, matcher=matcher, class_weight=loss.class_weight,
                        mask_weight=loss.mask_weight, dice_weight=loss.dice_weight,
                        no_object_weight=loss.no_object_weight, num_points=loss.num_points,
                        oversample_ratio=loss.oversample_ratio, importance_sample_ratio=loss.importance_sample_ratio,
                        deep_supervision=loss.deep_supervision)
