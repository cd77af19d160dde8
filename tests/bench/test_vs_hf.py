"""Beside the HF port: the same weights give the same logits, and every stage is timed on both."""

from __future__ import annotations

import pytest

from mask2former import get_preset
from mask2former.bench.stages import STAGES
from mask2former.bench.vs_hf import format_side_by_side, side_by_side

pytest.importorskip("transformers")


@pytest.mark.parametrize("preset", ["tiny", "tiny_resnet"])
def test_side_by_side_times_every_stage_of_the_same_model(preset):
    result = side_by_side(get_preset(preset), (64, 96), runs=1, train=True)
    assert result.max_abs_diff < 1e-4
    assert set(result.hf) == set(result.ours) == {*STAGES, "total"}
    assert result.ours["total"] == pytest.approx(sum(result.ours[s] for s in STAGES))
    assert result.hf_train_s is not None and result.our_train_s is not None and result.our_train_s > 0
    assert result.hf_peak_mb > 0 and result.our_peak_mb > 0
    lines = format_side_by_side("64x96", result)
    assert lines[0].startswith("64x96") and any(line.startswith("  | total |") for line in lines)
    assert any(line.startswith("  | training step |") for line in lines) and "peak tensor memory" in lines[-1]
