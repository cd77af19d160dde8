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


# The official training settings per dataset (Mask2Former configs, as the spec tabulates them):
# iterations, schedule, warm-up, crop, shortest-edge base, batch. A transcription, not our code.
OFFICIAL_RECIPES = {
    "coco": (368750, "multistep", 10, (1024, 1024), None, 16),
    "ade20k_512": (160000, "poly", 0, (512, 512), 512, 16),
    "ade20k_640": (160000, "poly", 0, (640, 640), 640, 16),
    "cityscapes": (90000, "poly", 0, (512, 1024), 1024, 16),
    "mapillary": (300000, "poly", 0, (1024, 1024), 2048, 16),
}


def _official(name: str) -> tuple:
    config = get_preset(name)
    if config.dataset.startswith("coco"):
        iters, *rest = OFFICIAL_RECIPES["coco"]
        return (737500 if name.startswith("swin_l") else iters, *rest)
    if config.dataset.startswith("ade20k"):
        return OFFICIAL_RECIPES["ade20k_640" if config.inference.min_size == 640 else "ade20k_512"]
    return OFFICIAL_RECIPES[config.dataset.split("_")[0]]


def test_every_zoo_recipe_is_the_official_one():
    from mask2former.presets import training_recipe

    for name in PRESETS:
        if name in ("demo",) or name.startswith("tiny"):
            continue
        recipe = training_recipe(name)
        iters, schedule, warmup, crop, base, batch = _official(name)
        got = (recipe.max_iter, recipe.solver.schedule, recipe.solver.warmup_iters, tuple(recipe.input.crop_size),
               recipe.input.base_size if recipe.input.augmentation == "semantic" else None, recipe.batch_size)
        assert got == (iters, schedule, warmup, crop, base, batch), name
        assert (recipe.solver.base_lr, recipe.solver.weight_decay, recipe.solver.backbone_multiplier,
                recipe.solver.clip_grad_norm) == (1e-4, 0.05, 0.1, 0.01), name


def test_coco_decays_at_the_official_iterations():
    from mask2former.engine.optim import lr_factor
    from mask2former.presets import training_recipe

    for name, official in (("r50_coco_panoptic", [327778, 355092]), ("swin_l_in21k_coco_panoptic", [655556, 710184])):
        recipe = training_recipe(name)
        factor = lr_factor(recipe.solver, recipe.max_iter)
        assert [it for it in range(1, recipe.max_iter) if factor(it) < factor(it - 1)] == official, name


def test_scaling_to_a_smaller_batch_follows_the_linear_rule():
    from mask2former.engine.optim import lr_factor
    from mask2former.presets import scale_to_batch, training_recipe

    recipe = training_recipe("r50_coco_panoptic")
    scaled, lines = scale_to_batch(recipe, 2)
    assert (scaled.batch_size, scaled.max_iter, scaled.solver.warmup_iters) == (2, 368750 * 8, 80)
    assert scaled.solver.base_lr == pytest.approx(1e-4 / 8)
    assert "solver.base_lr: 0.0001 -> 1.25e-05" in lines and "max_iter: 368750 -> 2950000" in lines
    factor = lr_factor(scaled.solver, scaled.max_iter)
    assert [it for it in range(2_600_000, scaled.max_iter) if factor(it) < factor(it - 1)] == [2622224, 2840736]
    kept, lines = scale_to_batch(recipe, 2, keep={"max_iter", "solver.base_lr"})  # what the user set wins
    assert (kept.max_iter, kept.solver.base_lr, kept.batch_size) == (368750, 1e-4, 2)
    assert not any(line.startswith(("max_iter", "solver.base_lr")) for line in lines)
