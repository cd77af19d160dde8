"""Cost of a model on CPU: parameters, FLOPs, latency (median) and peak memory of one call."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass
class Cost:
    params_m: float  # millions of parameters
    gflops: float  # matmul/conv FLOPs counted by torch's FlopCounterMode, one call
    latency_ms: float  # median wall time of one call
    peak_memory_mb: float  # peak tensor memory of one call, weights excluded


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ side logs its start, stop and a failed GPU probe straight to file
    descriptor 2; point that at /dev/null while it runs (``fn`` has already run cleanly once)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory(fn: Callable[[], object]) -> float:
    """Peak of the tensor memory (MB) that ``fn`` holds at once: activations and temporaries,
    weights excluded, replayed from the allocations and frees PyTorch's profiler records.

    Why not the resident set size: after a warm-up (or a training run in the same process) the
    allocator reuses memory it already holds, so RSS barely moves and the peak reads as zero."""
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # allocations are charged to the op that made them, frees outside ops are "[memory]" events
    changes = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events())
    current = peak = 0
    for _, delta in changes:
        current += delta
        peak = max(peak, current)
    return peak / 2**20


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
