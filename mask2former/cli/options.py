"""argparse ``type=`` helpers: a bad option value is a usage error (exit 2, the usage line and a
message naming the option) before any data, checkpoint or model is loaded, never a clamp or a
failure deep inside a run. argparse prefixes each message with ``argument --name:``."""

from __future__ import annotations

import argparse
import math

from mask2former.errors import brief
from mask2former.formats import did_you_mean


def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {brief(text)}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {brief(text)}")
    return value


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision``, the same for every command that runs a model."""
    from mask2former.formats import PRECISION_CHOICES

    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="fp32; bf16 (CPU autocast, OpenVINO's bf16); int8 (PyTorch dynamic quantization of the "
                             "linear layers, or an int8 export). auto (default): bf16 on CPUs with native bf16 "
                             "(AVX-512 BF16, AMX), else fp32; an exported file runs as exported")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``, the same for every command that runs a model."""
    parser.add_argument("--device", default="auto",
                        help="auto (default: a CUDA GPU, else Apple's MPS, else the CPU; the log says which), cpu, "
                             "cuda, cuda:N or mps; exported files run on the CPU")


def positive_int(text: str) -> int:
    """An integer >= 1 (iterations, batch sizes, counts)."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional counts)."""
    return _integer(text, 0)


def finite_float(text: str) -> float:
    """Any finite number: argparse's ``float`` alone lets ``nan``, ``inf`` and ``1e999`` through."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {brief(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {brief(text)}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {brief(text)}")
    return value


def probability(text: str) -> float:
    """A finite number in [0, 1] (scores, thresholds)."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {brief(text)}")
    return value


def channel_width(text: str) -> int | str:
    """``auto`` or a channel count >= 8 (the baselines' FPN / ASPP / head width)."""
    if text == "auto":
        return text
    try:
        return _integer(text, 8)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a channel count >= 8, got {brief(text)}") from None


def preset_name(text: str) -> str:
    """The name of a preset in ``PRESETS``, with a "did you mean" for a typo."""
    from mask2former.presets import PRESETS

    if text not in PRESETS:
        hint = did_you_mean(text, PRESETS, n=3, fallback="; see `mask2former presets`")
        raise argparse.ArgumentTypeError(f"unknown preset {brief(text)}{hint}")
    return text


def pixel_limit(text: str) -> str:
    """A pixel count >= 1 or ``none`` (no limit), for ``--max-image-pixels``."""
    if text.strip().lower() == "none":
        return "none"
    return str(_integer(text.replace("_", ""), 1))
