"""The precisions a model runs at, and the one picked when nobody says.

- ``fp32``: exact; the reference numbers.
- ``bf16``: PyTorch CPU autocast (convolutions and matrix products in bf16, weights kept in fp32),
  or OpenVINO's bf16 inference hint. Fast only on CPUs with bf16 instructions (AVX-512 BF16, AMX);
  elsewhere it is emulated and several times slower than fp32, so ``auto`` picks it only there.
- ``int8``: PyTorch dynamic quantization of the linear layers (weights int8, activations quantized
  per call), or an exported file quantized after training with a calibration split
  (``mask2former export --precision int8 --data ...``: onnxruntime static QDQ, OpenVINO NNCF).

Reduced precision changes results; ``eval --precision`` measures by how much.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from mask2former.cpu import cpu_name, native_bf16
from mask2former.errors import ConfigError
from mask2former.formats import PRECISION_CHOICES
from mask2former.modeling import Mask2Former
from mask2former.structures import Mask2FormerOutput


def check_precision(precision: str) -> str:
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    return precision


def auto_precision() -> tuple[str, str]:
    """(the precision ``auto`` picks on this CPU, why)."""
    if native_bf16():
        return "bf16", f"auto: {cpu_name()} computes bf16 natively"
    return "fp32", f"auto: {cpu_name()} has no native bf16 (emulated bf16 is slower than fp32)"


class ReducedPrecisionModel(nn.Module):
    """A ``Mask2Former`` run in bf16 or int8 behind the same call contract; its logits come back in
    fp32, so the post-processing is the same as for the fp32 model."""

    def __init__(self, *, model: Mask2Former, precision: str) -> None:
        super().__init__()
        if precision not in ("bf16", "int8"):
            raise ConfigError(f"a reduced precision is bf16 or int8, got {precision!r}")
        self.config = model.config
        self.precision = precision
        if precision == "int8":
            with warnings.catch_warnings():  # torch.ao's eager quantization announces its successor
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> Mask2FormerOutput:
        with torch.autocast(pixel_values.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(pixel_values)
        return Mask2FormerOutput(class_logits=out.class_logits.float(), mask_logits=out.mask_logits.float(),
                                 aux=[type(p)(class_logits=p.class_logits.float(), mask_logits=p.mask_logits.float())
                                      for p in out.aux])

    def extra_repr(self) -> str:
        return f"precision={self.precision}"


def precision_of(model: nn.Module) -> str:
    """The precision ``model`` (a ``Mask2Former``, ``ReducedPrecisionModel`` or ``ExportedModel``) runs at."""
    precision = getattr(model, "precision", "fp32")
    return precision if isinstance(precision, str) else "fp32"


def with_precision(model: Mask2Former, precision: str) -> Mask2Former | ReducedPrecisionModel:
    """``model`` to run at ``precision`` (``auto``: ``auto_precision``); int8 quantizes a copy."""
    precision = check_precision(precision)
    if precision == "auto":
        precision = auto_precision()[0]
    if precision == "fp32":
        return model
    if precision == "int8" and next(model.parameters()).device.type != "cpu":
        raise ConfigError("int8 (dynamic quantization) runs on the CPU only (--device cpu)")
    return ReducedPrecisionModel(model=model, precision=precision)
