"""build.py: every config field reaches its module, the backbone's strides and channels reach the
pixel decoder, and the training loss is built here too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mask2former import build_model, get_preset
from mask2former.build import build_criterion, build_pixel_decoder, build_transformer_decoder
from mask2former.config import LossConfig, ModelConfig, from_dict, to_dict
from mask2former.modeling import Mask2Former


class StrideStub(nn.Module):
    """A stand-in backbone: average-pools the image to each declared stride, then a 1x1 conv."""

    def __init__(self, *, strides: dict[str, int], out_channels: dict[str, int]) -> None:
        super().__init__()
        self.strides, self.out_channels = dict(strides), dict(out_channels)
        self.convs = nn.ModuleDict({name: nn.Conv2d(3, c, 1) for name, c in out_channels.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: conv(F.avg_pool2d(x, self.strides[name])) for name, conv in self.convs.items()}


class Relabelled(nn.Module):
    """Another backbone object around the same network, declaring its strides itself."""

    def __init__(self, *, inner: nn.Module, strides: dict[str, int]) -> None:
        super().__init__()
        self.inner, self.strides, self.out_channels = inner, dict(strides), dict(inner.out_channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner(x)


def _tiny(**pixel_decoder) -> ModelConfig:
    config = get_preset("tiny_resnet")
    for key, value in pixel_decoder.items():
        setattr(config.pixel_decoder, key, value)
    return config


def test_a_backbone_with_the_same_strides_gives_identical_outputs():
    config = _tiny()
    model = build_model(config).eval()
    stub = Relabelled(inner=model.backbone, strides={"res2": 4, "res3": 8, "res4": 16, "res5": 32})
    decoder = build_pixel_decoder(config, stub)
    assert decoder.state_dict().keys() == model.pixel_decoder.state_dict().keys()
    decoder.load_state_dict(model.pixel_decoder.state_dict())
    other = Mask2Former(backbone=stub, pixel_decoder=decoder.eval(), transformer_decoder=model.transformer_decoder,
                        config=config)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model(x), other(x)
    assert torch.equal(a.class_logits, b.class_logits) and torch.equal(a.mask_logits, b.mask_logits)


def test_strides_flow_from_the_backbone_to_the_decoder():
    """A backbone one octave coarser than ResNet (1/8 .. 1/64): with common_stride 8 the decoder
    adds one FPN step from res2 and the masks come out at 1/8; nothing in the decoder is edited."""
    config = _tiny(common_stride=8)
    stub = StrideStub(strides={"res2": 8, "res3": 16, "res4": 32, "res5": 64},
                      out_channels={"res2": 16, "res3": 24, "res4": 32, "res5": 48})
    pixel_decoder = build_pixel_decoder(config, stub)
    assert pixel_decoder.in_strides == stub.strides and pixel_decoder.num_fpn_levels == 1
    model = Mask2Former(backbone=stub, pixel_decoder=pixel_decoder,
                        transformer_decoder=build_transformer_decoder(config, pixel_decoder), config=config).eval()
    with torch.no_grad():
        mask_features, maps = model.forward_features(torch.randn(2, 3, 128, 192))
        out = model(torch.randn(2, 3, 128, 192))
    assert mask_features.shape[-2:] == (16, 24)
    assert [m.shape[-2:] for m in maps] == [(2, 3), (4, 6), (8, 12)]
    assert out.mask_logits.shape == (2, config.decoder.num_queries, 16, 24)
    with pytest.raises(ValueError, match="common_stride 4 needs 2 FPN level"):
        build_pixel_decoder(_tiny(common_stride=4), stub)


def test_every_config_field_reaches_its_module():
    config = get_preset("tiny")
    changes = {"pixel_decoder": dict(encoder_ffn_dim=48, num_heads=2, num_points=3, num_encoder_layers=2,
                                     dropout=0.25, mask_dim=24),
               "decoder": dict(num_queries=5, num_heads=2, ffn_dim=40, num_layers=2, pre_norm=True, dropout=0.125,
                               enforce_input_proj=True)}
    data = to_dict(config)
    for section, values in changes.items():
        data[section].update(values)
    model = build_model(from_dict(ModelConfig, data))
    pd, td = model.pixel_decoder, model.transformer_decoder
    layer = pd.transformer.encoder.layers[0]
    assert len(pd.transformer.encoder.layers) == 2 and layer.linear1.out_features == 48
    assert (layer.self_attn.num_heads, layer.self_attn.num_points, layer.dropout.p) == (2, 3, 0.25)
    assert pd.mask_features.out_channels == 24 and td.mask_embed.layers[-1].out_features == 24
    assert td.query_feat.num_embeddings == 5 and td.num_layers == 2 and td.num_heads == 2
    assert td.transformer_ffn_layers[0].linear1.out_features == 40
    assert td.transformer_ffn_layers[0].pre_norm and td.transformer_self_attention_layers[0].dropout.p == 0.125
    assert td.transformer_cross_attention_layers[1].multihead_attn.dropout == 0.125
    assert all(isinstance(p, nn.Conv2d) for p in td.input_proj)  # enforce_input_proj with equal widths
    assert td.num_feature_levels == pd.num_levels == 3


def test_build_criterion_takes_every_loss_field_from_the_config():
    loss = LossConfig(class_weight=1.5, mask_weight=4.0, dice_weight=3.0, no_object_weight=0.2, num_points=77,
                      oversample_ratio=2.0, importance_sample_ratio=0.5, deep_supervision=False)
    criterion = build_criterion(ModelConfig(num_classes=3, loss=loss))
    assert criterion.weights == {"loss_ce": 1.5, "loss_mask": 4.0, "loss_dice": 3.0}
    assert criterion.empty_weight.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.2])
    assert (criterion.num_points, criterion.oversample_ratio, criterion.importance_sample_ratio) == (77, 2.0, 0.5)
    assert not criterion.deep_supervision
    m = criterion.matcher
    assert (m.class_weight, m.mask_weight, m.dice_weight, m.num_points) == (1.5, 4.0, 3.0, 77)
