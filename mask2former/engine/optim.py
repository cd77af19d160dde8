"""AdamW with the reference's parameter groups, learning-rate schedules, and gradient clipping."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from mask2former.config import SolverConfig

logger = logging.getLogger("mask2former")

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d,
          nn.LocalResponseNorm)


def param_groups(model: nn.Module, solver: SolverConfig) -> list[dict]:
    """One group per (lr, weight decay) combination, by the reference's rules:
    backbone parameters get ``lr x backbone_multiplier``; norm layers, ``nn.Embedding`` (queries,
    decoder level embedding) and Swin's relative position tables get no weight decay; biases and
    the pixel decoder's bare ``level_embed`` keep it."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    names: dict[tuple[float, float], int] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lr, wd = solver.base_lr, solver.weight_decay
            if module_name == "backbone" or module_name.startswith("backbone."):
                lr *= solver.backbone_multiplier
            if "relative_position_bias_table" in param_name or "absolute_pos_embed" in param_name:
                wd = 0.0
            if isinstance(module, _NORMS):
                wd = solver.weight_decay_norm
            if isinstance(module, nn.Embedding):
                wd = solver.weight_decay_embed
            groups.setdefault((lr, wd), []).append(param)
            names[(lr, wd)] = names.get((lr, wd), 0) + param.numel()
    for (lr, wd), params in groups.items():
        logger.info("optimizer group lr=%g weight decay=%g: %d tensors, %s parameters", lr, wd, len(params),
                    f"{names[(lr, wd)]:,}")
    return [{"params": params, "lr": lr, "weight_decay": wd, "initial_lr": lr} for (lr, wd), params in groups.items()]


def build_optimizer(model: nn.Module, solver: SolverConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, solver), lr=solver.base_lr)


def lr_factor(solver: SolverConfig, max_iter: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at iteration ``it`` (0-based), with linear warm-up."""

    def factor(it: int) -> float:
        if solver.schedule == "poly":
            value = (1.0 - min(it, max_iter) / max_iter) ** solver.poly_power
        elif solver.schedule == "multistep":
            milestones = [int(round(s * max_iter)) if s < 1 else int(s) for s in solver.steps]
            value = solver.gamma ** sum(it >= m for m in milestones)
        else:
            value = 1.0
        if it < solver.warmup_iters:
            alpha = it / solver.warmup_iters
            value *= solver.warmup_factor * (1 - alpha) + alpha
        return value

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, solver: SolverConfig, max_iter: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(solver, max_iter))


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Full-model L2 clipping (the reference's CLIP_TYPE "full_model"); returns the norm before."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm <= 0 or not params:
        grads = [p.grad for p in params if p.grad is not None]
        return float(torch.norm(torch.stack([g.norm() for g in grads]))) if grads else float("nan")
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(norm) if math.isfinite(float(norm)) else float("inf")
