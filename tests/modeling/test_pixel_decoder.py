"""The pixel decoder takes its levels' strides from the caller: they order the levels and decide
the FPN steps, so the maps it returns follow whatever strides the backbone has."""

from __future__ import annotations

import pytest
import torch

from mask2former.modeling import MSDeformAttnPixelDecoder

CHANNELS = {"res2": 16, "res3": 24, "res4": 40, "res5": 48}


def _decoder(strides: dict[str, int], common_stride: int, channels: dict[str, int] = CHANNELS):
    return MSDeformAttnPixelDecoder(in_channels=channels, in_strides=strides, conv_dim=32, mask_dim=16,
                                    num_encoder_layers=1, encoder_ffn_dim=64, num_heads=4, num_points=2,
                                    dropout=0.0, common_stride=common_stride).eval()


def _features(strides: dict[str, int], h: int, w: int, channels: dict[str, int] = CHANNELS):
    return {name: torch.randn(2, channels[name], h // s, w // s) for name, s in strides.items()}


@pytest.mark.parametrize("strides, common_stride, fpn_levels", [
    ({"res2": 4, "res3": 8, "res4": 16, "res5": 32}, 4, 1),  # ResNet / Swin
    ({"res2": 4, "res3": 8, "res4": 16, "res5": 32}, 8, 0),
    ({"res2": 8, "res3": 16, "res4": 32, "res5": 64}, 8, 1),  # a backbone one octave coarser
    ({"res2": 2, "res3": 4, "res4": 8, "res5": 16}, 2, 1),
    ({"res2": 4, "res3": 8, "res4": 16, "res5": 32}, 2, None),  # asks for a level finer than res2
])
def test_maps_follow_the_given_strides(strides, common_stride, fpn_levels):
    if fpn_levels is None:
        with pytest.raises(ValueError, match="common_stride 2 needs 2 FPN level"):
            _decoder(strides, common_stride)
        return
    decoder = _decoder(strides, common_stride)
    assert decoder.num_fpn_levels == fpn_levels
    assert hasattr(decoder, "adapter_1") == (fpn_levels == 1) and not hasattr(decoder, "adapter_2")
    h, w = 128, 192
    with torch.no_grad():
        mask_features, maps = decoder(_features(strides, h, w))
    assert mask_features.shape == (2, 16, h // common_stride, w // common_stride)
    assert [m.shape[-2:] for m in maps] == [(h // strides[n], w // strides[n]) for n in ("res5", "res4", "res3")]


def test_levels_are_ordered_by_stride_not_by_dict_order():
    strides = {"res5": 32, "res3": 8, "res2": 4, "res4": 16}
    decoder = _decoder(strides, 4)
    assert decoder.in_features == ["res2", "res3", "res4", "res5"]
    assert decoder.transformer_in_features == ["res3", "res4", "res5"]
    assert decoder.adapter_1.weight.shape[1] == CHANNELS["res2"]  # the FPN level is the finest one
    assert [p[0].in_channels for p in decoder.input_proj] == [48, 40, 24]  # coarsest first


def test_channels_and_strides_must_name_the_same_levels():
    with pytest.raises(ValueError, match="name different levels"):
        _decoder({"res2": 4, "res3": 8, "res4": 16}, 4)
