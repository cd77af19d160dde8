"""Training checkpoints: written atomically, so a crash mid-write never destroys the last good one.

A training checkpoint is our model checkpoint format (``format``/``config``/``model``, which
``load_model`` reads) plus the optimiser, scheduler, grad-scaler and RNG states and the iteration.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.checkpoint import FORMAT, VERSION, CheckpointError, atomic_write
from mask2former.config import to_dict


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, *, model: torch.nn.Module, config: Any, optimizer: torch.optim.Optimizer,
                        scheduler: Any, scaler: Any, iteration: int, extra: dict | None = None) -> None:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "config": to_dict(config.model),
        "train_config": to_dict(config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "iteration": iteration,
        "rng": rng_state(),
        "extra": extra or {},
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states are objects
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read training checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "optimizer" not in state or "iteration" not in state:
        raise CheckpointError(f"{path}: not a training checkpoint (no optimizer state / iteration)")
    return state


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete the oldest periodic checkpoints beyond ``keep`` (``last.pt`` is never touched)."""
    if keep <= 0:
        return
    periodic = sorted(folder.glob("model_[0-9]*.pt"))
    for old in periodic[:-keep]:
        old.unlink(missing_ok=True)
