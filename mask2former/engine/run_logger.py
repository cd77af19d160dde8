"""What a training run reports: a progress bar (loss, lr, ETA), ``log.jsonl`` and TensorBoard
scalars, written by the main process only so N processes do not write N copies."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from mask2former.atomic_files import json_safe
from mask2former.progress import Progress

logger = logging.getLogger("mask2former")


class RunLogger:
    """Progress bar (loss, lr, ETA), JSON lines and TensorBoard scalars, on the main process only."""

    def __init__(self, out: Path, start: int, total: int, *, enabled: bool, progress: bool) -> None:
        self.enabled = enabled
        self.bar = self.tb = self.jsonl = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(out / "log.jsonl", "a")  # noqa: SIM115 - open for the whole run
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start or None)
        except ImportError:
            logger.warning("tensorboard is not installed: no TensorBoard scalars (pip install tensorboard)")
        if progress:
            self.bar = Progress(total=total, initial=start, desc="train", unit="it")
        self.window: list[float] = []

    def step(self, iteration: int, total: float | None, losses: dict[str, float], lr: float, grad_norm: float,
             seconds: float, period: int) -> None:
        """Record one iteration; ``total`` is None when every sample of it was skipped."""
        if not self.enabled:
            return
        if total is not None:
            self.window = (self.window + [total])[-20:]
        if self.bar is not None:
            if self.window:
                self.bar.set_postfix(loss=f"{sum(self.window) / len(self.window):.3f}", lr=f"{lr:.2e}")
            self.bar.update(1)
        if (iteration % period == 0 or iteration == 1) and self.jsonl is not None:
            record = {"iteration": iteration, "loss": total, "lr": lr,
                      "grad_norm": grad_norm if math.isfinite(grad_norm) else None, "time": seconds,
                      **{k: v for k, v in losses.items() if "_" not in k.removeprefix("loss_")}}
            self.jsonl.write(json.dumps(record) + "\n")
            self.jsonl.flush()
            if self.tb is not None:
                for k, v in record.items():
                    if k != "iteration" and v is not None:
                        self.tb.add_scalar(f"train/{k}", v, iteration)

    def metrics(self, iteration: int, metrics: dict[str, float]) -> None:
        if not self.enabled or self.jsonl is None:
            return
        self.jsonl.write(json.dumps(json_safe({"iteration": iteration, "eval": metrics})) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float) and math.isfinite(v):
                    self.tb.add_scalar(f"val/{k}", v, iteration)
        summary = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items() if k.count(".") == 1)
        (self.bar.write if self.bar is not None else logger.info)(f"[eval @ {iteration}] {summary}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.jsonl is not None:
            self.jsonl.close()
        self.bar = self.tb = self.jsonl = None
