"""Mask2Former for universal image segmentation (semantic, instance, panoptic) in pure PyTorch.

    from mask2former import build_model, load_model, Predictor, PRESETS
"""

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

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "ImageError",
    "Mask2Former",
    "Mask2FormerError",
    "Mask2FormerOutput",
    "ModelConfig",
    "Predictor",
    "TrainingError",
    "build_model",
    "get_preset",
    "load_model",
    "save_model",
]
