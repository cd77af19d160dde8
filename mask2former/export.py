"""Exported graphs of a model for other runtimes: ONNX (onnxruntime), OpenVINO IR, torch.export.

One graph serves all three tasks. Its input is the model's ``pixel_values`` contract
(``data.collate.pad_and_normalize``: normalised, padded to the size divisibility, ``[B, C, H, W]``)
with the batch and both sizes dynamic; its outputs are the last layer's class logits ``[B, Q, K+1]``
and mask logits ``[B, Q, H/4, W/4]``. Post-processing stays the one ``predict`` runs (the
official rule of each task). The model's config (classes, preprocessing, inference settings) is
stored in the file, so the file is all a user ships.

The program is traced once by ``torch.export`` with symbolic sizes: the modules compute position
tables, reference points and paddings from the input's shape, so nothing of the tracing size is
frozen into the graph. ONNX and OpenVINO are converted from that program. The deformable
attention's sampler is set for the export on purpose (``EXPORT_SAMPLERS``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.fx.experimental import _config as fx_config

from mask2former.atomic_files import atomic_write
from mask2former.config import ModelConfig, to_dict
from mask2former.data.collate import padded_size
from mask2former.errors import ConfigError, ExportError
from mask2former.exported_model import EXPORT_PRECISIONS, METADATA_FORMAT, OPENVINO_XML, PT2_EXTRA, SUFFIXES
from mask2former.formats import EXPORT_FORMATS
from mask2former.modeling.mask2former import Mask2Former
from mask2former.modeling.ms_deform_attn import SAMPLERS, set_sampler

EXPORT_SAMPLERS = {"onnx": "grid_sample", "openvino": "grid_sample", "torch-export": "embedding_bag"}


class LogitsGraph(nn.Module):
    """The exported computation: ``pixel_values`` -> (class logits, mask logits) of the last layer
    (the auxiliary predictions only serve training)."""

    def __init__(self, *, model: Mask2Former) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(pixel_values)
        return out.class_logits, out.mask_logits


def tracing_input(config: ModelConfig) -> torch.Tensor:
    """A ``[2, C, H, W]`` input to trace with: batch 2 and H != W, so that no size equals another
    or 1 (torch.export would tie or fix such sizes), at the model's usual test size."""
    side = padded_size((config.inference.min_size, config.inference.min_size),
                       config.pixels.size_divisibility)[0]
    step = config.pixels.size_divisibility
    return torch.randn(2, config.pixels.channels, side, side + step)


def config_json(config: ModelConfig, precision: str = "fp32") -> str:
    return json.dumps({"format": METADATA_FORMAT, "config": to_dict(config), "precision": precision})


def export_program(model: Mask2Former, *, sampler: str) -> torch.export.ExportedProgram:
    """The ``torch.export`` program of ``model``'s logits, batch and sizes dynamic."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    graph = LogitsGraph(model=model).eval()
    # the contract pads to the size divisibility, so the sizes are multiples of it: traced as such,
    # every stage's size stays a plain multiple of one symbol (no nest of remainders to reason about)
    step = model.config.pixels.size_divisibility
    batch = torch.export.Dim("batch", min=1)
    height, width = torch.export.Dim("height", min=1), torch.export.Dim("width", min=1)
    set_sampler(model, sampler)
    try:
        # size-oblivious: a size that is 1 when traced (one Swin window, a batch of one) is not
        # taken as 1 for every input
        oblivious = fx_config.patch(backed_size_oblivious=True)  # type: ignore[attr-defined]
        with torch.no_grad(), warnings.catch_warnings(), oblivious:
            warnings.simplefilter("ignore")
            return torch.export.export(graph, (tracing_input(model.config),),
                                       dynamic_shapes={"pixel_values": {0: batch, 2: step * height, 3: step * width}})
    finally:
        set_sampler(model, None)


def calibration_inputs(model: Mask2Former, data: str | os.PathLike, *, split: str = "train",
                       count: int = 16) -> list[np.ndarray]:
    """``pixel_values`` of ``count`` images spread over ``split`` of DATA.yaml, prepared exactly as
    ``predict`` prepares them (test size, normalised, padded): what int8 calibration sees must be
    what the model will see."""
    from mask2former.data.data_yaml import build_split, for_model, load_data_config
    from mask2former.errors import DatasetError
    from mask2former.inference.predictor import Predictor

    config = load_data_config(data)
    if split not in config.splits:
        raise DatasetError(data, f"no split {split!r} to calibrate on (has {', '.join(config.splits)})")
    dataset = build_split(for_model(config, model.config), split)
    if len(dataset) == 0:
        raise DatasetError(data, f"split {split!r} has no images to calibrate on")
    predictor = Predictor(model)
    picked = sorted({round(i) for i in np.linspace(0, len(dataset) - 1, min(count, len(dataset)))})
    return [predictor.model_input(dataset.load(i)[0]).numpy() for i in picked]


def output_path(output: str | os.PathLike, format: str) -> Path:
    """Where ``format`` is written: ``output`` with the format's suffix (added when missing)."""
    path = Path(output)
    suffix = SUFFIXES[format]
    if suffix and path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    return path


def export_model(model: Mask2Former, output: str | os.PathLike, *, format: str, precision: str = "fp32",
                 calibration: Sequence[np.ndarray] = (), sampler: str | None = None) -> Path:
    """Write ``model`` as ``format`` (``EXPORT_FORMATS``) with its config inside; returns the path written
    (an ``.onnx`` / ``.pt2`` file, or an OpenVINO folder holding ``model.xml`` and ``model.bin``).
    ``precision`` int8 quantizes after training with ``calibration`` (``pixel_values`` arrays, e.g.
    ``calibration_inputs``); OpenVINO's bf16 is stored as the precision the file runs at.
    Needs the ``export`` extra for ONNX and OpenVINO."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if precision not in EXPORT_PRECISIONS[format]:
        raise ConfigError(f"a {format} export holds {' or '.join(EXPORT_PRECISIONS[format])}, not {precision!r}"
                          + (" (run the checkpoint with --precision in PyTorch instead)" if format == "torch-export"
                             else ""))
    if precision == "int8" and not calibration:
        raise ConfigError("int8 export needs calibration images (--data DATA.yaml: a split the model is not scored on)")
    path = output_path(output, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = export_program(model.cpu().eval(), sampler=sampler or EXPORT_SAMPLERS[format])
    meta = config_json(model.config, precision)
    if format == "torch-export":
        atomic_write(path, lambda f: torch.export.save(program, f, extra_files={PT2_EXTRA: meta}))
    elif format == "onnx":
        proto = _onnx_model(program, meta)
        if precision == "int8":
            proto = _onnx_int8(proto, calibration, meta)
        atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    else:
        _write_openvino(program, path, meta, calibration if precision == "int8" else ())
    return path


def _onnx_model(program: torch.export.ExportedProgram, meta: str):  # -> onnx.ModelProto
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the export extra: pip install 'mask2former[export]'") from None
    with _quiet("onnxscript", "onnx_ir", "torch.onnx"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, dynamo=True, optimize=True, verbose=False)
    if onnx_program is None:  # only the old exporter returns nothing
        raise ExportError("the ONNX exporter returned no program")
    proto = onnx_program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_FORMAT, meta
    return proto


def _onnx_int8(proto, calibration: Sequence[np.ndarray], meta: str):  # onnx.ModelProto -> the same, int8
    """onnxruntime's static quantization (QDQ, int8 weights per channel, uint8 activations) of the
    convolutions and matrix products, activation ranges from the calibration inputs. Weights use 7
    bits (``reduce_range``): on CPUs without VNNI the uint8 x int8 products saturate otherwise (the
    demo model's PQ fell by 0.88 with 8 bits and rose by 0.37 with 7; mIoU -0.07)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.inputs = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            pixel_values = next(self.inputs, None)
            return None if pixel_values is None else {name: pixel_values}

    with tempfile.TemporaryDirectory(prefix="mask2former_int8_") as tmp, _quiet(""):
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, source)
        quantize_static(source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"])
        quantized = onnx.load(target)
    del quantized.metadata_props[:]
    entry = quantized.metadata_props.add()
    entry.key, entry.value = METADATA_FORMAT, meta
    return quantized


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporter, its optimizer and onnxruntime's quantization tools log every step and every
    piece of advice at warning level: errors only while they run."""
    chatty = [logging.getLogger(name) for name in loggers]
    levels = [log.level for log in chatty]
    try:
        for log in chatty:
            log.setLevel(logging.ERROR)
        yield
    finally:
        for log, level in zip(chatty, levels):
            log.setLevel(level)


def _write_openvino(program: torch.export.ExportedProgram, path: Path, meta: str,
                    calibration: Sequence[np.ndarray]) -> None:
    """``path/model.xml`` + ``model.bin``, each replaced whole (OpenVINO converts from an ONNX file);
    with ``calibration``, quantized to int8 by NNCF first."""
    try:
        import onnx
        import openvino as ov
    except ImportError:
        raise ExportError("OpenVINO export needs the export extra: pip install 'mask2former[export]'") from None
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export_", dir=path) as tmp:
        onnx.save(_onnx_model(program, meta), Path(tmp) / "model.onnx")
        ov_model = ov.convert_model(Path(tmp) / "model.onnx")
        if calibration:
            with _quiet("torch.utils.cpp_extension"):  # nncf's import probes for CUDA and warns without one
                import nncf

            # the transformer scheme keeps softmax and attention inputs as they are: NNCF's default
            # (CNN) scheme took the demo model's PQ from 80.3 to 39.2, this one to 80.6
            with warnings.catch_warnings():  # its statistics overflow float32 sums on far-out activations
                warnings.simplefilter("ignore", RuntimeWarning)
                ov_model = nncf.quantize(ov_model, nncf.Dataset(list(calibration)), subset_size=len(calibration),
                                         model_type=nncf.ModelType.TRANSFORMER)
        ov_model.set_rt_info(meta, [METADATA_FORMAT])
        xml = Path(tmp) / OPENVINO_XML
        ov.save_model(ov_model, xml, compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), (path / OPENVINO_XML).with_suffix(".bin"))
        os.replace(xml, path / OPENVINO_XML)


def check_export(model: Mask2Former, path: Path) -> tuple[tuple[int, int], float]:
    """Run the written file and the model on an input of a size the export did not see; returns
    (that size, the largest absolute difference of their logits)."""
    from mask2former.exported_model import load_exported

    traced = tracing_input(model.config)
    step = model.config.pixels.size_divisibility
    size = (traced.shape[2] + step, traced.shape[3] + 2 * step)
    x = torch.randn(1, model.config.pixels.channels, *size, generator=torch.Generator().manual_seed(0))
    exported = load_exported(path)
    with torch.inference_mode():
        ours, theirs = model(x), exported(x)
    diff = max((ours.class_logits - theirs.class_logits).abs().max().item(),
               (ours.mask_logits - theirs.mask_logits).abs().max().item())
    return size, diff
