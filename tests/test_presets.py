"""Presets: the model zoo's settings, and parameter counts as published."""

from __future__ import annotations

import pytest

from mask2former import PRESETS, build_model, get_preset
from mask2former.config import ConfigError
from mask2former.presets import training_recipe


@pytest.mark.parametrize(("name", "millions"), [("r50_coco_panoptic", 44), ("swin_t_coco_panoptic", 47),
                                                ("swin_l_in21k_coco_panoptic", 216)])
def test_parameter_counts_match_the_paper(name, millions):
    params = sum(p.numel() for p in build_model(get_preset(name)).parameters())
    assert abs(params / 1e6 - millions) / millions < 0.01, params


def test_zoo_settings():
    assert len([n for n in PRESETS if n.endswith("coco_panoptic")]) == 7
    c = get_preset("swin_l_in21k_coco_panoptic")
    assert (c.num_classes, c.decoder.num_queries, c.backbone.window_size, c.backbone.embed_dim) == (133, 200, 12, 192)
    assert sum(x.isthing for x in c.categories) == 80 and c.categories[0].id == 1
    c = get_preset("swin_l_in21k_ade20k_semantic")
    assert (c.num_classes, c.decoder.num_queries, c.inference.min_size, c.inference.max_size) == (150, 100, 640, 2560)
    c = get_preset("r50_cityscapes_panoptic")
    assert (c.num_classes, c.backbone.norm, c.inference.min_size) == (19, "SyncBN", 1024)
    c = get_preset("r50_mapillary_panoptic")
    assert (c.num_classes, c.inference.object_mask_threshold) == (65, 0.0)
    c = get_preset("r50_coco_instance")
    assert (c.num_classes, c.inference.panoptic_on, c.inference.semantic_on) == (80, False, False)
    for name, make in PRESETS.items():
        config = make().validate()
        if config.categories:
            assert len(config.categories) == config.num_classes, name


def test_training_recipes():
    coco = training_recipe("r50_coco_panoptic")
    assert (coco.max_iter, coco.solver.schedule, coco.input.crop_size, coco.batch_size) == (368750, "multistep",
                                                                                            (1024, 1024), 16)
    ade = training_recipe("r50_ade20k_semantic")
    assert (ade.max_iter, ade.solver.schedule, ade.input.augmentation, ade.input.crop_size) == (160000, "poly",
                                                                                               "semantic", (512, 512))
    assert training_recipe("r50_cityscapes_semantic").input.crop_size == (512, 1024)


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'r50_coco_panoptic'"):
        get_preset("r50_coco_panoptik")
