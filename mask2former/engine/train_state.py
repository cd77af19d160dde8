"""Training checkpoints: written atomically, read without running code, usable as models.

A training checkpoint is our model checkpoint format (``format``/``config``/``model``/``sha256``,
which ``load_model`` reads, so every ``last.pt`` and ``model_XXXXXXX.pt`` is a model you can use)
plus the optimiser, scheduler, grad-scaler and RNG states and the iteration, with a checksum of
its own. Everything inside is tensors and plain values, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.atomic_files import atomic_write
from mask2former.config import TrainConfig, to_dict
from mask2former.errors import CheckpointError
from mask2former.weights import FORMAT, VERSION, digest, read_torch_file, verify_digest

TRAINING_KEYS = ("train_config", "optimizer", "scheduler", "scaler", "iteration", "rng", "extra")


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and numbers (no numpy or Python objects)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, *, model: torch.nn.Module, config: TrainConfig, optimizer: torch.optim.Optimizer,
                        scheduler: Any, scaler: Any, iteration: int, extra: dict | None = None) -> None:
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model_config = to_dict(config.model)
    training = {
        "train_config": to_dict(config),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "iteration": iteration,
        "rng": rng_state(),
        "extra": extra or {},
    }
    state = {"format": FORMAT, "version": VERSION, "config": model_config, "model": weights,
             "sha256": digest({"config": model_config, "model": weights}),
             **training, "training_sha256": digest(training)}
    atomic_write(path, lambda f: torch.save(state, f))


def load_training_state(path: Path) -> dict:
    """A training checkpoint, read with ``weights_only`` and both checksums verified."""
    state = read_torch_file(path)
    if not isinstance(state, dict) or any(key not in state for key in ("model", "config", *TRAINING_KEYS)):
        raise CheckpointError(f"{path}: not a training checkpoint (no optimizer state / iteration)")
    verify_digest(state.get("sha256"), {"config": state["config"], "model": state["model"]}, str(path))
    verify_digest(state.get("training_sha256"), {key: state[key] for key in TRAINING_KEYS}, str(path),
                  "optimizer, schedule and RNG states")
    return state


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete the oldest periodic checkpoints beyond ``keep`` (``last.pt`` is never touched)."""
    if keep <= 0:
        return
    periodic = sorted(folder.glob("model_[0-9]*.pt"))
    for old in periodic[:-keep]:
        old.unlink(missing_ok=True)
