"""Turning a ``--device`` string into a torch device, checked before any work starts."""

from __future__ import annotations

import functools
import logging

import torch

from mask2former.errors import ConfigError

AUTO = "auto"
logger = logging.getLogger(__name__)


@functools.cache
def auto_device() -> torch.device:
    """What ``--device auto`` (the default) picks: a CUDA GPU, else Apple's MPS, else the CPU; said once."""
    if torch.cuda.is_available():
        device, why = torch.device("cuda"), torch.cuda.get_device_name(0)
    elif hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        device, why = torch.device("mps"), "Apple MPS"
    else:
        device, why = torch.device("cpu"), "no CUDA GPU or MPS here"
    logger.info("device auto: %s (%s)", device, why)
    return device


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a ``torch.device``; a device this machine
    does not have is an error now, not a CUDA stack trace after the model and data are loaded."""
    if name == AUTO:
        return auto_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device: unknown device {str(name)!r} (expected auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA GPU is available on this machine (use --device cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s), numbered from 0")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name}: Apple's MPS is not available on this machine (use --device cpu)")
    elif device.type != "cpu":
        raise ConfigError(f"--device {name}: unsupported device type {device.type!r} (expected cpu, cuda or mps)")
    return device
