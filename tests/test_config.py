"""Configs: strict (de)serialisation with suggestions, dotted overrides."""

from __future__ import annotations

import pytest

from mask2former.config import ConfigError, ModelConfig, apply_overrides, from_dict, to_dict
from mask2former.presets import get_preset


def test_round_trip():
    config = get_preset("tiny")
    assert from_dict(ModelConfig, to_dict(config)) == config


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match="unknown config key 'decoder.num_querys'; did you mean 'num_queries'"):
        from_dict(ModelConfig, {"decoder": {"num_querys": 3}})


def test_type_errors_name_the_key():
    with pytest.raises(ConfigError, match="decoder.num_queries: expected an integer"):
        from_dict(ModelConfig, {"decoder": {"num_queries": "many"}})


def test_overrides():
    config = apply_overrides(get_preset("tiny"), {"decoder.num_queries": "12", "inference.panoptic_on": "false"})
    assert config.decoder.num_queries == 12 and config.inference.panoptic_on is False
    with pytest.raises(ConfigError, match="did you mean 'decoder.num_layers'"):
        apply_overrides(get_preset("tiny"), {"decoder.num_layer": 2})


def test_validate_rejects_impossible_models():
    config = get_preset("tiny")
    config.backbone.name = "vit"
    with pytest.raises(ConfigError, match="backbone.name"):
        config.validate()
    config = get_preset("tiny")
    config.pixel_decoder.conv_dim = 48
    with pytest.raises(ConfigError, match="multiple of 32"):
        config.validate()
