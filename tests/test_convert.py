"""HF config.json -> ours: every default is the dataclasses' (stated once, in config.py), values
the file sets are taken with their field's type, and the HF port's own defaults are the paper's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mask2former.config import BackboneConfig, DecoderConfig, LossConfig, PixelDecoderConfig
from mask2former.convert import ConversionError, config_from_hf
from mask2former.presets import get_preset


def test_keys_config_json_leaves_out_get_our_defaults():
    config = config_from_hf({"backbone_config": {"model_type": "swin"}, "num_labels": 7})
    assert config.num_classes == 7 and config.categories == []
    assert config.backbone == BackboneConfig(name="swin")
    assert (config.pixel_decoder, config.decoder, config.loss) == (PixelDecoderConfig(), DecoderConfig(), LossConfig())


def test_keys_config_json_sets_are_taken_with_their_fields_types():
    config = config_from_hf({"backbone_config": {"model_type": "swin", "embed_dim": 32, "depths": [2, 2, 2, 2],
                                                 "image_size": 384},
                             "id2label": {"1": "b", "0": "a"}, "decoder_layers": 4, "train_num_points": 100,
                             "hidden_dim": 64.0, "num_attention_heads": 4, "pre_norm": True, "class_weight": 1})
    assert config.class_names == ["a", "b"]
    assert (config.backbone.embed_dim, config.backbone.depths, config.backbone.pretrain_img_size) == (32, (2,) * 4, 384)
    assert (config.decoder.num_layers, config.decoder.hidden_dim, config.decoder.pre_norm) == (3, 64, True)
    assert type(config.decoder.hidden_dim) is int and type(config.loss.class_weight) is float
    assert config.decoder.num_heads == config.pixel_decoder.num_heads == 4
    assert config.loss.num_points == 100 and config.loss.dice_weight == LossConfig().dice_weight


@pytest.mark.parametrize(("hf", "message"), [
    ({"backbone_config": {"model_type": "swin"}, "num_labels": 3, "hidden_dim": "wide"},
     "hidden_dim must be an integer, got 'wide'"),
    ({"backbone_config": {"model_type": "swin"}}, "neither id2label nor num_labels"),
    ({"backbone_config": {"model_type": "resnet"}, "num_labels": 3}, "unsupported HF ResNet backbone"),
])
def test_bad_config_json_values_are_conversion_errors(hf, message):
    with pytest.raises(ConversionError, match=message):
        config_from_hf(hf)


def test_the_hf_ports_defaults_are_ours():
    """What lets a missing key take our default: HF's ``Mask2FormerConfig`` defaults are the
    paper's settings too (its Swin's drop-path rate aside, which config.json always carries)."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.Mask2FormerConfig(backbone_config=transformers.SwinConfig(
        out_features=["stage1", "stage2", "stage3", "stage4"])).to_dict()
    config = config_from_hf(hf)
    assert (config.pixel_decoder, config.decoder, config.loss) == (PixelDecoderConfig(), DecoderConfig(), LossConfig())
    assert replace(config.backbone, drop_path_rate=BackboneConfig().drop_path_rate) == BackboneConfig(name="swin")


@pytest.mark.parametrize("preset", ["r50_coco_panoptic", "swin_t_coco_panoptic", "tiny", "tiny_resnet"])
def test_the_hf_config_we_write_reads_back_as_the_same_architecture(preset):
    from mask2former.convert import config_from_hf, hf_config_dict

    config = get_preset(preset)
    back = config_from_hf(hf_config_dict(config))
    assert back.num_classes == config.num_classes
    assert (back.pixel_decoder, back.decoder, back.loss) == (config.pixel_decoder, config.decoder, config.loss)
    assert replace(back.backbone, norm=config.backbone.norm) == config.backbone  # HF's ResNet norm is frozen
