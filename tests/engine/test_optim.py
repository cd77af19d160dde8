"""Parameter groups and schedules follow the reference recipe."""

from __future__ import annotations

import torch

from mask2former import build_model, get_preset
from mask2former.config import SolverConfig
from mask2former.engine.optim import build_optimizer, clip_gradients, lr_factor, param_groups


def _group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_param_group_rules():
    model = build_model(get_preset("tiny"))
    solver = SolverConfig(base_lr=1e-4, weight_decay=0.05, backbone_multiplier=0.1)
    groups = param_groups(model, solver)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    bb = model.backbone.layers[0].blocks[0]
    assert _group_of(groups, bb.mlp.fc1.weight)["lr"] == 1e-5  # backbone x 0.1
    assert _group_of(groups, bb.mlp.fc1.weight)["weight_decay"] == 0.05
    assert _group_of(groups, bb.attn.relative_position_bias_table)["weight_decay"] == 0.0
    assert _group_of(groups, bb.norm1.weight)["weight_decay"] == 0.0  # norm
    td = model.transformer_decoder
    assert _group_of(groups, td.query_feat.weight)["weight_decay"] == 0.0  # embedding
    assert _group_of(groups, td.query_feat.weight)["lr"] == 1e-4
    assert _group_of(groups, td.class_embed.bias)["weight_decay"] == 0.05  # biases keep decay
    assert _group_of(groups, model.pixel_decoder.transformer.level_embed)["weight_decay"] == 0.05  # bare Parameter
    assert _group_of(groups, model.pixel_decoder.input_proj[0][1].weight)["weight_decay"] == 0.0  # GroupNorm


def test_schedules():
    poly = lr_factor(SolverConfig(schedule="poly", poly_power=0.9), 100)
    assert poly(0) == 1.0 and abs(poly(50) - 0.5**0.9) < 1e-12 and poly(100) == 0.0
    step = lr_factor(SolverConfig(schedule="multistep", steps=(0.5, 0.75), gamma=0.1), 100)
    assert [step(i) for i in (0, 49, 50, 74, 75, 99)] == [1.0, 1.0, 0.1, 0.1, 0.010000000000000002,
                                                          0.010000000000000002]
    warm = lr_factor(SolverConfig(schedule="constant", warmup_iters=10, warmup_factor=0.01), 100)
    assert warm(0) == 0.01 and abs(warm(5) - (0.01 * 0.5 + 0.5)) < 1e-12 and warm(10) == 1.0


def test_full_model_clipping():
    model = build_model(get_preset("tiny"))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = clip_gradients(model, 0.01)
    total = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert before > 1 and abs(float(total) - 0.01) < 1e-6


def test_optimizer_is_adamw_with_groups():
    opt = build_optimizer(build_model(get_preset("tiny")), SolverConfig())
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) >= 3
