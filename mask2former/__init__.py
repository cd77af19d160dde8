"""Mask2Former for universal image segmentation (semantic, instance, panoptic) in pure PyTorch.

    from mask2former import build_model, load_model, Predictor, PRESETS

The names below are imported on first use, so that ``import mask2former`` (and ``mask2former
--help``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "build_model": "mask2former.build", "ModelConfig": "mask2former.config",
    "CheckpointError": "mask2former.errors", "ConfigError": "mask2former.errors", "DatasetError": "mask2former.errors",
    "ImageError": "mask2former.errors", "Mask2FormerError": "mask2former.errors",
    "TrainingError": "mask2former.errors", "Predictor": "mask2former.inference.predictor",
    "Mask2Former": "mask2former.modeling", "PRESETS": "mask2former.presets", "get_preset": "mask2former.presets",
    "Mask2FormerOutput": "mask2former.structures", "load_model": "mask2former.weights",
    "save_model": "mask2former.weights",
}
__all__ = [
    "PRESETS", "CheckpointError", "ConfigError", "DatasetError", "ImageError", "Mask2Former", "Mask2FormerError",
    "Mask2FormerOutput", "ModelConfig", "Predictor", "TrainingError", "build_model", "get_preset", "load_model",
    "save_model",
]

if TYPE_CHECKING:
    from mask2former.build import build_model
    from mask2former.config import ModelConfig
    from mask2former.errors import (
        CheckpointError,
        ConfigError,
        DatasetError,
        ImageError,
        Mask2FormerError,
        TrainingError,
    )
    from mask2former.inference.predictor import Predictor
    from mask2former.modeling import Mask2Former
    from mask2former.presets import PRESETS, get_preset
    from mask2former.structures import Mask2FormerOutput
    from mask2former.weights import load_model, save_model


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mask2former' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
