"""Configs: strict (de)serialisation with suggestions, dotted overrides."""

from __future__ import annotations

import math

import pytest

from mask2former.config import ConfigError, ModelConfig, TrainConfig, apply_overrides, from_dict, to_dict
from mask2former.errors import brief
from mask2former.presets import PRESETS, get_preset, training_recipe


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


# ----------------------------------------------------------------------------- range checks

MODEL_OUT_OF_RANGE = [
    # (dotted key, bad value, part of the message naming the allowed range)
    ("num_classes", 0, "an integer >= 1"),
    ("backbone.depth", 42, "one of 18, 34, 50, 101, 152"),
    ("backbone.norm", "GN", "one of FrozenBN, BN, SyncBN"),
    ("backbone.window_size", 0, "an integer >= 1"),
    ("backbone.mlp_ratio", 0.0, "a finite number > 0"),
    ("backbone.drop_path_rate", 1.0, "a finite number in [0, 1)"),
    ("backbone.drop_path_rate", -0.1, "a finite number in [0, 1)"),
    ("backbone.depths", [2, 2, 0, 2], "an integer >= 1"),
    ("backbone.num_heads", [1, 2, 2], "a list of 4 integers"),
    ("backbone.embed_dim", 0, "an integer >= 1"),
    ("pixel_decoder.num_heads", 0, "an integer >= 1"),
    ("pixel_decoder.num_encoder_layers", 0, "an integer >= 1"),
    ("pixel_decoder.num_points", 0, "an integer >= 1"),
    ("pixel_decoder.dropout", 1.0, "a finite number in [0, 1)"),
    ("pixel_decoder.common_stride", 2, "one of 4, 8"),
    ("decoder.num_heads", 0, "an integer >= 1"),
    ("decoder.num_queries", 0, "an integer >= 1"),
    ("decoder.num_layers", 0, "an integer >= 1"),
    ("decoder.ffn_dim", 0, "an integer >= 1"),
    ("decoder.hidden_dim", 34, "a multiple of 4"),
    ("decoder.dropout", -0.5, "a finite number in [0, 1)"),
    ("loss.class_weight", -1.0, "a finite number >= 0"),
    ("loss.no_object_weight", -0.1, "a finite number >= 0"),
    ("loss.num_points", 0, "an integer >= 1"),
    ("loss.oversample_ratio", 0.5, "a finite number >= 1"),
    ("loss.importance_sample_ratio", 1.5, "a finite number in [0, 1]"),
    ("inference.min_size", 0, "an integer >= 1"),
    ("inference.max_size", 32, "an integer >= inference.min_size (64)"),
    ("pixels.size_divisibility", 0, "an integer >= 1"),
    ("inference.object_mask_threshold", 1.5, "a finite number in [0, 1]"),
    ("inference.overlap_threshold", -0.1, "a finite number in [0, 1]"),
    ("inference.topk_per_image", 0, "an integer >= 1"),
    ("pixels.std", [58.0, 0.0, 57.0], "a finite number > 0"),
    ("pixels.mean", [1.0, 2.0], "a list of 3 numbers"),
]


@pytest.mark.parametrize(("key", "value", "rule"), MODEL_OUT_OF_RANGE)
def test_model_fields_out_of_range_name_key_value_and_range(key, value, rule):
    config = apply_overrides(get_preset("tiny"), {key: value})  # converts; only validate() judges ranges
    with pytest.raises(ConfigError) as error:
        config.validate()
    message = str(error.value)
    assert message.startswith(key) and rule in message, message
    if not isinstance(value, list):  # a list is quoted whole or by its bad element
        assert message.endswith(f"got {brief(value)}"), message


def test_model_config_checked_by_its_dotted_key_inside_a_train_config():
    config = apply_overrides(training_recipe("tiny"), {"model.inference.min_size": 0})
    with pytest.raises(ConfigError, match=r"^model\.inference\.min_size must be an integer >= 1, got 0$"):
        config.validate()


def test_zero_heads_is_a_range_error_not_a_division_by_zero():
    config = get_preset("tiny")
    config.backbone.num_heads = (1, 0, 2, 4)
    with pytest.raises(ConfigError, match=r"backbone\.num_heads\[1\] must be an integer >= 1, got 0"):
        config.validate()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "1e999"])
def test_non_finite_numbers_are_refused_on_conversion(value):
    import yaml

    with pytest.raises(ConfigError, match=r"^inference\.object_mask_threshold: expected a finite number, got "):
        from_dict(ModelConfig, {"inference": {"object_mask_threshold": yaml.safe_load(value)}})
    with pytest.raises(ConfigError, match=r"^solver\.steps\[1\]: expected a finite number"):
        from_dict(TrainConfig, {"solver": {"steps": [0.5, yaml.safe_load(value)]}})


def test_non_finite_numbers_set_directly_are_refused_by_validate():
    config = get_preset("tiny")
    config.inference.object_mask_threshold = math.nan
    with pytest.raises(ConfigError, match=r"inference\.object_mask_threshold must be a finite number in \[0, 1\], "
                                          r"got nan"):
        config.validate()
    config = training_recipe("tiny")
    config.solver.clip_grad_norm = math.inf
    with pytest.raises(ConfigError, match=r"solver\.clip_grad_norm must be a finite number >= 0, got inf"):
        config.validate()


def test_categories_need_unique_ids_and_rgb_colours():
    config = get_preset("r50_coco_panoptic")
    config.categories[5].id = config.categories[3].id
    with pytest.raises(ConfigError, match=rf"categories: duplicate ids \[{config.categories[3].id}\]"):
        config.validate()
    for colour, where in [((0, 300, 0), r"color\[1\] must be an integer in \[0, 255\], got 300"),
                          ((0, 0), "color must be a list of 3 integers"), ((0, -1, 0), r"color\[1\]")]:
        config = get_preset("r50_coco_panoptic")
        config.categories[2].color = colour
        with pytest.raises(ConfigError, match=rf"^categories\[2\]\.{where}"):
            config.validate()


def test_category_without_a_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"categories\[0\]: missing key 'name'"):
        from_dict(ModelConfig, {"num_classes": 1, "categories": [{"id": 1}]})


TRAIN_OUT_OF_RANGE = [
    ("max_iter", 0, "an integer >= 1"),
    ("batch_size", 0, "an integer >= 1"),
    ("grad_accum", 0, "an integer >= 1"),
    ("num_workers", -1, "an integer >= 0"),
    ("seed", -1, "an integer in [0, 18446744073709551615]"),
    ("checkpoint_period", 0, "an integer >= 1"),
    ("log_period", 0, "an integer >= 1"),
    ("eval_period", -1, "an integer >= 0"),
    ("keep_checkpoints", -1, "an integer >= 0"),
    ("solver.base_lr", -1e-4, "a finite number >= 0"),
    ("solver.weight_decay", -0.05, "a finite number >= 0"),
    ("solver.weight_decay_norm", -1.0, "a finite number >= 0"),
    ("solver.weight_decay_embed", -1.0, "a finite number >= 0"),
    ("solver.backbone_multiplier", -0.1, "a finite number >= 0"),
    ("solver.clip_grad_norm", -0.01, "a finite number >= 0"),
    ("solver.schedule", "cosine", "one of poly, multistep, constant"),
    ("solver.poly_power", 0.0, "a finite number > 0"),
    ("solver.steps", [0.9, 0.5], "increasing"),
    ("solver.steps", [0.0, 0.5], "a finite number > 0"),
    ("solver.gamma", 0.0, "a finite number > 0"),
    ("solver.warmup_iters", -1, "an integer >= 0"),
    ("solver.warmup_factor", 1.5, "a finite number in [0, 1]"),
    ("solver.amp", "fp8", "one of auto, off, fp16, bf16"),
    ("input.augmentation", "mosaic", "one of lsj, semantic, none"),
    ("input.crop_size", [64, 0], "an integer >= 1"),
    ("input.crop_size", [64], "a list of 2 integers"),
    ("input.base_size", 0, "an integer >= 1"),
    ("input.min_scale", 0.0, "a finite number > 0"),
    ("input.max_scale", 0.25, ">= input.min_scale (0.5)"),
    ("input.cat_max_ratio", 0.0, "a finite number in (0, 1]"),
    ("input.cat_max_ratio", 1.5, "a finite number in (0, 1]"),
]


@pytest.mark.parametrize(("key", "value", "rule"), TRAIN_OUT_OF_RANGE)
def test_train_fields_out_of_range_name_key_value_and_range(key, value, rule):
    config = apply_overrides(training_recipe("tiny"), {key: value})
    with pytest.raises(ConfigError) as error:
        config.validate()
    message = str(error.value)
    assert message.startswith(key) and rule in message, message
    if not isinstance(value, list):
        assert message.endswith(f"got {brief(value)}"), message


def test_edges_of_each_range_are_accepted():
    config = apply_overrides(training_recipe("tiny"), {
        "eval_period": 0, "keep_checkpoints": 0, "num_workers": 0, "seed": 2**64 - 1, "checkpoint_period": 1,
        "solver.base_lr": 0.0, "solver.clip_grad_norm": 0.0, "solver.warmup_factor": 0.0, "solver.steps": [],
        "input.cat_max_ratio": 1.0, "input.max_scale": 0.5, "model.inference.max_size": 64,
        "model.inference.object_mask_threshold": 0.0, "model.inference.overlap_threshold": 1.0,
        "model.backbone.drop_path_rate": 0.0, "model.loss.importance_sample_ratio": 1.0,
        "model.loss.oversample_ratio": 1.0, "model.pixel_decoder.common_stride": 8,
    })
    assert config.validate() is config


def test_every_preset_and_recipe_validates_and_round_trips():
    for name in PRESETS:
        recipe = training_recipe(name).validate()
        assert from_dict(TrainConfig, to_dict(recipe)).validate() == recipe, name
