"""Dataclass configs: one small dataclass per component, defaults = the paper's settings.

A checkpoint stores ``to_dict(config)`` so that it rebuilds its own model. ``from_dict`` is
strict: an unknown key is an error with a "did you mean" suggestion, so a typo in a YAML file
or a ``--set`` override never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mask2former.errors import ConfigError

T = TypeVar("T")


@dataclass
class BackboneConfig:
    """Backbone architecture. ``name`` is ``"resnet"`` or ``"swin"``; the other fields of the
    unused family are ignored."""

    name: str = "resnet"
    # ResNet (torchvision layout, stride on the 3x3 conv)
    depth: int = 50
    norm: str = "FrozenBN"  # "FrozenBN" | "BN" | "SyncBN"
    # Swin
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.3
    pretrain_img_size: int = 224  # informational: the ImageNet resolution of the init weights


@dataclass
class PixelDecoderConfig:
    """Multi-scale deformable-attention pixel decoder (official MSDeformAttnPixelDecoder)."""

    conv_dim: int = 256
    mask_dim: int = 256
    num_encoder_layers: int = 6
    encoder_ffn_dim: int = 1024  # hard-wired in the official code; the config's 2048 is ignored there
    num_heads: int = 8
    num_points: int = 4
    dropout: float = 0.0
    common_stride: int = 4


@dataclass
class DecoderConfig:
    """Masked-attention transformer decoder."""

    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 2048
    num_layers: int = 9  # official DEC_LAYERS=10 counts the prediction from the learnable queries
    pre_norm: bool = False
    dropout: float = 0.0
    enforce_input_proj: bool = False


@dataclass
class LossConfig:
    """Set-prediction loss (Hungarian matching + CE + point-sampled BCE and dice)."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    deep_supervision: bool = True


@dataclass
class InferenceConfig:
    """Test-time resize and post-processing (official TEST / MASK_FORMER.TEST settings)."""

    min_size: int = 800
    max_size: int = 1333
    size_divisibility: int = 32
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    topk_per_image: int = 100
    semantic_on: bool = True
    instance_on: bool = True
    panoptic_on: bool = True
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)
    pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375)


@dataclass
class CategoryInfo:
    """One class: ``id`` is the category id used in the dataset's files (COCO ids are
    non-contiguous); its index in ``ModelConfig.categories`` is the contiguous training id."""

    id: int
    name: str
    isthing: bool = True
    color: tuple[int, int, int] = (0, 0, 0)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and run it the way it was trained."""

    num_classes: int = 133
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    categories: list[CategoryInfo] = field(default_factory=list)
    dataset: str = ""

    def validate(self) -> ModelConfig:
        """Raise ConfigError on settings the model cannot be built with."""
        b = self.backbone
        if b.name not in ("resnet", "swin"):
            raise ConfigError(f"backbone.name must be 'resnet' or 'swin', got {b.name!r}")
        if b.name == "resnet":
            if b.depth not in (18, 34, 50, 101, 152):
                raise ConfigError(f"backbone.depth must be one of 18, 34, 50, 101, 152, got {b.depth}")
            if b.norm not in ("FrozenBN", "BN", "SyncBN"):
                raise ConfigError(f"backbone.norm must be FrozenBN, BN or SyncBN, got {b.norm!r}")
        else:
            if len(b.depths) != 4 or len(b.num_heads) != 4:
                raise ConfigError("backbone.depths and backbone.num_heads need 4 entries (one per stage)")
            for i, heads in enumerate(b.num_heads):
                if (b.embed_dim * 2**i) % heads:
                    raise ConfigError(
                        f"backbone stage {i}: width {b.embed_dim * 2**i} is not divisible by {heads} heads"
                    )
        if self.num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {self.num_classes}")
        p, d = self.pixel_decoder, self.decoder
        if p.conv_dim % 32:
            raise ConfigError(f"pixel_decoder.conv_dim must be a multiple of 32 (GroupNorm), got {p.conv_dim}")
        if p.conv_dim % p.num_heads:
            raise ConfigError("pixel_decoder.conv_dim must be divisible by pixel_decoder.num_heads")
        if d.hidden_dim % d.num_heads:
            raise ConfigError("decoder.hidden_dim must be divisible by decoder.num_heads")
        if d.num_queries < 1 or d.num_layers < 1:
            raise ConfigError("decoder.num_queries and decoder.num_layers must be >= 1")
        if self.categories and len(self.categories) != self.num_classes:
            raise ConfigError(
                f"categories lists {len(self.categories)} classes but num_classes is {self.num_classes}"
            )
        return self

    @property
    def class_names(self) -> list[str]:
        if self.categories:
            return [c.name for c in self.categories]
        return [f"class_{i}" for i in range(self.num_classes)]

    @property
    def thing_flags(self) -> list[bool]:
        """Is-thing flag per contiguous class; without metadata every class counts as a thing."""
        if self.categories:
            return [c.isthing for c in self.categories]
        return [True] * self.num_classes


# --------------------------------------------------------------------------- (de)serialisation


def to_dict(config: Any) -> Any:
    """Plain JSON/YAML-ready structure (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    return config


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, _where=where)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(value, non_none[0], where)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        return tuple(_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], _where: str = "") -> T:
    """Build dataclass ``cls`` from a plain dict; unknown keys raise with a suggestion."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        where = f"{_where}.{key}" if _where else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {where!r}{hint}")
        kwargs[key] = _convert(value, hints[key], where)
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings (``--set``) -> dict; values are read as YAML scalars or lists, never
    evaluated as code."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def apply_overrides(config: T, overrides: dict[str, Any]) -> T:
    """Return a copy of ``config`` with dotted keys (``decoder.num_queries=50``) replaced."""
    data = to_dict(config)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                options = list(node) if isinstance(node, dict) else []
                close = difflib.get_close_matches(part, options, n=1)
                hint = f"; did you mean {'.'.join(parts[:depth] + [close[0]])!r}?" if close else ""
                raise ConfigError(f"unknown config key {dotted!r}{hint}")
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return from_dict(type(config), data)


# --------------------------------------------------------------------------- training


@dataclass
class SolverConfig:
    """Optimiser and schedule (the reference's AdamW recipe)."""

    base_lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_multiplier: float = 0.1
    weight_decay_norm: float = 0.0  # norm layers
    weight_decay_embed: float = 0.0  # nn.Embedding (queries, decoder level embedding)
    clip_grad_norm: float = 0.01  # full-model L2 norm; 0 disables
    schedule: str = "poly"  # "poly" | "multistep" | "constant"
    poly_power: float = 0.9
    steps: tuple[float, ...] = (0.8889, 0.9630)  # multistep decay points as fractions of max_iter
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 1.0
    amp: str = "auto"  # "auto" (fp16 on CUDA, off on CPU) | "off" | "fp16" | "bf16"


@dataclass
class InputConfig:
    """Training augmentation: "lsj" (instance / panoptic) or "semantic" (resize + crop)."""

    augmentation: str = "lsj"
    crop_size: tuple[int, int] = (1024, 1024)
    base_size: int = 512  # semantic: the short side is drawn from 0.5-2.0 x base_size
    min_scale: float = 0.1
    max_scale: float = 2.0
    cat_max_ratio: float = 1.0
    color_jitter: bool = False
    flip: bool = True


@dataclass
class TrainConfig:
    """A training run: the model, its loss/solver, input pipeline and loop settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    input: InputConfig = field(default_factory=InputConfig)
    max_iter: int = 90000
    batch_size: int = 16  # global: split over processes and gradient-accumulation steps
    grad_accum: int = 1
    num_workers: int = 2
    seed: int = 0
    checkpoint_period: int = 5000
    eval_period: int = 0  # 0: only at the end
    log_period: int = 20
    keep_checkpoints: int = 3  # periodic checkpoints kept besides last.pt (0 keeps all)

    def validate(self) -> TrainConfig:
        self.model.validate()
        s, i = self.solver, self.input
        if s.schedule not in ("poly", "multistep", "constant"):
            raise ConfigError(f"solver.schedule must be poly, multistep or constant, got {s.schedule!r}")
        if s.amp not in ("auto", "off", "fp16", "bf16"):
            raise ConfigError(f"solver.amp must be auto, off, fp16 or bf16, got {s.amp!r}")
        if i.augmentation not in ("lsj", "semantic", "none"):
            raise ConfigError(f"input.augmentation must be lsj, semantic or none, got {i.augmentation!r}")
        if len(i.crop_size) != 2:
            raise ConfigError("input.crop_size needs two values (height, width)")
        if self.max_iter < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("max_iter, batch_size and grad_accum must be >= 1")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        return self
