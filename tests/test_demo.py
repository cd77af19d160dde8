"""The demo's headline table shows each reduced precision beside fp32, as a delta."""

from __future__ import annotations

from mask2former.demo import results_table


def test_the_table_shows_reduced_precision_deltas():
    summary = {"iterations": 300, "batch_size": 8, "train_seconds": 330.0,
               "metrics": {"panoptic.PQ": 80.0, "semantic.mIoU": 97.0},
               "reduced_precision_metrics": {"int8": {"panoptic.PQ": 79.5, "semantic.mIoU": 97.25}}}
    lines = results_table(summary).splitlines()
    assert "int8 (delta)" in lines[1]
    assert lines[2].split() == ["PQ", "80.0", "79.5", "(-0.50)"]
    assert lines[3].split() == ["mIoU", "97.0", "97.2", "(+0.25)"]
