"""Cost of a model on CPU: parameters, FLOPs, latency (median) and peak memory of one call."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Cost:
    params_m: float  # millions of parameters
    gflops: float  # matmul/conv FLOPs counted by torch's FlopCounterMode, one call
    latency_ms: float  # median wall time of one call
    peak_memory_mb: float  # peak resident memory above the level before the call


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        return -1


def peak_memory(fn: Callable[[], object], interval: float = 0.002) -> float:
    """Peak resident set size (MB) above the starting level while ``fn`` runs, sampled by a
    thread (Linux /proc; NaN elsewhere). Covers every allocator, unlike Python-level tracing."""
    start = _rss_bytes()
    if start < 0:
        fn()
        return float("nan")
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak = max(peak, _rss_bytes())
    return (peak - start) / 2**20


def count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def median_latency(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


@torch.inference_mode()
def measure(model: torch.nn.Module, fn: Callable[[], object], *, runs: int = 5) -> Cost:
    """``fn`` runs the model once end to end (pre-processing, forward, post-processing)."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    gflops = count_flops(fn)
    latency = median_latency(fn, runs=runs)
    memory = peak_memory(fn)
    return Cost(params_m=params, gflops=gflops, latency_ms=latency, peak_memory_mb=memory)
