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
    assert results["provenance"]["baselines"].endswith("adamw lr 0.0003")
    # no --backbone-weights: every model starts from random weights, and the report says so
    assert {m["backbone_start"] for m in results["models"]} == {"random initialisation"}
    # Mask2Former was trained here, so no training time is unknown
    assert "unknown training time" not in text
    m2f = results["models"][0]
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(m2f["metrics"])
    assert all(np.isfinite(m["cost"]["latency_ms"]) for m in results["models"])
    for png in ("accuracy_vs_latency.png", "examples_panoptic.png", "per_class_semantic.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


# ----------------------------------------------------------------------------- the same backbone start


def _resnet18_file(path):
    """A random torchvision ResNet-18 (random BN statistics too) saved as a state dict, and the
    model itself for reference outputs."""
    import torchvision

    net = torchvision.models.resnet18(weights=None).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), path)
    return net


def test_baselines_start_from_the_resnet_file(tmp_path):
    from mask2former.backbone_weights import read_backbone_weights

    net = _resnet18_file(tmp_path / "resnet18.pth")
    state = read_backbone_weights(tmp_path / "resnet18.pth").state
    det = build_mask_rcnn(3, min_size=64, max_size=64, backbone="resnet18", width=32, backbone_state=state).eval()
    seg = build_deeplab(5, backbone="resnet18", width=32, backbone_state=state).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        features = det.backbone.body(x)
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        for i, layer in enumerate((net.layer1, net.layer2, net.layer3, net.layer4)):
            y = layer(y)
            assert torch.allclose(features[str(i)], y, atol=1e-5), i
        assert torch.allclose(seg.backbone(x)["out"], y, atol=1e-5)
    # torchvision's own ResNet-50 builders (DeepLabV3's dilated one too) take the same tensors
    r50 = torchvision_resnet50_state()
    det50 = build_mask_rcnn(3, min_size=64, max_size=64, backbone="resnet50", backbone_state=r50)
    seg50 = build_deeplab(5, backbone="resnet50", width=32, backbone_state=r50)
    for body in (det50.backbone.body, seg50.backbone):
        assert torch.equal(body.layer4[2].bn3.running_var, r50["layer4.2.bn3.running_var"])
        assert torch.equal(body.layer3[5].conv2.weight, r50["layer3.5.conv2.weight"])


def torchvision_resnet50_state() -> dict[str, torch.Tensor]:
    import torchvision

    state = torchvision.models.resnet50(weights=None).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    state["layer4.2.bn3.running_var"].uniform_(0.5, 2.0)
    return state


def test_the_baselines_say_why_they_start_from_random_weights(tmp_path):
    from mask2former import build_model, get_preset
    from mask2former.backbone_weights import read_backbone_weights
    from mask2former.compare.run import _baseline_start

    assert _baseline_start(None, "resnet50") == ("random initialisation", None)
    swin = build_model(get_preset("tiny")).backbone.state_dict()
    swin = {k: v for k, v in swin.items() if not k.startswith("norm")}
    torch.save({"model": swin}, tmp_path / "swin_tiny.pth")
    start, state = _baseline_start(read_backbone_weights(tmp_path / "swin_tiny.pth"), "resnet50")
    assert state is None
    assert start == "random initialisation (swin_tiny.pth is a swin file; the baselines' resnet50 cannot use it)"
    _resnet18_file(tmp_path / "resnet18.pth")
    weights = read_backbone_weights(tmp_path / "resnet18.pth")
    start, state = _baseline_start(weights, "resnet50")
    assert state is None and start == "random initialisation (resnet18.pth is a ResNet-18; the baselines use resnet50)"
    start, state = _baseline_start(weights, "resnet18")
    assert state is weights.state and start == f"{tmp_path / 'resnet18.pth'} (torchvision / timm ResNet)"


def test_compare_starts_both_sides_from_the_same_file_and_says_so(tmp_path, monkeypatch):
    """Mask2Former's backbone and both baselines' ResNets hold the file's tensors when training
    starts (captured as each is built), and every model's row of the report names the file."""
    import mask2former.compare.run as compare_run
    import mask2former.engine.train as engine_train
    from mask2former.benchmark import Cost
    from mask2former.compare.run import compare
    from mask2former.data.synthetic import write_synthetic
    from mask2former.presets import training_recipe

    net = _resnet18_file(tmp_path / "resnet18.pth")
    starts: dict[str, dict[str, torch.Tensor]] = {}

    def capture(name, build, body):
        def wrapped(*args, **kwargs):
            model = build(*args, **kwargs)
            starts[name] = {k: v.clone() for k, v in body(model).state_dict().items()}
            return model
        return wrapped

    def load_and_capture(backbone, config):
        loaded = real_load(backbone, config)
        starts["Mask2Former"] = {k: v.clone() for k, v in backbone.state_dict().items()}
        return loaded

    real_load = engine_train.load_backbone_weights
    monkeypatch.setattr(engine_train, "load_backbone_weights", load_and_capture)
    # the cost measurements (FLOPs, 5 timed runs, the memory profiler) are not this test's subject
    monkeypatch.setattr(compare_run, "measure", lambda model, call: Cost(1.0, 1.0, 1.0, 1.0))
    monkeypatch.setattr(compare_run, "build_mask_rcnn",
                        capture("Mask R-CNN", build_mask_rcnn, lambda m: m.backbone.body))
    monkeypatch.setattr(compare_run, "build_deeplab", capture("DeepLabV3", build_deeplab, lambda m: m.backbone))

    data = write_synthetic(tmp_path / "data", num_train=4, num_val=1, seed=1, sizes=[(64, 80)])
    config = training_recipe("tiny_resnet")
    config.max_iter, config.batch_size = 1, 2
    config.model.backbone.weights = str(tmp_path / "resnet18.pth")
    report = compare(data, tmp_path / "out", config=config, progress=False, num_examples=1, command="test")

    file_state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    assert set(starts) == {"Mask2Former", "Mask R-CNN", "DeepLabV3"}
    for name, state in starts.items():
        for key, value in file_state.items():
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(state[key], value), (name, key)
    described = f"{tmp_path / 'resnet18.pth'} (torchvision / timm ResNet)"
    text = report.read_text()
    assert "| model | weights | backbone start | training time (s) |" in text
    for name in ("Mask2Former", "Mask R-CNN (resnet18 FPN, width 32)", "DeepLabV3 (resnet18, width 32)",
                 "Mask R-CNN + DeepLabV3 (heuristic merge)"):
        assert any(line.startswith(f"| {name} |") and f"| {described} |" in line for line in text.splitlines()), name
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {m["backbone_start"] for m in results["models"]} == {described}
