"""Reading and writing model weights: ours, the official ``.pkl`` and HuggingFace directories.

Our format stores the config beside the weights (torch ``.pt`` or ``.safetensors`` with the
config in the metadata), so a checkpoint rebuilds its own model. Loading is strict: anything that
does not fit the model exactly fails with the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.atomic_files import atomic_write
from mask2former.build import build_model
from mask2former.config import ModelConfig, from_dict, to_dict
from mask2former.convert import (
    ConversionError,
    config_from_hf,
    config_from_state,
    convert_hf_state_dict,
    convert_official_state_dict,
)
from mask2former.device import resolve_device
from mask2former.errors import CheckpointError, ConfigError, brief
from mask2former.exported_model import RunnableModel, exported_format, load_exported
from mask2former.modeling import Mask2Former
from mask2former.precision import auto_precision, check_precision, precision_of, with_precision
from mask2former.presets import get_preset
from mask2former.safe_unpickle import load_arrays_pickle, refusal
from mask2former.zoo import ZOO, ZooWeights, architecture_difference, presets_with_architecture, settings_difference

logger = logging.getLogger("mask2former")

FORMAT = "mask2former"
VERSION = 2  # 2: the weights and config carry a sha256 checksum


# ----------------------------------------------------------------------------- writing


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, Mapping):
        h.update(f"D{len(value)}".encode())
        for key in sorted(value, key=str):
            h.update(f"K{key!r}".encode())
            _feed(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(f"L{len(value)}".encode())
        for item in value:
            _feed(h, item)
    else:
        h.update(f"V{value!r}".encode())


def digest(value: Any) -> str:
    """sha256 of a nest of dicts, lists, tensors and plain values, independent of dict order: it
    catches a flipped byte in the weights or the config that would otherwise load silently."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def verify_digest(expected: Any, value: Any, source: str, what: str = "weights and config") -> None:
    if expected != digest(value):
        raise CheckpointError(f"{source}: the {what} do not match the checksum recorded when the file was written: "
                              "the file is corrupted (a changed byte, a bad copy or an incomplete download); use "
                              "another copy or an earlier checkpoint")


def save_model(model: Mask2Former, path: str | os.PathLike, config: ModelConfig | None = None) -> Path:
    """Write weights + config (+ their checksum) atomically. ``.safetensors`` keeps the config in
    the file's metadata; anything else is a torch file."""
    config = config or model.config
    if config is None:
        raise CheckpointError("model has no config attached; pass config= to save_model")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config_dict = to_dict(config)
    checksum = digest({"config": config_dict, "model": state})
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import save

        metadata = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(config_dict),
                    "sha256": checksum}
        return atomic_write(path, lambda f: f.write(save(state, metadata=metadata)))
    payload = {"format": FORMAT, "version": VERSION, "config": config_dict, "model": state, "sha256": checksum}
    return atomic_write(path, lambda f: torch.save(payload, f))


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
    """Named arrays of a model-zoo ``.pkl``, read without running anything the file names."""
    try:
        data = load_arrays_pickle(path.read_bytes(), str(path))  # bytes, not the file: see load_arrays_pickle
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .pkl file") from None
    weights = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{path}: expected a dict with a 'model' entry of named arrays")
    out = {}
    for k, v in weights.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{path}: weight names must be strings, found {brief(k)}")
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "biuf":
            what = f"a {v.dtype} array" if isinstance(v, np.ndarray) else f"a {type(v).__name__}"
            raise CheckpointError(f"{path}: entry {brief(k)} is {what}, not a numeric array")
        out[k] = torch.from_numpy(np.ascontiguousarray(v))
    return out


def _official_config(state: Mapping[str, torch.Tensor], preset: str | ModelConfig | None, source: str, *,
                     need_settings: bool) -> ModelConfig:
    """Architecture from the weights; inference settings and classes from the preset the caller
    names, else from the model-zoo table when the file keeps its zoo name, else from the only
    preset with this architecture. Several such presets with different settings: refused when
    ``need_settings``, else the architecture alone (what fine-tuning needs)."""
    try:
        inferred = config_from_state(state)
    except ConversionError as e:
        raise CheckpointError(f"{source}: {e}") from None
    if preset is not None:
        return _named_preset(preset, inferred, source)
    entry = ZOO.get(Path(source).name)
    if entry is not None:
        return _zoo_file_preset(entry, inferred, source)
    return _matched_preset(inferred, source, need_settings=need_settings)


def _named_preset(preset: str | ModelConfig, inferred: ModelConfig, source: str) -> ModelConfig:
    """The caller's choice, checked against the weights; a zoo file name saying otherwise is noted."""
    config = preset if isinstance(preset, ModelConfig) else get_preset(preset)
    name = preset if isinstance(preset, str) else (preset.dataset or "the given config")
    difference = architecture_difference(inferred, config)
    if difference:
        raise CheckpointError(f"{source}: the weights do not match preset {name!r}: {difference}")
    entry = ZOO.get(Path(source).name)
    if entry is not None and isinstance(preset, str) and entry.preset != preset:
        logger.warning("%s: the model zoo lists %s as %r; using %r as asked", source, entry.file, entry.preset,
                       preset)
    return config


def _zoo_file_preset(entry: ZooWeights, inferred: ModelConfig, source: str) -> ModelConfig:
    """A model-zoo file name decides the preset; weights of another architecture under that name
    (a renamed file) are an error naming both."""
    config = get_preset(entry.preset)
    difference = architecture_difference(inferred, config)
    if difference:
        raise CheckpointError(f"{source}: {entry.file} is the model zoo's file of preset {entry.preset!r}, but "
                              f"these weights are another model ({difference}); pass --preset NAME (Python: "
                              "preset=...) with the setting it was trained for")
    logger.info("%s: the model zoo's file of preset %r (published %s)", source, entry.preset,
                ", ".join(f"{k} {v}" for k, v in entry.metrics.items()))
    return config


def _matched_preset(inferred: ModelConfig, source: str, *, need_settings: bool) -> ModelConfig:
    """The preset matching the weights' architecture; several with different settings are not
    guessed between."""
    candidates = presets_with_architecture(inferred)
    names = list(candidates)
    if not candidates:
        logger.warning("%s: no zoo preset has this architecture; using default inference settings and "
                       "unnamed classes (pass preset=... to set them)", source)
        return inferred
    differences = settings_difference(candidates)
    if not differences:
        same = f"the zoo settings {' and '.join(map(repr, names))}, which are identical," if len(names) > 1 \
            else f"the zoo setting {names[0]!r}"
        logger.info("%s: matches %s (pass preset=... to choose another)", source, same)
        return candidates[names[0]]
    if not need_settings:
        logger.info("%s: the weights fit the zoo settings %s; only the weights are used", source, ", ".join(names))
        return inferred
    raise CheckpointError(
        f"{source}: the weights fit {len(names)} zoo settings, which differ in {', '.join(differences)}: pass "
        + " or ".join(f"--preset {n}" for n in names) + " (Python: "
        + " or ".join(f"preset={n!r}" for n in names) + "), whichever the model was trained for; "
        "a file keeping its model-zoo name (model_final_<id>.pkl) needs no --preset")


def _read_hf_dir(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    try:
        hf_config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path / 'config.json'}: cannot read ({e})") from None
    if hf_config.get("model_type") != "mask2former":
        raise CheckpointError(f"{path / 'config.json'}: model_type is {hf_config.get('model_type')!r}, "
                              "expected 'mask2former'")
    weights_file = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).exists()), None)
    if weights_file is None:
        raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin beside config.json")
    if weights_file.suffix == ".safetensors":
        state = read_safetensors(weights_file)[0]
    else:
        state = read_torch_file(weights_file)
    head = next((v for k, v in state.items() if k.endswith("class_predictor.weight")), None)
    try:  # no id2label / num_labels: the class head's rows say how many classes (named class_0, ...)
        config = config_from_hf(hf_config, None if head is None else int(head.shape[0]) - 1)
    except ConversionError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e}") from None
    if "id2label" not in hf_config and "num_labels" not in hf_config:
        logger.warning("%s: config.json names no classes; using class_0 .. class_%d", path, config.num_classes - 1)
    _adopt_known_categories(config)
    return config, convert_hf_state_dict(state)


def _adopt_known_categories(config: ModelConfig) -> None:
    """HF configs carry class names only; when they are a bundled dataset's names, take its ids and
    thing flags (needed by panoptic post-processing) too."""
    names = [c.name for c in config.categories]
    from mask2former.metadata import DATASETS, load_categories

    for meta in DATASETS:
        try:
            known = load_categories(meta)
        except FileNotFoundError:
            continue
        if [c.name.lower() for c in known] == [n.lower() for n in names]:
            config.categories = known
            return


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file (a format that holds data only)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, metadata  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from None


def read_torch_file(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain values (``weights_only``): a file asking
    for anything else is refused, never run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file") from None
    except Exception as e:  # noqa: BLE001
        found = re.search(r"GLOBAL ([\w.]+)", str(e)) if "Weights only load failed" in str(e) else None
        if found:
            raise refusal(str(path), found.group(1)) from None
        reason = str(e).split(". ")[0].splitlines()[0][:160] if str(e) else ""
        if "Weights only load failed" in str(e):  # torch's text would suggest running the file's code
            reason = "not a torch file, or a damaged one"
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({type(e).__name__}: {reason})") from None


def read_checkpoint(path: str | os.PathLike, preset: str | ModelConfig | None = None, *,
                    need_settings: bool = False) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, state dict in our names) from any supported checkpoint, without building a model.

    ``preset`` (a name or a ``ModelConfig``) only applies to official checkpoints, which store no
    config: it supplies the settings the weights cannot show (heads, test sizes, classes). Without
    it a model-zoo file name decides, else the architecture. Weights that fit several presets with
    different settings are refused when ``need_settings`` (running the model needs them: see
    ``load_model``); otherwise (``train --init`` reads only the weights) the config is the
    architecture with default settings.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        if (path / "config.json").exists():
            return _read_hf_dir(path)
        if (path / "model_final.pt").exists():
            return read_checkpoint(path / "model_final.pt", preset, need_settings=need_settings)
        raise CheckpointError(f"{path}: a directory, but neither a HuggingFace model (config.json) nor a "
                              "training output (model_final.pt)")
    if path.suffix == ".pkl":
        state = _read_official_pkl(path)
        state = convert_official_state_dict(state)
        return _official_config(state, preset, str(path), need_settings=need_settings), state
    if path.suffix == ".safetensors":
        state, metadata = read_safetensors(path)
        if metadata.get("format") != FORMAT or "config" not in metadata:
            raise CheckpointError(f"{path}: safetensors file without a mask2former config in its metadata "
                                  "(a HuggingFace model.safetensors must be loaded through its directory)")
        try:
            config_dict = json.loads(metadata["config"])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: the config in its metadata is not valid JSON ({e.msg})") from None
        return _ours(path, metadata.get("version"), metadata.get("sha256"), config_dict, state)
    data = read_torch_file(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return _ours(path, data.get("version"), data.get("sha256"), data.get("config"), data.get("model"))
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        state = convert_official_state_dict(data["model"])
        return _official_config(state, preset, str(path), need_settings=need_settings), state
    raise CheckpointError(f"{path}: not a Mask2Former checkpoint (expected our format, an official .pkl or a "
                          "HuggingFace directory)")


def _ours(path: Path, version: Any, checksum: Any, config: Any, state: Any
          ) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Our own format, checked: the checksum (from version 2 on), then the config and weights."""
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: a mask2former checkpoint without its 'config' and 'model' entries")
    if any(not isinstance(k, str) or not isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: 'model' must map weight names to tensors")
    if str(version) != "1":  # version 1 files were written before checksums existed
        if not isinstance(checksum, str):
            raise CheckpointError(f"{path}: the checksum of the weights is missing (the file is corrupted)")
        verify_digest(checksum, {"config": config, "model": state}, str(path))
    try:
        return from_dict(ModelConfig, config).validate(), state
    except ConfigError as e:
        raise CheckpointError(f"{path}: stored config is invalid: {e}") from None


def load_model(path: str | os.PathLike, preset: str | ModelConfig | None = None,
               device: str | torch.device = "cpu", precision: str = "fp32") -> RunnableModel:
    """A ready model (eval mode) from our checkpoint, an official ``.pkl``, a HF directory, or an
    exported file (``.onnx``, ``.pt2``, an OpenVINO folder: see ``exported_model``).

    ``precision`` (``precision.PRECISION_CHOICES``): a checkpoint in fp32 is a ``Mask2Former``; in
    bf16 or int8 it is wrapped to run so; ``auto`` picks per CPU. An exported file runs at the
    precision it was exported with (``load_exported``).

    ``preset`` names the zoo setting of an official ``.pkl`` (its file stores no config), or is a
    ``ModelConfig``; without it the model-zoo file name or the architecture decides, and weights
    that fit several settings are refused with the ``--preset`` choices.
    """
    check_precision(precision)
    path, preset = _named_weights(path, preset)
    if exported_format(path) is not None:
        exported = load_exported(path, device=device, precision=precision)
        _say_precision(path, exported.precision, precision, "as exported")
        return exported
    device = resolve_device(device)
    config, state = read_checkpoint(path, preset, need_settings=True)
    try:
        model = build_model(config)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    load_state_strict(model, state, str(path))
    runnable = with_precision(model.to(device).eval(), precision)
    _say_precision(path, precision_of(runnable), precision, auto_precision()[1])
    return runnable


def _named_weights(path: str | os.PathLike, preset: str | ModelConfig | None
                   ) -> tuple[str | os.PathLike, str | ModelConfig | None]:
    """A zoo preset's name (``r50_coco_panoptic``) where no such file exists: its model-zoo file,
    downloaded once into the cache (``download``), read with that preset."""
    from mask2former.zoo import weights_for

    name = os.fspath(path)
    if Path(name).exists() or weights_for(name) is None:
        return path, preset
    from mask2former.download import zoo_file

    return zoo_file(name), preset or name


def _say_precision(path: str | os.PathLike, running: str, requested: str, why_auto: str) -> None:
    if running != "fp32" or requested == "auto":
        logger.info("%s: running at %s%s", path, running, f" ({why_auto})" if requested == "auto" else "")


def convert(source: str | os.PathLike, destination: str | os.PathLike, preset: str | ModelConfig | None = None
            ) -> tuple[Path, Mask2Former]:
    """Read any supported checkpoint, check it loads strictly, write it in our format."""
    if exported_format(source) is not None:
        raise CheckpointError(f"{source}: an exported graph has no weights in our names to convert; it runs as it "
                              "is (--checkpoint accepts it)")
    model = load_model(source, preset=preset)
    assert isinstance(model, Mask2Former)
    return save_model(model, destination), model
