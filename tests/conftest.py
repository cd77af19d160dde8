"""Shared fixtures: tiny models and synthetic images, CPU only, nothing downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mask2former import build_model, get_preset
from mask2former.cpu import BF16_OVERRIDE

torch.set_num_threads(2)
# Tests compare exact fp32 numbers; `--precision auto` would pick bf16 on CPUs with native bf16.
# The auto choice itself is tested with this variable set both ways (tests/test_precision.py).
os.environ[BF16_OVERRIDE] = "0"
# Tests never download: weights by name look in the caches only, unless a test points the mirror at
# its own server on 127.0.0.1 (tests/test_download.py).
os.environ["MASK2FORMER_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_model():
    """A tiny Swin Mask2Former in eval mode (4 classes, 8 queries)."""
    return build_model(get_preset("tiny")).eval()


@pytest.fixture
def tiny_resnet_model():
    return build_model(get_preset("tiny_resnet")).eval()


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A blocky random RGB image ``[h, w, 3]`` uint8 (structure for the model to respond to)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(-(-h // 8), -(-w // 8), 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w])
