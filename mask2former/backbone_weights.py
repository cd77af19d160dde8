"""Backbone weights from the files people have: ImageNet ResNets and Swins in their common layouts.

``model.backbone.weights`` (``--backbone-weights``) names a file, or ``imagenet`` / ``imagenet-22k``
for the standard file of the backbone (``zoo.BACKBONE_FILES``), looked up in torchvision's and
HuggingFace's local caches; nothing is downloaded. Files are read as data only (``weights_only``
torch files, safetensors, pickles of arrays), recognised by their key names, renamed to our
backbone's names and loaded strictly into the backbone alone: the heads keep their fresh weights.

Layouts: torchvision / timm ResNet (our own names), detectron2's ``R-50.pkl`` (the same weights in
detectron2 names), the Swin authors' files and their detectron2 ``.pkl`` (our names), and timm's Swin
(patch merging at the start of the next stage). Swin's relative-position tables fit one window size
only, so a file of another window is an error, never interpolated.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch._utils
from torch import nn

from mask2former.config import BackboneConfig
from mask2former.convert import ConversionError, backbone_from_state, convert_official_state_dict
from mask2former.errors import CheckpointError, brief
from mask2former.safe_unpickle import RefusedGlobal, _ArraysOnly, refusal
from mask2former.weights import FORMAT, load_state_strict, read_safetensors, read_torch_file
from mask2former.zoo import BACKBONE_FILES, BackboneFile, backbone_files_for

logger = logging.getLogger("mask2former")

KEYWORDS = {"imagenet": "in1k", "imagenet-22k": "in22k"}


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """One way a backbone file names its tensors: how to recognise it, rename it to our names,
    and which of its keys we do not use (the classifier, buffers we derive ourselves)."""

    name: str
    family: str  # "resnet" | "swin"
    markers: tuple[str, ...]  # keys every file of this layout has
    rules: tuple[tuple[str, Callable[[re.Match[str]], str]], ...]  # regex renames to our names, in order
    ignored: str  # regex of keys not used
    patterns: str  # what its keys look like, for error messages


def _merge_at_end(match: re.Match[str]) -> str:
    """timm puts stage i's patch merging at the start of stage i + 1; the official Swin (and we)
    at the end of stage i."""
    return f"layers.{int(match.group(1)) - 1}.downsample."


_SWIN_IGNORED = r"^norm\.|^head\.|relative_position_index$|attn_mask$"
LAYOUTS: tuple[Layout, ...] = (
    Layout("torchvision / timm ResNet", "resnet", ("conv1.weight", "layer1.0.conv1.weight"), (),
           r"^fc\.|num_batches_tracked$",
           "conv1.weight, bn1.{weight,bias,running_mean,running_var}, layer1.0.conv1.weight, layer1.0.bn1.*, "
           "layer2.0.downsample.{0,1}.*, ..., layer4.*; fc.* ignored"),
    Layout("detectron2 ResNet", "resnet", ("stem.conv1.weight", "res2.0.conv1.weight"), (),
           r"^stem\.fc\.|num_batches_tracked$",
           "stem.conv1.weight, stem.conv1.norm.{weight,bias,running_mean,running_var}, res2.0.conv1.weight, "
           "res2.0.conv1.norm.*, res2.0.shortcut.weight, res2.0.shortcut.norm.*, ..., res5.*"),
    Layout("official Swin", "swin", ("patch_embed.proj.weight", "layers.0.downsample.reduction.weight"), (),
           _SWIN_IGNORED,
           "patch_embed.proj.weight, layers.0.blocks.0.attn.relative_position_bias_table, "
           "layers.0.blocks.0.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, layers.0.downsample.*, ..., "
           "norm.*, head.* (norm.* and head.* ignored)"),
    Layout("timm Swin", "swin", ("patch_embed.proj.weight", "layers.1.downsample.reduction.weight"),
           ((r"^layers\.(\d+)\.downsample\.", _merge_at_end),), _SWIN_IGNORED,
           "the official Swin names with the patch merging at the start of the next stage (layers.1.downsample.*"
           " .. layers.3.downsample.*) and head.fc.*"),
)


def expected_layouts() -> str:
    """Every layout's key patterns, for the error a file of another kind gets."""
    return "; ".join(f"{layout.name} ({layout.patterns})" for layout in LAYOUTS)


def _rename(state: Mapping[str, torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """``state`` in our backbone's names (detectron2 names through ``convert``'s table)."""
    if layout.name == "detectron2 ResNet":
        converted = convert_official_state_dict({f"backbone.{k}": v for k, v in state.items()})
        return {k.removeprefix("backbone."): v for k, v in converted.items()}
    out = {}
    for key, value in state.items():
        for pattern, replace in layout.rules:
            key = re.sub(pattern, replace, key)
        out[key] = value
    return out


# ----------------------------------------------------------------------------- reading


_TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"):
        lambda data: torch.load(io.BytesIO(data), map_location="cpu", weights_only=True),
}


class _ArraysOrTensors(_ArraysOnly):
    """The arrays-only unpickler that also admits torch tensors pickled by plain ``pickle``, as
    Mask2Former's ``convert-pretrained-swin-model-to-d2.py`` writes them: a tensor is rebuilt from
    its storage, whose bytes are a torch file read with ``weights_only``."""

    def find_class(self, module: str, name: str) -> Any:
        return _TENSOR_GLOBALS.get((module, name)) or super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    """A ``.pkl`` of arrays or tensors and plain values; anything asking to run code is refused."""
    try:
        return _ArraysOrTensors(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except RefusedGlobal as e:
        raise refusal(str(path), f"{e.module}.{e.name}") from None
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any other unpickling failure means a broken file
        # a tensor's storage that weights_only refused: torch's text would suggest running the file's code
        reason = "a tensor's storage is not plain data" if "Weights only load failed" in str(e) else str(e)[:160]
        raise CheckpointError(f"{path}: cannot read as a pickle ({type(e).__name__}: {reason})") from None


def _read_any(path: Path) -> Any:
    """The file's content by its kind: a HuggingFace snapshot folder, ``.pkl``, ``.safetensors``
    or a torch file (``.pth``, ``.bin``, ``.pt``)."""
    if path.is_dir():
        inside = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
        if inside is None:
            raise CheckpointError(f"{path}: a folder without model.safetensors or pytorch_model.bin")
        path = inside
    if path.suffix == ".pkl":
        return _read_pickle(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    return read_torch_file(path)


def _tensors(data: Any, source: str) -> dict[str, torch.Tensor]:
    """The named tensors of a file's content: the dict itself, or its ``model`` / ``state_dict``
    entry (the Swin authors' files, detectron2's ``.pkl``, training checkpoints)."""
    if isinstance(data, Mapping) and data.get("format") == FORMAT:
        raise CheckpointError(f"{source}: a whole Mask2Former checkpoint, not backbone weights (start from it with "
                              f"--init instead). Expected one of: {expected_layouts()}")
    if isinstance(data, Mapping):
        data = next((data[k] for k in ("model", "state_dict") if isinstance(data.get(k), Mapping)), data)
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{source}: expected named tensors (a state dict), found {brief(data)}")
    out = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: entry {brief(key)} is {brief(value)}, not a tensor; expected a state "
                                  f"dict in one of these layouts: {expected_layouts()}")
        out[key] = value
    return out


# ----------------------------------------------------------------------------- recognising


@dataclass(frozen=True)
class BackboneWeights:
    """A backbone file read and renamed: ``state`` in our backbone's names, ``ignored`` the file's
    keys we do not use, ``architecture`` the backbone its tensors show."""

    path: Path
    layout: Layout
    state: dict[str, torch.Tensor]
    ignored: list[str]
    architecture: BackboneConfig

    @property
    def description(self) -> str:
        return f"{self.path} ({self.layout.name})"


def _recognise(state: Mapping[str, torch.Tensor], source: str) -> Layout:
    """The layout whose marker keys the file has, or an error listing what each layout looks like."""
    layout = next((lo for lo in LAYOUTS if all(k in state for k in lo.markers)), None)
    if layout is not None:
        return layout
    keys = sorted(state)
    if any(k.startswith(("sem_seg_head.", "pixel_decoder.", "transformer_decoder.", "model.pixel_level_module."))
           for k in keys):
        what = "a whole Mask2Former checkpoint, not backbone weights (start from it with --init instead)"
    elif "conv1_w" in state or any(k.startswith("res2_0_") for k in keys):
        what = ("a Caffe2 (MSRA) ResNet: BGR input and the stride in the 1x1 conv, which this backbone is not; use "
                "torchvision's R-50.pkl / resnet50-0676ba61.pth")
    else:
        what = "not backbone weights in a layout we know"
    shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} keys)" if len(keys) > 6 else "")
    raise CheckpointError(f"{source}: {what}. Found keys: {shown}. Expected one of: {expected_layouts()}")


def read_backbone_weights(path: str | os.PathLike) -> BackboneWeights:
    """Read, recognise and rename a backbone file (no model needed: the baselines use it too)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"backbone weights not found: {path}")
    raw = _tensors(_read_any(path), str(path))
    layout = _recognise(raw, str(path))
    ignored = re.compile(layout.ignored)
    state = {k: v for k, v in _rename(raw, layout).items() if not ignored.search(k)}
    unused = sorted(k for k in raw if ignored.search(k))
    try:
        architecture = backbone_from_state({f"backbone.{k}": v for k, v in state.items()})
    except (ConversionError, KeyError) as e:
        raise CheckpointError(f"{path}: {layout.name} keys, but an incomplete or unknown backbone ({e})") from None
    return BackboneWeights(path, layout, state, unused, architecture)


def _window_note(found: BackboneConfig, wanted: BackboneConfig) -> str:
    """Why a Swin file of another window cannot load: its relative-position tables have one row
    per offset inside its window."""
    rows = (2 * found.window_size - 1) ** 2
    return (f"window_size: the file's Swin has {found.window_size}x{found.window_size} windows (relative position "
            f"tables of {rows} rows), the model's {wanted.window_size}x{wanted.window_size} "
            f"(model.backbone.window_size); the tables do not fit another window and are not interpolated: use the "
            f"file made for window {wanted.window_size}, or a preset with window {found.window_size}")


def _mismatch(found: BackboneConfig, wanted: BackboneConfig) -> list[str]:
    """``"depth: file 50, model 18 (model.backbone.depth)"`` for each architecture field that differs."""
    if found.name != wanted.name:
        return [f"the file is a {found.name}, the model's backbone a {wanted.name} (model.backbone.name)"]
    fields = ("depth",) if wanted.name == "resnet" else ("embed_dim", "depths", "num_heads", "mlp_ratio")
    out = [f"{f}: file {_value(getattr(found, f))}, model {_value(getattr(wanted, f))} (model.backbone.{f})"
           for f in fields if _value(getattr(found, f)) != _value(getattr(wanted, f))]
    if wanted.name == "swin" and found.window_size != wanted.window_size:
        out.append(_window_note(found, wanted))
    return out


def _value(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def check_fits(weights: BackboneWeights, backbone: BackboneConfig) -> None:
    """Refuse a file of another backbone than ``backbone``, naming each difference."""
    differences = _mismatch(weights.architecture, backbone)
    if differences:
        raise CheckpointError(f"{weights.path}: {weights.layout.name} weights of another backbone than the model's: "
                              + "; ".join(differences))


# ----------------------------------------------------------------------------- locating


def torch_cache_dir() -> Path:
    """torchvision's download cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """HuggingFace's hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (default ``~/.cache/huggingface``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _hub_file(repo: str, cache: Path) -> Path | None:
    """``models--<org>--<name>/snapshots/<rev>/model.safetensors`` (or ``pytorch_model.bin``) of the
    revision ``refs/main`` names, else of any cached revision."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    ref = folder / "refs" / "main"
    revisions = [folder / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
    revisions += sorted((folder / "snapshots").glob("*"))
    for revision in revisions:
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (revision / name).is_file():
                return revision / name
    return None


def _find_cached(entry: BackboneFile) -> Path | None:
    torch_dir, hub_dir = torch_cache_dir(), hf_cache_dir()
    found = next((torch_dir / n for n in entry.torch_cache if (torch_dir / n).is_file()), None)
    for repo in entry.hub_repos:
        found = found or _hub_file(repo, hub_dir)
    return found


def _standard_entry(backbone: BackboneConfig, keyword: str) -> BackboneFile:
    """The table's file of ``backbone``: ImageNet-1k for ``imagenet`` (ImageNet-22k where only
    that exists, Swin-L), ImageNet-22k for ``imagenet-22k``."""
    candidates = backbone_files_for(backbone)
    chosen = [f for f in candidates if f.pretrain == KEYWORDS[keyword]] or \
        (candidates[-1:] if keyword == "imagenet" else [])
    if not chosen:
        arch = f"ResNet-{backbone.depth}" if backbone.name == "resnet" else (
            f"Swin embed_dim {backbone.embed_dim}, depths {tuple(backbone.depths)}, heads "
            f"{tuple(backbone.num_heads)}, window {backbone.window_size}")
        names = ", ".join(f.name for f in BACKBONE_FILES)
        raise CheckpointError(f"backbone weights {keyword!r}: no standard file has this backbone ({arch}); the "
                              f"standard files are {names}; pass a file's path instead")
    return chosen[0]


def locate_backbone_weights(backbone: BackboneConfig) -> Path | None:
    """The file ``backbone.weights`` names (None for ""); ``imagenet`` / ``imagenet-22k`` are looked
    up in the local caches, and a missing file is an error naming the file and the folders."""
    if not backbone.weights:
        return None
    if backbone.weights not in KEYWORDS:
        path = Path(backbone.weights).expanduser()
        if not path.exists():
            raise CheckpointError(f"backbone weights not found: {path} (model.backbone.weights / --backbone-weights)")
        return path
    entry = _standard_entry(backbone, backbone.weights)
    found = _find_cached(entry)
    from mask2former.download import OFFLINE_ENV, Checksum, fetch, offline

    if found is None and not offline():
        name = entry.torch_cache[0]
        found = fetch(entry.url, torch_cache_dir() / name, checksum=Checksum.of_torchvision_file(name))
    if found is None:
        torch_dir, hub_dir = torch_cache_dir(), hf_cache_dir()
        raise CheckpointError(
            f"backbone weights {backbone.weights!r}: the standard file of this backbone ({entry.name}) is not in the "
            f"local caches, and {OFFLINE_ENV} forbids downloading it. Looked for {' or '.join(entry.torch_cache)} "
            f"in torchvision's cache {torch_dir} and for "
            + " or ".join(f"models--{r.replace('/', '--')}/snapshots/*/model.safetensors" for r in entry.hub_repos)
            + f" (or pytorch_model.bin) in the HuggingFace cache {hub_dir}. Put {entry.torch_cache[0]} ({entry.url})"
            f" in {torch_dir}, or pass the file's path")
    logger.info("backbone weights %r: %s", backbone.weights, found)
    return found


# ----------------------------------------------------------------------------- loading


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB stem's ``[out, 3, k, k]`` convolution weight for ``in_channels`` inputs, by timm's
    rule (``adapt_input_conv``): 1 channel takes the sum of the R, G and B filters (a gray image
    then gives the RGB response to that gray); N channels take the filters R, G, B, R, ...
    cyclically, scaled by 3/N so that the response to equal inputs keeps its size. Computed in
    float32 (or wider), returned in ``weight``'s dtype."""
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected an RGB stem weight [out, 3, k, k], got {tuple(weight.shape)}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if in_channels == 3:
        return weight.clone()
    wide = weight.to(torch.promote_types(weight.dtype, torch.float32))
    if in_channels == 1:
        adapted = wide.sum(dim=1, keepdim=True)
    else:
        adapted = wide[:, [i % 3 for i in range(in_channels)]] * (3 / in_channels)
    return adapted.to(weight.dtype)


def adapt_stem(state: dict[str, torch.Tensor], key: str, own: torch.Tensor, source: str) -> bool:
    """Replace ``state[key]``, an RGB stem weight, by its adaptation to ``own``'s input channels
    (``adapt_input_conv``) when only those differ, and log it; returns whether it did."""
    weight = state.get(key)
    if weight is None or weight.ndim != 4 or own.ndim != 4 or weight.shape[1] != 3 or own.shape[1] == 3 \
            or weight.shape[:1] + weight.shape[2:] != own.shape[:1] + own.shape[2:]:
        return False
    state[key] = adapt_input_conv(weight, own.shape[1])
    channels = own.shape[1]
    rule = "the sum of the R, G, B filters" if channels == 1 else \
        f"the R, G, B filters repeated cyclically, scaled by 3/{channels}"
    logger.info("%s: adapted the pretrained RGB stem %s to %d input channel%s (%s, timm's rule)", source, key,
                channels, "s" * (channels != 1), rule)
    return True


def load_backbone_weights(backbone: nn.Module, config: BackboneConfig) -> BackboneWeights | None:
    """Load the file ``config.weights`` names into ``backbone`` (strictly; FrozenBN statistics go
    into its buffers; an RGB stem adapted to the backbone's input channels, ``adapt_stem``) and log
    what loaded. Swin's output norms ``norm0..norm3`` are Mask2Former's
    own and in no ImageNet file: they keep their initialisation, as in the reference."""
    path = locate_backbone_weights(config)
    if path is None:
        return None
    weights = read_backbone_weights(path)
    check_fits(weights, config)
    state = dict(weights.state)
    own = backbone.state_dict()
    stem = getattr(backbone, "stem_weight", None)  # an RGB stem loads into an N-channel model adapted
    if stem is not None and stem in own:
        adapt_stem(state, stem, own[stem], str(path))
    fresh = sorted(k for k in own if re.match(r"norm\d\.", k) and k not in state) if config.name == "swin" else []
    state.update({k: own[k] for k in fresh})
    load_state_strict(backbone, state, str(path))
    logger.info("backbone weights: %s, layout %s: %d tensors loaded into the backbone; not used: %s; kept at "
                "initialisation: %s", path, weights.layout.name, len(weights.state), summarise(weights.ignored),
                summarise(fresh))
    return weights


def summarise(keys: list[str]) -> str:
    """Keys grouped by their pattern (indices as ``*``), ``"fc.weight, layer*.*.bn*.num_batches_tracked (16)"``."""
    groups: dict[str, int] = {}
    for key in keys:
        pattern = re.sub(r"\d+", "*", key)
        groups[pattern] = groups.get(pattern, 0) + 1
    return ", ".join(p if n == 1 else f"{p} ({n})" for p, n in groups.items()) or "none"
