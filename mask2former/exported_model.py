"""Exported files (``mask2former export``) run where a PyTorch model runs: ``load_model`` returns an
:class:`ExportedModel` for an ``.onnx`` file, an OpenVINO folder (or its ``.xml``) or a ``.pt2``,
and ``Predictor``, ``predict`` and ``eval`` use it as they use a ``Mask2Former``.

The config (classes, preprocessing, inference settings) comes from the file itself, so a user
ships one file. The graph returns the last layer's logits; the post-processing is ours, the same
as for the PyTorch model. The runtimes run on the CPU.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mask2former.config import ModelConfig, from_dict
from mask2former.cpu import native_bf16
from mask2former.errors import CheckpointError, ConfigError, ExportError
from mask2former.modeling import Mask2Former
from mask2former.precision import ReducedPrecisionModel, check_precision
from mask2former.structures import Mask2FormerOutput

METADATA_FORMAT = "mask2former.exported"  # the key (ONNX metadata, OpenVINO rt_info) of our config
PT2_EXTRA = "mask2former.json"  # the .pt2 archive's extra file holding the same
OPENVINO_XML = "model.xml"
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2", "openvino": ""}  # openvino: a folder of model.xml + .bin
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# what each format can store: int8 is quantized at export; OpenVINO's bf16 is an inference hint
# (stored as the file's default, and any OpenVINO file can be run with it)
EXPORT_PRECISIONS = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8"), "torch-export": ("fp32",)}


def exported_format(path: str | os.PathLike) -> str | None:
    """``onnx``, ``openvino`` or ``torch-export`` for a file ``load_model`` reads as an export, else None."""
    path = Path(path)
    if path.is_dir():
        return "openvino" if (path / OPENVINO_XML).is_file() else None
    if path.suffix == ".xml":
        return "openvino"
    return next((format for format, suffix in SUFFIXES.items() if suffix and path.suffix == suffix), None)


class ExportedModel(nn.Module):
    """An exported graph behind the ``Mask2Former`` call contract: ``pixel_values [B, C, H, W]`` ->
    :class:`Mask2FormerOutput` (the last layer's logits; ``aux`` empty: they only serve training)."""

    def __init__(self, *, config: ModelConfig, runner: Runner, format: str, precision: str, source: str) -> None:
        super().__init__()
        self.config = config
        self.runner = runner
        self.format = format
        self.precision = precision
        self.source = source

    def forward(self, pixel_values: torch.Tensor) -> Mask2FormerOutput:
        if pixel_values.device.type != "cpu":
            raise ExportError(f"{self.source}: exported models run on the CPU, got an input on {pixel_values.device}")
        step = self.config.pixels.size_divisibility
        if pixel_values.dim() != 4 or any(n % step or n < 2 * step for n in pixel_values.shape[-2:]):
            raise ExportError(f"{self.source}: the exported graph takes [B, C, H, W] with H and W multiples of {step}, "
                              f"at least {2 * step} (the pixel_values contract), got {list(pixel_values.shape)}")
        class_logits, mask_logits = self.runner(np.ascontiguousarray(pixel_values.detach().float().numpy()))
        return Mask2FormerOutput(class_logits=torch.from_numpy(np.asarray(class_logits, dtype=np.float32)),
                                 mask_logits=torch.from_numpy(np.asarray(mask_logits, dtype=np.float32)))

    def extra_repr(self) -> str:
        return f"format={self.format}, precision={self.precision}, source={self.source}"


RunnableModel = Mask2Former | ReducedPrecisionModel | ExportedModel  # what load_model returns, Predictor runs


def load_exported(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                  precision: str = "auto") -> ExportedModel:
    """The exported file at ``path`` ready to run. ``precision``: ``auto`` runs the file as it was
    exported (an fp32 OpenVINO file in bf16 where the CPU has native bf16); an explicit one must be
    what the file holds, except that OpenVINO files also run with the bf16 hint."""
    path = Path(path)
    check_precision(precision)
    if device != "auto" and torch.device(device).type != "cpu":  # auto: the CPU, where exported files run
        raise ExportError(f"{path}: exported models run on the CPU (--device cpu), not {device}")
    format = exported_format(path)
    if format is None or not path.exists():
        raise CheckpointError(f"{path}: not an exported model (an .onnx or .pt2 file or an OpenVINO folder)")
    loader = {"onnx": _onnx_runner, "openvino": _openvino_runner, "torch-export": _pt2_runner}[format]
    config, runner, running = loader(path, precision)
    return ExportedModel(config=config, runner=runner, format=format, precision=running, source=str(path))


def run_precision(path: Path, format: str, stored: str, requested: str) -> str:
    """The precision a file exported at ``stored`` runs at when ``requested``."""
    if requested == "auto":
        return "bf16" if format == "openvino" and stored == "fp32" and native_bf16() else stored
    if requested == stored or (format == "openvino" and requested == "bf16"):
        return requested
    if format == "openvino" and stored == "bf16" and requested == "fp32":
        return "fp32"
    raise ConfigError(f"{path}: this {format} file holds a {stored} model and runs at {stored}, not {requested} "
                      f"(export it with --precision {requested}, or run the checkpoint in PyTorch)")


def _metadata(meta: str | None, path: Path) -> tuple[ModelConfig, str]:
    """The stored config and the precision the file was exported at."""
    if meta is None:
        raise CheckpointError(f"{path}: no mask2former config stored in it (export it with `mask2former export`)")
    try:
        data = json.loads(meta)
        if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT:
            raise ValueError("not our metadata")
        precision = data.get("precision", "fp32")
        if precision not in EXPORT_PRECISIONS[exported_format(path) or "onnx"]:
            raise ValueError(f"unknown precision {precision!r}")
        return from_dict(ModelConfig, data["config"]).validate(), precision
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: the stored mask2former config is invalid ({e})") from None


def _extra(name: str) -> ExportError:
    return ExportError(f"running an exported {name} model needs the export extra: pip install 'mask2former[export]'")


def _onnx_runner(path: Path, precision: str) -> tuple[ModelConfig, Runner, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise _extra("ONNX") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for a bad file
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0]})") from None
    config, stored = _metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_FORMAT), path)
    running = run_precision(path, "onnx", stored, precision)
    name = session.get_inputs()[0].name

    def run(pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        class_logits, mask_logits = session.run(None, {name: pixel_values})[:2]
        return class_logits, mask_logits

    return config, run, running


def _openvino_runner(path: Path, precision: str) -> tuple[ModelConfig, Runner, str]:
    try:
        import openvino as ov
    except ImportError:
        raise _extra("OpenVINO") from None
    xml = path / OPENVINO_XML if path.is_dir() else path
    core = ov.Core()
    try:
        model = core.read_model(xml)
    except RuntimeError as e:
        raise CheckpointError(f"{xml}: OpenVINO cannot read it ({str(e).splitlines()[0]})") from None
    meta = model.get_rt_info([METADATA_FORMAT]).astype(str) if model.has_rt_info([METADATA_FORMAT]) else None
    config, stored = _metadata(meta, path)
    running = run_precision(path, "openvino", stored, precision)
    hint = "bf16" if running == "bf16" or (running == "int8" and native_bf16()) else "f32"
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                 "INFERENCE_NUM_THREADS": torch.get_num_threads()})
    if running == "bf16" and str(compiled.get_property("INFERENCE_PRECISION_HINT")) != "bf16":
        running = "fp32"  # OpenVINO falls back to f32 on a CPU without bf16 instructions: say what runs
    request = compiled.create_infer_request()

    def run(pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = request.infer([pixel_values])
        return outputs[compiled.output(0)].copy(), outputs[compiled.output(1)].copy()

    return config, run, running


# torch.export.load unpickles some payloads (pickled weights, custom objects, the sample inputs'
# fallback) and parses symbolic sizes (sympy's srepr, e.g. "FloorDiv(Symbol('s27', positive=True,
# integer=True), Integer(2))") with sympy's eval: a .pt2 is checked before it is loaded.
PT2_QUOTED = re.compile(r"'(?:[a-z]+\d+|[-+0-9.eE]+)'")  # a size symbol's name or a Float's digits
PT2_WORDS = {
    # sympy's expression classes and functions, and the assumptions of a size symbol
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor", "ceiling",
    "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
    "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "true", "false", "True", "False", "oo", "zoo", "nan",
    "Infinity", "NegativeInfinity", "positive", "negative", "nonnegative", "nonpositive", "integer", "real",
    "finite", "zero", "nonzero", "even", "odd", "rational", "commutative", "precision",
    # torch's size functions (torch.utils._sympy.functions)
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift",
    "RShift", "IntTrueDiv", "FloatTrueDiv", "ToFloat", "TruncToInt", "TruncToFloat", "RoundToInt", "RoundDecimal",
    "Identity", "PowByNatural", "FloatPow", "IsNonOverlappingAndDenseIndicator", "OpaqueUnaryFn_sqrt",
    "OpaqueUnaryFn_exp", "OpaqueUnaryFn_log", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or",
}
PT2_CHARACTERS = re.compile(r"[A-Za-z0-9_+\-*/%(), .<>=!']*\Z")


def safe_expression(expression: str) -> bool:
    """Whether a stored size expression is made of sympy's constructors, numbers and size symbols
    alone (so that evaluating it builds an expression and does nothing else)."""
    if not PT2_CHARACTERS.match(expression) or "__" in expression or re.search(r"\.(?!\d)", expression):
        return False
    bare = PT2_QUOTED.sub("", expression)
    return "'" not in bare and all(word in PT2_WORDS for word in re.findall(r"[A-Za-z_]\w*", bare))


def _strings(value: Any, key: str) -> Iterator[str]:
    """Every string stored under ``key`` anywhere in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _strings(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def check_pt2(data: bytes, path: Path) -> str | None:
    """Refuse a ``.pt2`` whose loading would run stored code; return our config if it has one."""
    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: refused: {why} (loading it could run code stored in the file)")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        meta = None
        for name in names:
            parts = name.split("/")
            if name.endswith(f"/extra/{PT2_EXTRA}"):
                meta = archive.read(name).decode()
            if len(parts) >= 3 and parts[-3] == "data" and parts[-2] in ("weights", "constants"):
                if name.endswith(".pt"):
                    raise refuse(f"a pickled payload ({name})")
                if name.endswith("_config.json"):
                    config = json.loads(archive.read(name))
                    for fqn, entry in config.get("config", {}).items():
                        if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                                ("weight_", "tensor_")):
                            raise refuse(f"the payload of {fqn} is not a plain tensor")
            if len(parts) >= 3 and parts[-3] == "data" and parts[-2] == "sample_inputs":
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)  # refused here if it needs pickle
            if len(parts) >= 2 and parts[-2] == "models" and name.endswith(".json"):
                for expression in _strings(json.loads(archive.read(name)), "expr_str"):
                    if not safe_expression(expression):
                        raise refuse(f"an unexpected size expression {expression[:60]!r}")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, UnicodeDecodeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable .pt2 archive ({e})") from None
    except Exception as e:  # noqa: BLE001 - torch.load's weights_only refusal has no single type
        raise refuse(f"its sample inputs are not plain tensors ({type(e).__name__})") from None
    return meta


def _pt2_runner(path: Path, precision: str) -> tuple[ModelConfig, Runner, str]:
    data = path.read_bytes()
    config, stored = _metadata(check_pt2(data, path), path)
    running = run_precision(path, "torch-export", stored, precision)
    try:
        module = torch.export.load(io.BytesIO(data)).module()
    except Exception as e:  # noqa: BLE001 - torch.export raises many types for a bad archive
        raise CheckpointError(f"{path}: torch.export cannot load it ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None

    @torch.inference_mode()
    def run(pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        class_logits, mask_logits = module(torch.from_numpy(pixel_values))
        return class_logits.numpy(), mask_logits.numpy()

    return config, run, running
