"""Reading and writing model weights: ours, the official ``.pkl`` and HuggingFace directories.

Our format stores the config beside the weights (torch ``.pt`` or ``.safetensors`` with the
config in the metadata), so a checkpoint rebuilds its own model. Loading is strict: anything that
does not fit the model exactly fails with the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.build import build_model
from mask2former.config import ModelConfig, from_dict, to_dict
from mask2former.convert import (
    ConversionError,
    config_from_hf,
    config_from_state,
    convert_hf_state_dict,
    convert_official_state_dict,
)
from mask2former.errors import CheckpointError, ConfigError
from mask2former.modeling import Mask2Former
from mask2former.presets import PRESETS, get_preset

logger = logging.getLogger("mask2former")

FORMAT = "mask2former"
VERSION = 1


# ----------------------------------------------------------------------------- writing


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_model(model: Mask2Former, path: str | os.PathLike, config: ModelConfig | None = None) -> Path:
    """Write weights + config atomically. ``.safetensors`` keeps the config in the file's
    metadata; anything else is a torch file."""
    config = config or model.config
    if config is None:
        raise CheckpointError("model has no config attached; pass config= to save_model")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(to_dict(config))}
        return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    payload = {"format": FORMAT, "version": VERSION, "config": to_dict(config), "model": state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


# ----------------------------------------------------------------------------- strict loading


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` or raise listing every missing / unexpected / mis-shaped key.

    BatchNorm step counters are the one tolerance: FrozenBN has none, trainable BN fills zeros.
    """
    expected = model.state_dict()
    state = dict(state)
    for key in [k for k in state if k.endswith("num_batches_tracked") and k not in expected]:
        del state[key]
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:
        def show(items: list[str]) -> str:
            return ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")

        parts = [f"{name} keys: {show(items)}" for name, items in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if items]
        raise CheckpointError(f"{source}: weights do not fit the model. " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------- format readers


def _read_official_pkl(path: Path) -> dict[str, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")  # noqa: S301 - the documented format of the zoo
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise CheckpointError(f"{path}: cannot read as a pickle checkpoint ({type(e).__name__}: {e})") from None
    weights = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{path}: expected a dict with a 'model' entry of named arrays")
    out = {}
    for k, v in weights.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif isinstance(v, torch.Tensor):
            out[k] = v
        else:
            raise CheckpointError(f"{path}: entry {k!r} is a {type(v).__name__}, not an array")
    return out


def _official_config(state: Mapping[str, torch.Tensor], preset: str | ModelConfig | None,
                     source: str) -> ModelConfig:
    """Architecture from the weights; inference settings and classes from the matching zoo preset
    (or the preset / config the caller names)."""
    try:
        inferred = config_from_state(state)
    except ConversionError as e:
        raise CheckpointError(f"{source}: {e}") from None
    if preset is not None:
        config = preset if isinstance(preset, ModelConfig) else get_preset(preset)
        _check_same_architecture(config, inferred, source, getattr(preset, "dataset", None) or str(preset))
        return config
    for name, make in PRESETS.items():
        candidate = make()
        if _architecture(candidate) == _architecture(inferred):
            logger.info("%s: matches the zoo setting %r (pass preset=... to choose another)", source, name)
            return candidate
    logger.warning("%s: no zoo preset has this architecture; using default inference settings and "
                   "unnamed classes (pass preset=... to set them)", source)
    return inferred


def _architecture(config: ModelConfig) -> tuple:
    b = config.backbone
    bb = (b.name, b.depth) if b.name == "resnet" else (b.name, b.embed_dim, tuple(b.depths), tuple(b.num_heads),
                                                         b.window_size)
    return bb, config.num_classes, config.decoder.num_queries, config.decoder.num_layers, config.decoder.hidden_dim


def _check_same_architecture(config: ModelConfig, inferred: ModelConfig, source: str, preset: str) -> None:
    if _architecture(config) != _architecture(inferred):
        raise CheckpointError(
            f"{source}: the weights do not match preset {preset!r}: checkpoint has "
            f"{inferred.num_classes} classes, {inferred.decoder.num_queries} queries, backbone "
            f"{_architecture(inferred)[0]}; preset has {config.num_classes} classes, "
            f"{config.decoder.num_queries} queries, backbone {_architecture(config)[0]}"
        )


def _read_hf_dir(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    try:
        hf_config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path / 'config.json'}: cannot read ({e})") from None
    if hf_config.get("model_type") != "mask2former":
        raise CheckpointError(f"{path / 'config.json'}: model_type is {hf_config.get('model_type')!r}, "
                              "expected 'mask2former'")
    try:
        config = config_from_hf(hf_config)
    except ConversionError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e}") from None
    weights_file = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).exists()), None)
    if weights_file is None:
        raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin beside config.json")
    state = _read_safetensors(weights_file)[0] if weights_file.suffix == ".safetensors" else _torch_load(weights_file)
    _adopt_known_categories(config)
    return config, convert_hf_state_dict(state)


def _adopt_known_categories(config: ModelConfig) -> None:
    """HF configs carry class names only; when they are a bundled dataset's names, take its ids and
    thing flags (needed by panoptic post-processing) too."""
    names = [c.name for c in config.categories]
    from mask2former.presets import load_categories

    for meta in ("coco_panoptic", "coco_instance", "ade20k_semantic", "ade20k_instance", "cityscapes",
                 "cityscapes_instance", "mapillary_vistas"):
        try:
            known = load_categories(meta)
        except FileNotFoundError:
            continue
        if [c.name.lower() for c in known] == [n.lower() for n in names]:
            config.categories = known
            return


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, metadata  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        reason = str(e).split(". ")[0].splitlines()[0][:160] if str(e) else ""
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({type(e).__name__}: {reason})") from None


def read_checkpoint(path: str | os.PathLike, preset: str | ModelConfig | None = None
                    ) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, state dict in our names) from any supported checkpoint, without building a model.

    ``preset`` (a name or a ``ModelConfig``) only applies to official checkpoints, which store no
    config: it supplies the settings the weights cannot show (heads, test sizes, classes).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        if (path / "config.json").exists():
            return _read_hf_dir(path)
        if (path / "model_final.pt").exists():
            return read_checkpoint(path / "model_final.pt", preset)
        raise CheckpointError(f"{path}: a directory, but neither a HuggingFace model (config.json) nor a "
                              "training output (model_final.pt)")
    if path.suffix == ".pkl":
        state = _read_official_pkl(path)
        state = convert_official_state_dict(state)
        return _official_config(state, preset, str(path)), state
    if path.suffix == ".safetensors":
        state, metadata = _read_safetensors(path)
        if metadata.get("format") != FORMAT or "config" not in metadata:
            raise CheckpointError(f"{path}: safetensors file without a mask2former config in its metadata "
                                  "(a HuggingFace model.safetensors must be loaded through its directory)")
        return _config_from_ours(json.loads(metadata["config"]), path), state
    data = _torch_load(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return _config_from_ours(data["config"], path), data["model"]
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        state = convert_official_state_dict(data["model"])
        return _official_config(state, preset, str(path)), state
    raise CheckpointError(f"{path}: not a Mask2Former checkpoint (expected our format, an official .pkl or a "
                          "HuggingFace directory)")


def _config_from_ours(data: dict, path: Path) -> ModelConfig:
    try:
        return from_dict(ModelConfig, data).validate()
    except ConfigError as e:
        raise CheckpointError(f"{path}: stored config is invalid: {e}") from None


def load_model(path: str | os.PathLike, preset: str | ModelConfig | None = None,
               device: str | torch.device = "cpu") -> Mask2Former:
    """A ready model (eval mode) from our checkpoint, an official ``.pkl`` or a HF directory.

    ``preset`` names the zoo setting of an official ``.pkl`` (its file stores no config), or is a
    ``ModelConfig``; without it the setting is matched from the architecture.
    """
    config, state = read_checkpoint(path, preset)
    try:
        model = build_model(config)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    load_state_strict(model, state, str(path))
    return model.to(device).eval()


def convert(source: str | os.PathLike, destination: str | os.PathLike, preset: str | ModelConfig | None = None
            ) -> tuple[Path, Mask2Former]:
    """Read any supported checkpoint, check it loads strictly, write it in our format."""
    model = load_model(source, preset=preset)
    return save_model(model, destination), model
