"""``train``: DATA.yaml + a preset -> a trained checkpoint, on one CPU or many GPUs (torchrun).

The loop is deliberately plain: build everything, then per iteration run ``grad_accum``
micro-batches (forward, loss, backward), clip the full-model gradient norm, step the optimiser
and the schedule; log, checkpoint and evaluate on their periods.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml

from mask2former import distributed as dist
from mask2former.atomic_files import json_safe, remove_stale_temp_files
from mask2former.backbone_weights import adapt_stem, load_backbone_weights
from mask2former.build import build_criterion, build_model
from mask2former.config import PixelConfig, TrainConfig, to_dict
from mask2former.data.collate import pad_and_normalize, pad_targets
from mask2former.data.data_yaml import DataConfig, build_split, for_model, load_data_config, pixel_config
from mask2former.data.datasets import DatasetSplit
from mask2former.data.loader import IterationBatchSampler, LoadFailure, TrainSample, build_training_set, collate
from mask2former.device import resolve_device
from mask2former.engine.evaluate import evaluate
from mask2former.engine.optim import build_optimizer, build_scheduler, clip_gradients
from mask2former.engine.resume import architecture_error, check_resume
from mask2former.engine.run_logger import RunLogger
from mask2former.engine.skip_guard import SkipGuard
from mask2former.engine.train_state import (
    load_training_state,
    prune_checkpoints,
    save_training_state,
    set_rng_state,
)
from mask2former.errors import CheckpointError, ConfigError, TrainingError, brief
from mask2former.evaluation.tasks import tasks_for
from mask2former.folder_lock import folder_lock
from mask2former.formats import TASKS
from mask2former.modeling import Mask2Former
from mask2former.structures import Target
from mask2former.weights import load_state_strict, read_checkpoint, save_model

logger = logging.getLogger("mask2former")


def prepare_batch(samples: list[TrainSample], pixels: PixelConfig, device: torch.device
                  ) -> tuple[torch.Tensor, list[Target]]:
    """``pixel_values`` and targets padded to the same size, by the model-input contract."""
    values, _ = pad_and_normalize([s.image for s in samples], pixels.mean, pixels.std, pixels.size_divisibility,
                                  device=device)
    return values, pad_targets([s.target for s in samples], (values.shape[-2], values.shape[-1]), device=device)


def loss_generators(samples: list[TrainSample], seed: int, device: torch.device) -> list[torch.Generator]:
    """One generator per image for the loss's random points, seeded by its sample number: the
    points do not depend on how samples are spread over processes or on resuming."""
    gens = []
    for s in samples:
        g = torch.Generator(device=device)
        g.manual_seed((seed * 1_000_003 + s.position * 7919 + 17) % (2**63 - 1))
        gens.append(g)
    return gens


def _amp_context(amp: str, device: torch.device) -> tuple[contextlib.AbstractContextManager, Any]:
    mode = amp if amp != "auto" else ("fp16" if device.type == "cuda" else "off")
    if mode == "off":
        return contextlib.nullcontext(), None
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None
    return torch.autocast(device_type=device.type, dtype=dtype), scaler


def adopt_dataset(config: TrainConfig, split: DatasetSplit, data_format: str) -> TrainConfig:
    """A copy of ``config`` whose model predicts the dataset's classes. The annotations can only
    narrow the evaluation flags (semantic label maps cannot score instances); a task the config
    switched off (``--set model.inference.panoptic_on=false``) stays off."""
    allowed = tasks_for(data_format, split.categories)
    inference = config.model.inference
    flags = {f"{task}_on": getattr(inference, f"{task}_on") and task in allowed for task in TASKS}
    narrowed = [task for task in TASKS if getattr(inference, f"{task}_on") and task not in allowed]
    if narrowed:
        logger.info("the %s annotations cannot score %s: %s off", data_format, " or ".join(narrowed),
                    "it is" if len(narrowed) == 1 else "they are")
    if not any(flags.values()):
        raise ConfigError(f"nothing to evaluate: the {data_format} annotations score {', '.join(allowed)}, which "
                          "the config's model.inference flags switch off")
    model = replace(config.model, categories=list(split.categories), num_classes=len(split.categories),
                    inference=replace(inference, **flags), dataset=config.model.dataset or data_format)
    return replace(config, model=model)


def adopt_images(config: TrainConfig, data_config: DataConfig, given: Mapping[str, Any] | None = None
                 ) -> tuple[TrainConfig, DataConfig]:
    """``config`` whose model takes the dataset's images as DATA.yaml describes them (``channels``,
    ``intensity``, ``window``, per-channel ``mean`` / ``std``: ``data_yaml.pixel_config``), and the
    data config with ``given`` (the command line's ``intensity`` / ``window``) over DATA.yaml's: an
    explicit option wins and says so. The checkpoint stores the result, so that evaluation and
    prediction map images exactly as training did."""
    said = dict(data_config.pixels)
    if given:
        pixels = dict(said)
        if "window" in given or given.get("intensity", "window") != "window":
            pixels.pop("window", None)  # the file's window belongs to the file's rule
        pixels.update(given)
        if "window" in given:
            pixels.setdefault("intensity", "window")
        if pixels.get("intensity") == "window" and "window" not in pixels and not config.model.pixels.window:
            raise ConfigError("--intensity window clips to a fixed range: give it with --window LOW,HIGH")
        data_config = replace(data_config, pixels=pixels)
    images = pixel_config(data_config, config.model.pixels)
    rule = images.intensity + (" {:g}..{:g}".format(*images.window) if images.intensity == "window" else "")
    origin = ""
    if given:
        before = said.get("intensity", "window" if "window" in said else None)
        replaced = before is not None and (before, tuple(said.get("window", ()))) != (images.intensity, images.window)
        origin = f" (command line, over DATA.yaml's intensity {before!r})" if replaced else " (command line)"
    logger.info("images: %d channel%s, intensity %s%s; 8-bit images pass as they are", images.channels,
                "s" * (images.channels != 1), rule, origin)
    return replace(config, model=replace(config.model, pixels=images)), data_config


def initialise_from(model: torch.nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Fine-tuning start: copy every weight of ``path`` whose name and shape fit; an RGB stem
    given to a model of other input channels is adapted (``adapt_stem``: timm's rule); the class
    head (and anything else that does not fit) keeps its fresh initialisation. Returns the report."""
    _, state = read_checkpoint(path)
    state = dict(state)
    own = model.state_dict()
    stem = getattr(getattr(model, "backbone", None), "stem_weight", None)
    adapted = []
    if stem is not None and f"backbone.{stem}" in own and \
            adapt_stem(state, f"backbone.{stem}", own[f"backbone.{stem}"], str(path)):
        adapted.append(f"backbone.{stem}")
    kept, reinit, unused = [], [], []
    for key, value in state.items():
        if key in own and own[key].shape == value.shape:
            own[key] = value
            kept.append(key)
        else:
            unused.append(key)
    reinit = sorted(set(own) - set(kept))
    model.load_state_dict(own)
    return {"kept": kept, "reinitialised": reinit, "unused": unused, "adapted": adapted}


def train(config: TrainConfig, data: str | os.PathLike, output_dir: str | os.PathLike, *, resume: bool = False,
          allow_config_change: bool = False, init: str | os.PathLike | None = None, device: str = "cpu",
          skip_bad: bool = False, max_skipped: float = 0.1, progress: bool = True,
          pixels: Mapping[str, Any] | None = None) -> Path:
    """Train and return the path of ``model_final.pt`` (which ``load_model`` reads).

    The model takes the images as DATA.yaml describes them (``adopt_images``); ``pixels``
    (``intensity`` / ``window``, the command line's) win over the file's.

    The output folder is locked for the run's duration (one writer per folder). ``resume``
    continues from ``checkpoints/last.pt`` with the settings the run started with, unless
    ``allow_config_change``; ``skip_bad`` drops unreadable samples up to ``max_skipped`` of them.
    """
    config.validate()  # a bad setting fails now, not after the data is read or the model trained
    if not 0 <= max_skipped <= 1:
        raise ConfigError(f"max_skipped must be a fraction in [0, 1], got {brief(max_skipped)}")
    resolve_device(device)
    multi = dist.init_from_env(device)
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device.startswith("cuda") and multi
                       else device)
    out = Path(output_dir)
    try:
        with folder_lock(out, "training run") if dist.is_main() else contextlib.nullcontext(out):
            return _train_locked(config, data, out, dev, multi, resume=resume, allow_config_change=allow_config_change,
                                 init=init, skip_bad=skip_bad, max_skipped=max_skipped, progress=progress,
                                 pixels=pixels)
    finally:
        dist.cleanup()


def _train_locked(config: TrainConfig, data: str | os.PathLike, out: Path, dev: torch.device, multi: bool, *,
                  resume: bool, allow_config_change: bool, init: str | os.PathLike | None, skip_bad: bool,
                  max_skipped: float, progress: bool, pixels: Mapping[str, Any] | None = None) -> Path:
    ckpt_dir = out / "checkpoints"
    if dist.is_main():
        removed = remove_stale_temp_files(ckpt_dir) + remove_stale_temp_files(out)
        if removed:
            logger.info("removed %d temporary files an interrupted write left in %s", removed, out)
    data_config = for_model(load_data_config(data), config.model)  # Cityscapes: the class set the model learns
    config, data_config = adopt_images(config, data_config, pixels)
    train_split = build_split(data_config, "train", skip_bad=skip_bad, pixels=config.model.pixels)
    val_split = build_split(data_config, "val", skip_bad=skip_bad, pixels=config.model.pixels) \
        if "val" in data_config.splits else None
    config = adopt_dataset(config, train_split, data_config.format).validate()

    torch.manual_seed(config.seed)
    model = build_model(config.model).to(dev)
    last = ckpt_dir / "last.pt"
    state = load_training_state(last) if resume and last.exists() else None
    changes = check_resume(state["train_config"], to_dict(config), last, allow_change=allow_config_change) \
        if state is not None else []
    if state is None:  # a resumed run's checkpoint holds every weight; --init may replace the backbone's
        load_backbone_weights(model.backbone, config.model.backbone)
    if init is not None and state is None:
        _initialise_and_report(model, init)
    trainer = _Trainer(config, model, dev, multi)
    start_iter = trainer.restore(state, last, changes) if state is not None else 0
    if resume and state is None:
        logger.info("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    guard = SkipGuard(enabled=skip_bad, limit=max_skipped, first_iteration=start_iter)
    guard.check_split(train_split)
    if dist.is_main():
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    sampler, loader = _data_loader(config, train_split, start_iter)
    run_logger = RunLogger(out, start_iter, config.max_iter, enabled=dist.is_main(), progress=progress)
    batches = iter(loader)
    model.train()
    try:
        for it in range(start_iter, config.max_iter):
            t0 = time.perf_counter()
            totals, grad_norm = trainer.step(batches, it, ckpt_dir, guard)
            done = it + 1
            base_lr = max(g["lr"] for g in trainer.optimizer.param_groups)  # the non-backbone learning rate
            run_logger.step(done, sum(totals.values()) if totals else None, totals, base_lr, grad_norm,
                            time.perf_counter() - t0, config.log_period)
            if done % config.checkpoint_period == 0 or done == config.max_iter:
                trainer.save(ckpt_dir, done)
            if val_split is not None and config.eval_period and done % config.eval_period == 0 \
                    and done != config.max_iter:
                _evaluate_and_log(model, val_split, data_config.format, run_logger, done)
        final = out / "model_final.pt"
        if dist.is_main():
            save_model(model, final, config.model)
            if val_split is not None:
                metrics = _evaluate_and_log(model, val_split, data_config.format, run_logger, config.max_iter)
                (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=1))
        dist.barrier()
    finally:
        run_logger.close()
    summary = guard.summary()
    if summary and dist.is_main():
        print(summary, file=sys.stderr)  # on its own line, after the progress bar is gone
    return final


class _Trainer:
    """The model with its loss, optimiser, schedule and mixed-precision state: one ``step`` is
    one optimiser update over ``grad_accum`` micro-batches; ``save`` / ``restore`` round-trip
    everything a resumed run needs to continue bit for bit."""

    def __init__(self, config: TrainConfig, model: torch.nn.Module, device: torch.device, multi: bool) -> None:
        self.config, self.model, self.device, self.multi = config, model, device, multi
        self.criterion = build_criterion(config.model).to(device)
        self.optimizer = build_optimizer(model, config.solver)
        self.scheduler = build_scheduler(self.optimizer, config.solver, config.max_iter)
        self.autocast, self.scaler = _amp_context(config.solver.amp, device)
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if multi:
            if config.model.backbone.norm == "SyncBN" and device.type == "cuda":
                # the converted modules share their Parameters with the old ones: the optimiser stays valid
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        self.forward: torch.nn.Module = self.ddp if self.ddp is not None else model

    def restore(self, state: dict, path: Path, changes: list[str]) -> int:
        """Continue from a training checkpoint. With the same config every state is restored bit
        for bit; with an allowed change, the optimiser's and schedule's settings are the new ones."""
        try:
            load_state_strict(self.model, state["model"], str(path))
        except CheckpointError as e:
            raise architecture_error(path, changes, str(e)) from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: its optimizer state does not fit the new solver settings ({e}); "
                                  "train into a new --output folder, or start from its weights with --init") from None
        if changes:
            self._apply_new_solver()
            logger.warning("resuming %s with changed settings: %s", path, "; ".join(changes))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        logger.info("resumed from %s at iteration %d", path, int(state["iteration"]))
        return int(state["iteration"])

    def _apply_new_solver(self) -> None:
        """After loading an old optimiser/schedule state: the new config's learning rates, weight
        decays and schedule, at the restored iteration."""
        fresh = build_optimizer(self.model, self.config.solver)
        schedule = build_scheduler(fresh, self.config.solver, self.config.max_iter)
        step = self.scheduler.last_epoch
        self.scheduler.lr_lambdas = schedule.lr_lambdas
        self.scheduler.base_lrs = [g["initial_lr"] for g in fresh.param_groups]
        for group, new in zip(self.optimizer.param_groups, fresh.param_groups):
            group["initial_lr"], group["weight_decay"] = new["initial_lr"], new["weight_decay"]
            group["lr"] = new["initial_lr"] * schedule.lr_lambdas[0](step)

    def save(self, ckpt_dir: Path, done: int) -> None:
        """``last.pt`` always, a numbered copy on the period; atomic writes, so a crash mid-write
        leaves the previous checkpoint intact."""
        if dist.is_main():
            parts = dict(model=self.model, config=self.config, optimizer=self.optimizer, scheduler=self.scheduler,
                         scaler=self.scaler, iteration=done)
            save_training_state(ckpt_dir / "last.pt", **parts)
            if done != self.config.max_iter:
                save_training_state(ckpt_dir / f"model_{done:07d}.pt", **parts)
                prune_checkpoints(ckpt_dir, self.config.keep_checkpoints)
        dist.barrier()

    def step(self, batches: Iterator[tuple[list[TrainSample], list[LoadFailure]]], it: int, ckpt_dir: Path,
             guard: SkipGuard) -> tuple[dict[str, float], float]:
        """One update; returns the loss terms (empty when no sample loaded) and the gradient
        norm before clipping. Unreadable samples go to ``guard``, which stops the run past its bound."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        drawn, failures = 0, []
        for micro in range(cfg.grad_accum):
            samples, failed = next(batches)
            drawn += len(samples) + len(failed)
            failures += failed
            # DDP all-reduces gradients in every backward; with accumulation only the last micro-batch
            # needs it (the earlier ones add into .grad locally), so the others run under no_sync().
            sync = micro == cfg.grad_accum - 1 or not self.multi
            with (self.ddp.no_sync() if self.ddp is not None and not sync else contextlib.nullcontext()):
                if not samples:
                    if self.multi:
                        self._idle_backward()  # the other processes wait for this one's gradients
                    continue
                pixels, targets = prepare_batch(samples, cfg.model.pixels, self.device)
                with self.autocast:
                    output = self._forward(pixels, it)
                losses = self.criterion(output, targets, generators=loss_generators(samples, cfg.seed, self.device))
                loss = sum(losses.values()) / cfg.grad_accum
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
        guard.update(it + 1, drawn, failures)
        total = sum(totals.values())
        # Every process votes: if one saw a non-finite loss, all stop at the same iteration (one
        # process raising alone would leave the others waiting in the next all-reduce forever).
        finite = torch.tensor([1.0 if math.isfinite(total) else 0.0])
        if float(dist.all_reduce_sum(finite)) < dist.world_size():
            raise TrainingError(
                f"non-finite loss at iteration {it + 1}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in totals.items() if not math.isfinite(v))
                + f"; the last good checkpoint is kept in {ckpt_dir} (try a lower solver.base_lr)")
        if self.scaler is not None:
            # fp16 gradients are scaled up to avoid underflow; the clipping threshold (0.01 of the
            # full-model norm) is meant for true gradients, so unscale before measuring the norm.
            self.scaler.unscale_(self.optimizer)
        grad_norm = clip_gradients(self.model, cfg.solver.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return totals, grad_norm

    def _forward(self, pixels: torch.Tensor, it: int) -> Any:
        """The model on one micro-batch; a batch too small for its norms is the data's problem:
        a single image padded to one stride leaves one value per group at the coarsest level."""
        try:
            return self.forward(pixels)
        except ValueError as e:
            if "Expected more than 1 value per channel" not in str(e):
                raise
            h, w = pixels.shape[-2:]
            raise TrainingError(
                f"iteration {it + 1}: a batch of {pixels.shape[0]} image(s) padded to {h}x{w} px is too small for "
                f"this model (its coarsest feature map would be 1 value per norm group); use larger images, a crop "
                f"(input.augmentation lsj or semantic pads to input.crop_size) or a batch size > 1") from None

    def _idle_backward(self) -> None:
        """A zero-valued backward through the model for a process whose micro-batch is empty
        (every sample skipped), so that the gradient all-reduce of the others does not hang."""
        d = self.config.model.pixels.size_divisibility
        output = self.forward(torch.zeros((1, 3, 2 * d, 2 * d), device=self.device))
        (output.class_logits.sum() * 0.0 + output.mask_logits.sum() * 0.0).backward()


def _initialise_and_report(model: torch.nn.Module, init: str | os.PathLike) -> None:
    report = initialise_from(model, init)
    logger.info("initialised from %s: %d tensors kept (%d adapted to the input channels: %s), %d re-initialised "
                "(%s), %d unused", init, len(report["kept"]), len(report["adapted"]),
                ", ".join(report["adapted"]) or "none", len(report["reinitialised"]),
                ", ".join(sorted({k.rsplit(".", 1)[0] for k in report["reinitialised"]})) or "none",
                len(report["unused"]))


def _data_loader(config: TrainConfig, split: DatasetSplit, start_iter: int
                 ) -> tuple[IterationBatchSampler, torch.utils.data.DataLoader]:
    """Batches indexed by iteration, sharded per rank, so a resumed run sees the same samples; the
    split is fed as its format's official mapper feeds it (images without a usable annotation
    dropped when ``input.filter_empty``, see ``build_training_set``)."""
    dataset = build_training_set(split, config.input, seed=config.seed)
    sampler = IterationBatchSampler(len(dataset), batch_size=config.batch_size, grad_accum=config.grad_accum,
                                    rank=dist.rank(), world=dist.world_size(), seed=config.seed,
                                    start_iter=start_iter, max_iter=config.max_iter)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler,
        collate_fn=collate, num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
        generator=torch.Generator().manual_seed(config.seed),  # never draws from the global RNG
    )
    return sampler, loader


def _evaluate_and_log(model: Mask2Former, split: DatasetSplit, data_format: str, run_logger: RunLogger,
                      iteration: int) -> dict[str, float]:
    if not dist.is_main():
        return {}
    model.eval()
    metrics = evaluate(model, split, tasks_for(data_format, split.categories))
    model.train()
    run_logger.metrics(iteration, metrics)
    return metrics
