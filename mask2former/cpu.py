"""What this CPU is and what it computes natively: named in every figure, and read when picking a
precision (bf16 pays only where the CPU has bf16 instructions; elsewhere it is emulated and slow)."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path

SPEED_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_OVERRIDE = "MASK2FORMER_BF16"  # "0" or "1": overrides the detection (containers may hide flags)


@functools.cache
def _model_and_flags() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or "unknown CPU", frozenset[str]()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = frozenset(value.split())
                break
    return model, flags


def cpu_flags() -> frozenset[str]:
    return _model_and_flags()[1]


def cpu_name() -> str:
    """The CPU a figure was measured on: its model name and its widest vector extensions
    (numbers differ in the last digits between CPU types, and speed more)."""
    model, flags = _model_and_flags()
    found = [name for flag, name in SPEED_FLAGS if flag in flags]
    return f"{model} ({', '.join(found) if found else 'no AVX2'}, {os.cpu_count()} cores)"


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), or ``MASK2FORMER_BF16`` says."""
    override = os.environ.get(BF16_OVERRIDE, "").strip()
    if override in ("0", "1"):
        return override == "1"
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)
