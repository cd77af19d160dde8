"""Model cost: the peak-memory replay counts what is held at once, not what was ever allocated."""

from __future__ import annotations

import torch

from mask2former.benchmark import measure, peak_memory


def _held_then_freed() -> torch.Tensor:
    a = torch.ones(1000, 1000)  # 4 MB
    b = torch.ones(2000, 1000)  # 8 MB: 12 MB held here
    del a
    c = torch.ones(500, 1000)  # 2 MB: 10 MB, below the peak
    return b.sum() + c.sum()


def test_peak_memory_is_the_most_held_at_once():
    assert abs(peak_memory(_held_then_freed) - 12e6 / 2**20) < 0.01


def test_peak_memory_does_not_vanish_after_a_warm_up():
    # resident-memory sampling reads ~0 once the allocator has cached the memory; the replay does not
    _held_then_freed()
    assert peak_memory(_held_then_freed) > 11


def test_measure_reports_every_cost():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    x = torch.rand(1, 3, 64, 64)
    cost = measure(model, lambda: model(x), runs=2)
    assert cost.params_m == (3 * 8 * 9 + 8) / 1e6
    assert cost.gflops == 2 * 3 * 8 * 9 * 62 * 62 / 1e9
    assert cost.latency_ms > 0
    assert cost.peak_memory_mb >= 8 * 62 * 62 * 4 / 2**20  # the conv output
