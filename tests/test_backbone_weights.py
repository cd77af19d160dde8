"""Backbone weights from the files people have: each layout, built from random weights and saved in
each file format, loads into our backbone and gives the source model's stage outputs (not merely
"the keys loaded"); wrong files and an empty cache fail naming what was expected."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from mask2former.backbone_weights import load_backbone_weights, locate_backbone_weights, read_backbone_weights
from mask2former.build import build_backbone
from mask2former.config import BackboneConfig, ModelConfig
from mask2former.errors import CheckpointError
from mask2former.presets import get_preset

Stages = Callable[[torch.Tensor], list[torch.Tensor]]
State = dict[str, torch.Tensor]
TOLERANCE = 1e-5


# ----------------------------------------------------------------------------- sources


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every norm's affine and running statistics random too, so a statistic that did not reach the
    frozen BN buffers (or a norm left at its initialisation) shows in the features."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.LayerNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.1)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _torchvision_resnet(depth: int) -> tuple[State, Stages]:
    net = _randomise(getattr(torchvision.models, f"resnet{depth}")(weights=None))

    def stages(x: torch.Tensor) -> list[torch.Tensor]:
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        outs = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    return net.state_dict(), stages


# detectron2's names for torchvision's, from the documented key patterns: the stem's
# conv1 / bn1 / fc under "stem.", layer{s} -> res{s+1}, bn{k} -> conv{k}.norm, downsample -> shortcut
_D2_RENAMES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"^conv1\.", "stem.conv1."), (r"^bn1\.", "stem.conv1.norm."), (r"^fc\.", "stem.fc."),
    (r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}."), (r"\.bn(\d)\.", r".conv\1.norm."),
    (r"\.downsample\.0\.", ".shortcut."), (r"\.downsample\.1\.", ".shortcut.norm."),
]


def _detectron2_names(state: State) -> State:
    out = {}
    for key, value in state.items():
        for pattern, repl in _D2_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _swin_config(window: int) -> BackboneConfig:
    b = get_preset("tiny").backbone
    b.window_size = window
    return b


def _official_swin(window: int) -> tuple[State, Stages]:
    """Our own Swin, saved under the Swin authors' names: no norm0..3 (Mask2Former's, left at their
    initialisation in both), plus the classifier's norm / head and the derived buffers."""
    config = ModelConfig(backbone=_swin_config(window))
    net = _randomise(build_backbone(config))
    for name, p in net.named_parameters():
        if "relative_position_bias_table" in name:
            torch.nn.init.normal_(p)
    for i in range(4):  # the output norms are not in the file: keep them at their initialisation
        getattr(net, f"norm{i}").reset_parameters()
    state = {k: v for k, v in net.state_dict().items() if not re.match(r"norm\d\.", k)}
    width = net.out_channels["res5"]
    state.update({"norm.weight": torch.rand(width), "norm.bias": torch.rand(width),
                  "head.weight": torch.randn(10, width), "head.bias": torch.randn(10)})
    for i, stage in enumerate(net.layers):
        for j, block in enumerate(stage.blocks):
            state[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = block.attn.relative_position_index.clone()
            if j % 2:
                state[f"layers.{i}.blocks.{j}.attn_mask"] = torch.zeros(4, window**2, window**2)
    return state, lambda x: list(net(x).values())


def _timm_swin() -> tuple[State, Stages]:
    """timm's Swin at the tiny preset's size; ``always_partition`` keeps the window and shift on the
    7x7 last stage, as the reference's Swin does (timm otherwise shrinks them)."""
    timm = pytest.importorskip("timm")
    kwargs = dict(pretrained=False, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), num_classes=10,
                  always_partition=True)
    source = _randomise(timm.create_model("swin_tiny_patch4_window7_224", **kwargs))
    features = timm.create_model("swin_tiny_patch4_window7_224", features_only=True, **kwargs).eval()
    state = source.state_dict()
    features.load_state_dict({re.sub(r"^layers\.(\d+)\.", r"layers_\1.", k): v for k, v in state.items()
                              if not k.startswith(("norm.", "head."))})
    ours = build_backbone(ModelConfig(backbone=_swin_config(7)))

    def stages(x: torch.Tensor) -> list[torch.Tensor]:  # timm's NHWC stage outputs through our output norms
        return [getattr(ours, f"norm{i}")(f).permute(0, 3, 1, 2) for i, f in enumerate(features(x))]

    return state, stages


def _timm_resnet(depth: int) -> tuple[State, Stages]:
    timm = pytest.importorskip("timm")
    source = _randomise(timm.create_model(f"resnet{depth}", pretrained=False))
    features = timm.create_model(f"resnet{depth}", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    state = source.state_dict()
    features.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    return state, features.eval()


def _resnet_config(depth: int) -> BackboneConfig:
    return BackboneConfig(name="resnet", depth=depth, norm="FrozenBN")


TV, D2, SWIN, TIMM_SWIN = "torchvision / timm ResNet", "detectron2 ResNet", "official Swin", "timm Swin"
# case -> (source, the backbone config to load it into, input size, the layout it must be recognised as)
CASES: dict[str, tuple[Callable[[], tuple[State, Stages]], BackboneConfig, tuple[int, int], str]] = {
    "torchvision-resnet18": (lambda: _torchvision_resnet(18), _resnet_config(18), (96, 80), TV),
    "torchvision-resnet50": (lambda: _torchvision_resnet(50), _resnet_config(50), (96, 80), TV),
    "detectron2-resnet18": (lambda: _d2(_torchvision_resnet(18)), _resnet_config(18), (96, 80), D2),
    "detectron2-resnet50": (lambda: _d2(_torchvision_resnet(50)), _resnet_config(50), (96, 80), D2),
    "official-swin-window7": (lambda: _official_swin(7), _swin_config(7), (100, 76), SWIN),
    "official-swin-window12": (lambda: _official_swin(12), _swin_config(12), (100, 76), SWIN),
    "timm-swin": (_timm_swin, _swin_config(7), (224, 224), TIMM_SWIN),
    "timm-resnet18": (lambda: _timm_resnet(18), _resnet_config(18), (96, 80), TV),
    "timm-resnet50": (lambda: _timm_resnet(50), _resnet_config(50), (96, 80), TV),
}


def _d2(source: tuple[State, Stages]) -> tuple[State, Stages]:
    return _detectron2_names(source[0]), source[1]


# ----------------------------------------------------------------------------- file formats


def _save(state: State, path: Path, fmt: str) -> Path:
    """``pth``: a torch state dict ({"model": ...} for the Swin authors' files); ``pkl``: detectron2's
    {"model": numpy arrays, "__author__", "matching_heuristics"}; ``pkl-tensors``: the same with torch
    tensors, as the official Swin converter pickles them; ``safetensors``: as HuggingFace stores timm's."""
    if fmt == "pth":
        torch.save({"model": state} if "patch_embed.proj.weight" in state else state, path.with_suffix(".pth"))
        return path.with_suffix(".pth")
    if fmt.startswith("pkl"):
        model = {k: v if fmt == "pkl-tensors" else v.numpy() for k, v in state.items()}
        path.with_suffix(".pkl").write_bytes(pickle.dumps({"model": model, "__author__": "third_party",
                                                           "matching_heuristics": True}))
        return path.with_suffix(".pkl")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path.with_suffix(".safetensors")))
    return path.with_suffix(".safetensors")


@pytest.fixture(scope="module")
def sources() -> dict[str, tuple[State, Stages]]:
    torch.manual_seed(0)
    return {name: make() for name, (make, *_) in CASES.items()}


def _max_difference(ours: dict[str, torch.Tensor], theirs: list[torch.Tensor]) -> float:
    assert [tuple(ours[f"res{i + 2}"].shape) for i in range(4)] == [tuple(t.shape) for t in theirs]
    return max(float((ours[f"res{i + 2}"] - t).abs().max()) for i, t in enumerate(theirs))


FORMATS = ("pth", "pkl", "safetensors")
# every layout in every format; the ResNet-50s (bottleneck blocks) once each, in their usual format
LOADS = [(case, fmt) for case in CASES if "resnet50" not in case for fmt in FORMATS] + [
    ("torchvision-resnet50", "pth"), ("detectron2-resnet50", "pkl"), ("timm-resnet50", "safetensors")]


@pytest.mark.parametrize(("case", "fmt"), LOADS)
def test_features_equal_the_source_models(case, fmt, sources, tmp_path, caplog):
    state, stages = sources[case]
    _, config, (h, w), layout = CASES[case]
    config = replace(config, weights=str(_save(state, tmp_path / case, fmt)))
    backbone = build_backbone(ModelConfig(backbone=config)).eval()
    with caplog.at_level("INFO", logger="mask2former"):
        loaded = load_backbone_weights(backbone, config)
    assert loaded is not None and loaded.layout.name == layout
    assert f"layout {layout}: {len(loaded.state)} tensors loaded into the backbone" in caplog.text
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        difference = _max_difference(backbone(x), stages(x))
    assert difference <= TOLERANCE, f"{case} {fmt}: {difference}"


def test_the_official_swin_converter_pickles_torch_tensors_and_they_load(sources, tmp_path):
    """Mask2Former's convert-pretrained-swin-model-to-d2.py pickles the torch tensors themselves
    (plain pickle): read through an unpickler that rebuilds them with ``weights_only``."""
    state, stages = sources["official-swin-window7"]
    config = replace(_swin_config(7), weights=str(_save(state, tmp_path / "swin_tiny", "pkl-tensors")))
    backbone = build_backbone(ModelConfig(backbone=config)).eval()
    load_backbone_weights(backbone, config)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert _max_difference(backbone(x), stages(x)) <= TOLERANCE


def test_frozen_bn_statistics_reach_the_buffers(sources, tmp_path):
    state, _ = sources["detectron2-resnet18"]
    config = replace(_resnet_config(18), weights=str(_save(state, tmp_path / "R-18", "pkl")))
    backbone = build_backbone(ModelConfig(backbone=config))
    load_backbone_weights(backbone, config)
    assert type(backbone.layer1[0].bn1).__name__ == "FrozenBN"
    assert torch.equal(backbone.layer1[0].bn1.running_var, state["res2.0.conv1.norm.running_var"])
    assert torch.equal(backbone.layer2[0].downsample[1].running_mean, state["res3.0.shortcut.norm.running_mean"])


# ----------------------------------------------------------------------------- wrong files


def _load(path: Path, config: BackboneConfig) -> None:
    config = replace(config, weights=str(path))
    load_backbone_weights(build_backbone(ModelConfig(backbone=config)), config)


def _expects_every_layout(message: str) -> None:
    for pattern in ("conv1.weight, bn1.", "stem.conv1.weight, stem.conv1.norm.", "res2.0.shortcut",
                    "patch_embed.proj.weight, layers.0.blocks.0.attn.relative_position_bias_table",
                    "layers.0.downsample.*", "head.fc.*"):
        assert pattern in message, pattern


def test_an_unrelated_state_dict_lists_the_expected_key_patterns(tmp_path):
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError) as e:
        _load(tmp_path / "other.pth", _resnet_config(18))
    assert "not backbone weights" in str(e.value) and "decoder.bias, encoder.weight" in str(e.value)
    _expects_every_layout(str(e.value))


def test_a_mask2former_checkpoint_is_refused_pointing_to_init(tmp_path):
    from mask2former import build_model, save_model

    save_model(build_model(get_preset("tiny_resnet")), tmp_path / "ours.pt")
    official = {f"backbone.{k}": v for k, v in _detectron2_names(torchvision.models.resnet18().state_dict()).items()}
    official["sem_seg_head.predictor.query_feat.weight"] = torch.zeros(8, 32)
    _save(official, tmp_path / "model_final_0000", "pkl")
    for path in (tmp_path / "ours.pt", tmp_path / "model_final_0000.pkl"):
        with pytest.raises(CheckpointError) as e:
            _load(path, _resnet_config(18))
        assert "whole Mask2Former checkpoint" in str(e.value) and "--init" in str(e.value)
        _expects_every_layout(str(e.value))


def test_a_window_12_swin_for_a_window_7_backbone_says_so(sources, tmp_path):
    path = _save(sources["official-swin-window12"][0], tmp_path / "swin_window12_384", "pth")
    with pytest.raises(CheckpointError) as e:
        _load(path, _swin_config(7))
    message = str(e.value)
    assert "12x12 windows" in message and "7x7" in message and "not interpolated" in message
    assert "model.backbone.window_size" in message


def test_another_depth_names_the_difference(sources, tmp_path):
    path = _save(sources["torchvision-resnet18"][0], tmp_path / "resnet18", "pth")
    with pytest.raises(CheckpointError, match=r"depth: file 18, model 50 \(model.backbone.depth\)"):
        _load(path, _resnet_config(50))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"model": {"conv1.weight": Payload()}}))
    with pytest.raises(CheckpointError, match="refused to load: the file asks to run builtins.print"):
        read_backbone_weights(tmp_path / "evil.pkl")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="backbone weights not found: .*nowhere.pth"):
        _load(tmp_path / "nowhere.pth", _resnet_config(18))


# ----------------------------------------------------------------------------- imagenet: the local caches


@pytest.fixture
def caches(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Empty torchvision and HuggingFace caches in ``tmp_path``: (checkpoints folder, hub folder)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints", tmp_path / "hf" / "hub"


def test_imagenet_with_empty_caches_names_the_file_and_folders(caches):
    torch_dir, hub_dir = caches
    config = _resnet_config(18)
    config.weights = "imagenet"
    with pytest.raises(CheckpointError) as e:
        locate_backbone_weights(config)
    message = str(e.value)
    assert "resnet18-f37072fd.pth" in message and str(torch_dir) in message
    assert "models--timm--resnet18.tv_in1k" in message and str(hub_dir) in message
    assert "MASK2FORMER_OFFLINE forbids downloading it" in message


def test_imagenet_loads_from_the_torchvision_cache(caches, sources):
    torch_dir, _ = caches
    torch_dir.mkdir(parents=True)
    state, stages = sources["torchvision-resnet18"]
    torch.save(state, torch_dir / "resnet18-f37072fd.pth")
    config = _resnet_config(18)
    config.weights = "imagenet"
    backbone = build_backbone(ModelConfig(backbone=config)).eval()
    assert load_backbone_weights(backbone, config).path == torch_dir / "resnet18-f37072fd.pth"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert _max_difference(backbone(x), stages(x)) <= TOLERANCE


def test_imagenet_loads_timms_file_from_the_huggingface_cache(caches, sources):
    _, hub_dir = caches
    repo = hub_dir / "models--timm--resnet18.tv_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    state, stages = sources["timm-resnet18"]
    save_file(state, str(repo / "snapshots" / "abc123" / "model.safetensors"))
    config = _resnet_config(18)
    config.weights = "imagenet"
    backbone = build_backbone(ModelConfig(backbone=config)).eval()
    assert load_backbone_weights(backbone, config).path == repo / "snapshots" / "abc123" / "model.safetensors"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert _max_difference(backbone(x), stages(x)) <= TOLERANCE


def test_imagenet_22k_picks_the_22k_file_and_unknown_backbones_are_named(caches):
    torch_dir, _ = caches
    torch_dir.mkdir(parents=True)
    for name in ("swin_base_patch4_window12_384.pth", "swin_base_patch4_window12_384_22k.pth"):
        (torch_dir / name).write_bytes(b"")
    swin_b = get_preset("swin_b_in21k_coco_panoptic").backbone
    swin_b.weights = "imagenet-22k"
    assert locate_backbone_weights(swin_b) == torch_dir / "swin_base_patch4_window12_384_22k.pth"
    swin_b.weights = "imagenet"
    assert locate_backbone_weights(swin_b) == torch_dir / "swin_base_patch4_window12_384.pth"
    tiny = get_preset("tiny").backbone
    tiny.weights = "imagenet"
    with pytest.raises(CheckpointError, match="no standard file has this backbone .*swin_tiny_patch4_window7_224"):
        locate_backbone_weights(tiny)


# ----------------------------------------------------------------------------- train: at the start only


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    import yaml

    from mask2former.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    path = write_synthetic(root, num_train=4, num_val=1, seed=0, sizes=[(64, 80)])
    config = yaml.safe_load(path.read_text())
    config.pop("val")
    (root / "train_only.yaml").write_text(yaml.safe_dump(config))
    return root / "train_only.yaml"


def _train(data: Path, out: Path, *extra: str) -> int:
    """One iteration at learning rate 0: the weights a run ends with are those it started from."""
    from mask2former.cli import main

    return main(["-q", "train", "--data", str(data), "--preset", "tiny_resnet", "--output", str(out), "--iters", "1",
                 "--set", "num_workers=0", "solver.base_lr=0.0", *extra])


def test_train_starts_the_backbone_from_the_file_and_resume_does_not_read_it(data, sources, tmp_path):
    from mask2former import load_model

    state, _ = sources["torchvision-resnet18"]
    path = _save(state, tmp_path / "resnet18", "pth")
    assert _train(data, tmp_path / "run", "--backbone-weights", str(path)) == 0
    trained = load_model(tmp_path / "run" / "model_final.pt")
    assert trained.config.backbone.weights == str(path)
    own = trained.backbone.state_dict()
    for key, value in own.items():  # learning rate 0: the backbone is the file, statistics included
        assert torch.equal(value, state[key]), key
    path.unlink()  # resuming takes every weight from the checkpoint, never from the file
    assert _train(data, tmp_path / "run", "--backbone-weights", str(path), "--resume") == 0


def test_the_cli_refuses_a_missing_file_and_init_with_backbone_weights_before_training(data, tmp_path, capsys):
    assert _train(data, tmp_path / "run", "--backbone-weights", str(tmp_path / "nowhere.pth")) == 1
    assert f"backbone weights not found: {tmp_path / 'nowhere.pth'}" in capsys.readouterr().err
    assert _train(data, tmp_path / "run", "--backbone-weights", "x.pth", "--init", "y.pt") == 1
    assert "--init and --backbone-weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_imagenet_means_the_22k_file_for_the_in21k_presets(capsys):
    from mask2former.cli import main

    for preset, expected in (("swin_b_in21k_coco_panoptic", "imagenet-22k"), ("swin_b_coco_panoptic", "imagenet"),
                             ("r50_coco_panoptic", "imagenet")):
        assert main(["train", "--preset", preset, "--backbone-weights", "imagenet", "--print-config"]) == 0
        assert f"    weights: {expected}\n" in capsys.readouterr().out, preset


# ----------------------------------------------------------------------------- RGB stems for N channels


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 7, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_adapting_an_rgb_stem_equals_timms_rule(channels, dtype):
    from mask2former.backbone_weights import adapt_input_conv

    timm_manipulate = pytest.importorskip("timm.models._manipulate")
    weight = torch.randn(64, 3, 7, 7).to(dtype)
    ours = adapt_input_conv(weight, channels)
    theirs = timm_manipulate.adapt_input_conv(channels, weight.clone())
    assert ours.shape == (64, channels, 7, 7) and ours.dtype == dtype
    assert float((ours.float() - theirs.float()).abs().max()) <= 1e-6


@pytest.mark.parametrize("case", ["torchvision-resnet18", "official-swin-window7"])
@pytest.mark.parametrize("channels", [1, 4])
def test_a_backbone_file_loads_into_an_n_channel_stem_adapted(case, channels, sources, tmp_path, caplog):
    from mask2former.backbone_weights import adapt_input_conv
    from mask2former.config import PixelConfig, imagenet_stats

    state, _ = sources[case]
    _, config, (h, w), _ = CASES[case]
    config = replace(config, weights=str(_save(state, tmp_path / case, "pth")))
    mean, std = imagenet_stats(channels)
    backbone = build_backbone(ModelConfig(backbone=config, pixels=PixelConfig(channels=channels, mean=mean, std=std)))
    with caplog.at_level("INFO", logger="mask2former"):
        load_backbone_weights(backbone.eval(), config)
    stem = backbone.stem_weight
    assert torch.equal(backbone.state_dict()[stem], adapt_input_conv(state[stem], channels))
    assert f"adapted the pretrained RGB stem {stem} to {channels} input channel" in caplog.text
    features = backbone(torch.randn(1, channels, h, w))
    assert all(torch.isfinite(f).all() for f in features.values())
    if channels == 1:  # a gray image through the summed filters is the RGB response to that gray, replicated
        rgb = build_backbone(ModelConfig(backbone=config)).eval()
        load_backbone_weights(rgb, config)
        gray = torch.randn(1, 1, h, w, dtype=torch.float64)  # float64: the identity is exact, float32's sums are not
        with torch.no_grad():
            ours, theirs = backbone.double()(gray), rgb.double()(gray.expand(1, 3, h, w))
        assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) < TOLERANCE
