"""compare end to end on a tiny synthetic set: every model scored, report written with provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mask2former.compare.baselines import build_deeplab, build_mask_rcnn, heuristic_panoptic
from mask2former.structures import InstanceResult


def test_heuristic_merge_pastes_instances_then_stuff():
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, :5, :5] = True
    masks[1, :4, :4] = True  # hidden by instance 0: skipped (overlap > 0.5)
    masks[2, 6:, 6:] = True
    inst = InstanceResult(masks=masks, scores=torch.tensor([0.9, 0.8, 0.3]), labels=torch.tensor([0, 0, 1]),
                          boxes=torch.zeros(3, 4))
    semantic = torch.full((10, 10), 2)
    semantic[8:, :] = 3
    result = heuristic_panoptic(inst, semantic, [True, True, False, False], stuff_area_threshold=15)
    ids = result.segments
    assert [(s.label, s.isthing) for s in result.segments_info] == [(0, True), (2, False), (3, False)]
    assert int((ids == 1).sum()) == 25  # instance 0; instance 2 below the score threshold
    assert int((ids == 0).sum()) == 0


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_baseline_width_256_is_torchvisions_standard_and_narrower_widths_run():
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    standard = MaskRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                          norm_layer=torch.nn.BatchNorm2d), 4)  # trained from scratch: BN trains
    assert _params(build_mask_rcnn(3, min_size=64, max_size=64, backbone="resnet18")) == _params(standard)
    narrow = build_mask_rcnn(3, min_size=64, max_size=64, backbone="resnet18", width=32).eval()
    assert narrow.backbone.out_channels == 32 and _params(narrow) < _params(standard)
    with torch.no_grad():
        out = narrow([torch.rand(3, 64, 80)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"}

    deeplab = build_deeplab(5, backbone="resnet18", width=32).eval()
    assert deeplab.classifier[0].project[0].out_channels == 32
    with torch.no_grad():
        assert deeplab(torch.rand(1, 3, 64, 64))["out"].shape == (1, 5, 64, 64)
    assert _params(build_deeplab(5, backbone="resnet50", width=64)) < _params(build_deeplab(5, backbone="resnet50"))


@pytest.mark.slow
def test_compare_runs_and_reports(tmp_path):
    from mask2former.compare.run import compare
    from mask2former.data.synthetic import write_synthetic
    from mask2former.presets import training_recipe

    data = write_synthetic(tmp_path / "data", num_train=6, num_val=2, seed=1)
    config = training_recipe("tiny")
    config.max_iter, config.batch_size = 2, 2
    config.solver.base_lr = 3e-4
    report = compare(data, tmp_path / "out", config=config, baseline_backbone="resnet18", progress=False,
                     num_examples=2, command="test")
    text = report.read_text()
    # baseline width "auto": the tiny preset's pixel-decoder width, 32
    for name in ("Mask2Former", "Mask R-CNN (resnet18 FPN, width 32)", "DeepLabV3 (resnet18, width 32)",
                 "heuristic merge"):
        assert name in text
    for heading in ("## Summary", "## Panoptic", "## Instance", "## Semantic", "## Cost"):
        assert heading in text
    assert str(data.resolve()) in text and "| iterations | 2 |" in text  # provenance with every number
    assert "| model | PQ | mask AP | mIoU | params (M) | GFLOPs | latency (ms) | peak memory (MB) |" in text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # the baselines learn at Mask2Former's own rate unless told otherwise
    assert "adamw lr 0.0003," in results["provenance"]["baselines"]
    # Mask2Former was trained here, so no training time is unknown
    assert "unknown training time" not in text
    m2f = results["models"][0]
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(m2f["metrics"])
    assert all(np.isfinite(m["cost"]["latency_ms"]) for m in results["models"])
    for png in ("accuracy_vs_latency.png", "examples_panoptic.png", "per_class_semantic.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000
