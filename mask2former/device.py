"""Turning a ``--device`` string into a torch device, checked before any work starts."""

from __future__ import annotations

import torch

from mask2former.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a ``torch.device``; a device this machine does
    not have is an error now, not a CUDA stack trace after the model and data are loaded."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device: unknown device {str(name)!r} (expected cpu, cuda, cuda:N or mps)") from None
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
