"""Training loop for the torchvision baselines, on exactly the inputs Mask2Former sees: the same
split, augmentation, batch size, iteration budget and sample order (the same batch sampler)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import torch

from mask2former.config import TrainConfig
from mask2former.data.datasets import DatasetSplit
from mask2former.data.loader import IterationBatchSampler, build_training_set, collate
from mask2former.errors import DatasetError, TrainingError
from mask2former.progress import Progress
from mask2former.structures import Target


class BaselineAdapter(Protocol):
    """What training needs of a baseline: its network and its losses on our images and targets."""

    model: torch.nn.Module

    def losses(self, images: list[torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]: ...

logger = logging.getLogger("mask2former")


def baseline_optimizer(model: torch.nn.Module, kind: str, base_lr: float, max_iter: int, warmup: int
                       ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with momentum (torchvision's reference recipes) or AdamW, linear warm-up then poly decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=base_lr, momentum=0.9, weight_decay=1e-4)
    elif kind == "adamw":
        optimizer = torch.optim.AdamW(params, lr=base_lr, weight_decay=0.05)
    else:
        raise ValueError(f"unknown optimizer {kind!r} (sgd or adamw)")

    def factor(it: int) -> float:
        warm = min(1.0, (it + 1) / warmup) if warmup else 1.0
        return warm * (1 - min(it, max_iter) / max_iter) ** 0.9

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_baseline(adapter: BaselineAdapter, split: DatasetSplit, config: TrainConfig, *, optimizer: str,
                   base_lr: float, warmup: int = 100, progress: bool = True, name: str = "baseline",
                   on_log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``adapter.model`` with ``adapter.losses(images, targets)``; returns the loss log."""
    model = adapter.model.train()
    dataset = build_training_set(split, config.input, seed=config.seed)
    sampler = IterationBatchSampler(len(dataset), batch_size=config.batch_size, seed=config.seed,
                                    max_iter=config.max_iter)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler,
                                         collate_fn=collate, num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    opt, scheduler = baseline_optimizer(model, optimizer, base_lr, config.max_iter, warmup)
    log: list[dict] = []
    bar = None
    if progress:
        bar = Progress(total=config.max_iter, desc=f"train {name}", unit="it")
    for it, (samples, failures) in enumerate(loader):
        if failures:
            raise DatasetError(failures[0].path, failures[0].problem)
        t0 = time.perf_counter()
        losses = adapter.losses([s.image for s in samples], [s.target for s in samples])
        loss = sum(losses.values(), torch.zeros(()))  # the same order of additions as sum() of the terms
        if not math.isfinite(float(loss.detach())):
            raise TrainingError(f"{name}: non-finite loss at iteration {it + 1} (try a lower --baseline-lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        scheduler.step()
        record = {"iteration": it + 1, "loss": float(loss.detach()), "time": time.perf_counter() - t0}
        log.append(record)
        if on_log is not None and ((it + 1) % config.log_period == 0 or it == 0):
            on_log(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(r['loss'] for r in log[-20:]) / len(log[-20:]):.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return log
