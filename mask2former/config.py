"""Dataclass configs: one small dataclass per component, defaults = the paper's settings.

A checkpoint stores ``to_dict(config)`` so that it rebuilds its own model. ``from_dict`` is
strict: an unknown key is an error with a "did you mean" suggestion, so a typo in a YAML file
or a ``--set`` override never silently falls back to a default; a NaN or infinite number is
refused wherever it appears. ``validate()`` range-checks every field (each dataclass's ``check``
holds the rules for its own fields), so an out-of-range value is an error naming its dotted key
before anything is built or loaded, never a silent clamp or a crash deep in a run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from mask2former.errors import ConfigError, brief
from mask2former.formats import did_you_mean

T = TypeVar("T")


# --------------------------------------------------------------------------- range checks


def _fail(key: str, rule: str, value: Any) -> NoReturn:
    raise ConfigError(f"{key} must be {rule}, got {brief(value)}")


def _bounds(low: float | None, high: float | None, open_low: bool = False, open_high: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    if low is not None:
        return f" {'>' if open_low else '>='} {low}"
    return f" {'<' if open_high else '<='} {high}" if high is not None else ""


def _int(key: str, value: Any, low: int, high: int | None = None) -> None:
    """An integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _fail(key, "an integer" + _bounds(low, high), value)


def _real(key: str, value: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False,
          open_high: bool = False) -> None:
    """A finite number within the bounds; NaN fails no ``<`` test, so finiteness is checked first."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        _fail(key, "a finite number" + _bounds(low, high, open_low, open_high), value)


def _sequence(key: str, values: Any, count: int | None, what: str) -> None:
    if not isinstance(values, list | tuple) or (count is not None and len(values) != count):
        _fail(key, f"a list of {count or 'some'} {what}", values)


def _choice(key: str, value: Any, options: Sequence[Any]) -> None:
    if value not in options:
        _fail(key, "one of " + ", ".join(map(str, options)), value)


# --------------------------------------------------------------------------- model


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
    # the file the backbone starts from: a path, "imagenet" / "imagenet-22k" (the standard file, from the
    # local torchvision / HuggingFace caches) or "" (random initialisation); see mask2former.backbone_weights
    weights: str = ""

    def check(self, where: str) -> None:
        """The unused family's fields are range-checked too: their defaults always pass, and a bad
        value there is a mistake in the file all the same."""
        _choice(f"{where}.name", self.name, ("resnet", "swin"))
        _choice(f"{where}.depth", self.depth, (18, 34, 50, 101, 152))
        _choice(f"{where}.norm", self.norm, ("FrozenBN", "BN", "SyncBN"))
        _int(f"{where}.embed_dim", self.embed_dim, 1)
        stages = 4 if self.name == "swin" else None  # one entry per stage
        for name in ("depths", "num_heads"):
            values = getattr(self, name)
            _sequence(f"{where}.{name}", values, stages, "integers >= 1")
            for i, v in enumerate(values):
                _int(f"{where}.{name}[{i}]", v, 1)
        _int(f"{where}.window_size", self.window_size, 1)
        _real(f"{where}.mlp_ratio", self.mlp_ratio, 0, open_low=True)
        _real(f"{where}.drop_path_rate", self.drop_path_rate, 0, 1, open_high=True)
        _int(f"{where}.pretrain_img_size", self.pretrain_img_size, 1)
        if not isinstance(self.weights, str):
            _fail(f"{where}.weights", "a file path, 'imagenet', 'imagenet-22k' or '' (random initialisation)",
                  self.weights)
        if self.name == "swin":
            for i, heads in enumerate(self.num_heads):
                if (self.embed_dim * 2**i) % heads:
                    raise ConfigError(f"{where}.num_heads[{i}]: stage {i} width {self.embed_dim * 2**i} is not "
                                      f"divisible by {heads} heads")


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

    def check(self, where: str) -> None:
        for name in ("conv_dim", "mask_dim", "num_encoder_layers", "encoder_ffn_dim", "num_heads", "num_points"):
            _int(f"{where}.{name}", getattr(self, name), 1)
        _real(f"{where}.dropout", self.dropout, 0, 1, open_high=True)
        # the mask features come from res2 (stride 4) or, with no extra FPN level, res3 (stride 8)
        _choice(f"{where}.common_stride", self.common_stride, (4, 8))
        if self.conv_dim % 32:
            raise ConfigError(f"{where}.conv_dim must be a multiple of 32 (GroupNorm), got {self.conv_dim}")
        if self.conv_dim % self.num_heads:
            raise ConfigError(f"{where}.conv_dim {self.conv_dim} is not divisible by {where}.num_heads "
                              f"{self.num_heads}")


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

    def check(self, where: str) -> None:
        for name in ("hidden_dim", "num_queries", "num_heads", "ffn_dim", "num_layers"):
            _int(f"{where}.{name}", getattr(self, name), 1)
        _real(f"{where}.dropout", self.dropout, 0, 1, open_high=True)
        if self.hidden_dim % 4:  # sine position encoding: sin and cos halves of hidden_dim / 2
            raise ConfigError(f"{where}.hidden_dim must be a multiple of 4, got {self.hidden_dim}")
        if self.hidden_dim % self.num_heads:
            raise ConfigError(f"{where}.hidden_dim {self.hidden_dim} is not divisible by {where}.num_heads "
                              f"{self.num_heads}")


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

    def check(self, where: str) -> None:
        for name in ("class_weight", "mask_weight", "dice_weight", "no_object_weight"):
            _real(f"{where}.{name}", getattr(self, name), 0)
        _int(f"{where}.num_points", self.num_points, 1)
        _real(f"{where}.oversample_ratio", self.oversample_ratio, 1)
        _real(f"{where}.importance_sample_ratio", self.importance_sample_ratio, 0, 1)


@dataclass
class InferenceConfig:
    """Test-time resize and post-processing (official TEST / MASK_FORMER.TEST settings)."""

    min_size: int = 800
    max_size: int = 1333
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    topk_per_image: int = 100
    semantic_on: bool = True
    instance_on: bool = True
    panoptic_on: bool = True

    def check(self, where: str) -> None:
        _int(f"{where}.min_size", self.min_size, 1)
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < self.min_size:
            _fail(f"{where}.max_size", f"an integer >= {where}.min_size ({self.min_size})", self.max_size)
        _real(f"{where}.object_mask_threshold", self.object_mask_threshold, 0, 1)
        _real(f"{where}.overlap_threshold", self.overlap_threshold, 0, 1)
        _int(f"{where}.topk_per_image", self.topk_per_image, 1)


IMAGENET_MEAN = (123.675, 116.280, 103.530)  # RGB, on the 0-255 scale
IMAGENET_STD = (58.395, 57.120, 57.375)
INTENSITY_RULES = ("percentile", "window", "zscore", "dataset")
MAX_CHANNELS = 1024  # a hyperspectral cube has a few hundred bands; more is a mistake in a file


def imagenet_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's per-channel mean and std spread over ``channels`` the way an RGB stem is adapted
    (``backbone_weights.adapt_input_conv``): 3 channels: RGB's own; 1: their average (its filter is
    the sum of the RGB filters); N: cycled R, G, B, R, ... (its filters are)."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
    return (tuple(IMAGENET_MEAN[i % 3] for i in range(channels)), tuple(IMAGENET_STD[i % 3] for i in range(channels)))


@dataclass
class PixelConfig:
    """How images become the model's ``pixel_values``, the same in training and inference.

    8-bit images are on the 0-255 scale as they are. Other images (16-bit, 32-bit, float, multi-band
    TIFF) are mapped onto it by ``intensity`` (``mask2former.data.intensity``): ``"percentile"`` clips
    each image's channels to their 0.5-99.5th percentiles and scales that to 0..255 (nnU-Net's clip),
    ``"window"`` clips to ``window = (low, high)`` (e.g. CT -1000, 400) and scales that to 0..255,
    ``"zscore"`` (MRI) maps mean -/+ 4 std of each channel's nonzero region (the body, not the air
    around it) to 0..255, ``"dataset"`` keeps the raw values, which ``mean``/``std`` (the dataset's,
    ``mask2former stats``) then normalise. Then ``(pixel - mean) / std`` per channel, zero-padded
    (after normalising, as the reference does) to a multiple of ``size_divisibility`` (the coarsest
    feature stride).
    ``channels`` is what the backbone's stem takes; a 1-channel image given to a 3-channel model is
    replicated. ``display_channels`` picks the channels overlays show (default: the first three, or
    the first one as gray)."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    size_divisibility: int = 32
    channels: int = 3
    intensity: str = "percentile"
    window: tuple[float, ...] = ()
    display_channels: tuple[int, ...] = ()

    def check(self, where: str) -> None:
        _int(f"{where}.size_divisibility", self.size_divisibility, 1)
        _int(f"{where}.channels", self.channels, 1, MAX_CHANNELS)
        what = "numbers (R, G, B)" if self.channels == 3 else f"numbers, one per channel ({where}.channels)"
        for name, low in (("mean", None), ("std", 0)):
            values = getattr(self, name)
            _sequence(f"{where}.{name}", values, self.channels, what)
            for i, v in enumerate(values):
                _real(f"{where}.{name}[{i}]", v, low, open_low=True)
        _choice(f"{where}.intensity", self.intensity, INTENSITY_RULES)
        if self.intensity == "window":
            _sequence(f"{where}.window", self.window, 2, "numbers (low, high) for intensity 'window'")
            for i, v in enumerate(self.window):
                _real(f"{where}.window[{i}]", v)
            if not self.window[0] < self.window[1]:
                _fail(f"{where}.window", "(low, high) with low < high", self.window)
        elif self.window:  # set and silently unused would be a wrong result without a word
            _fail(f"{where}.window", f"empty unless {where}.intensity is 'window' (it is {self.intensity!r})",
                  self.window)
        _sequence(f"{where}.display_channels", self.display_channels, None, "channel indices")
        if len(self.display_channels) not in (0, 1, 3):
            _fail(f"{where}.display_channels", "empty (the default view), one channel (gray) or three (R, G, B)",
                  self.display_channels)
        for i, v in enumerate(self.display_channels):
            _int(f"{where}.display_channels[{i}]", v, 0, self.channels - 1)


@dataclass
class CategoryInfo:
    """One class: ``id`` is the category id used in the dataset's files (COCO ids are
    non-contiguous); its index in ``ModelConfig.categories`` is the contiguous training id."""

    id: int
    name: str
    isthing: bool = True
    color: tuple[int, int, int] = (0, 0, 0)

    def check(self, where: str) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, int):
            _fail(f"{where}.id", "an integer", self.id)
        _sequence(f"{where}.color", self.color, 3, "integers in [0, 255] (R, G, B)")
        for i, v in enumerate(self.color):
            _int(f"{where}.color[{i}]", v, 0, 255)


_MOVED_TO_PIXELS = {"pixel_mean": "mean", "pixel_std": "std", "size_divisibility": "size_divisibility"}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and run it the way it was trained."""

    num_classes: int = 133
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    pixels: PixelConfig = field(default_factory=PixelConfig)
    categories: list[CategoryInfo] = field(default_factory=list)
    dataset: str = ""

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """A stored config of an earlier layout, in today's: checkpoints written before the pixel
        settings had their own section kept them in ``inference`` (``pixel_mean`` ...). Settings
        added later (``pixels.channels``, ``intensity``, ``window``, ``display_channels``) take their
        defaults, which do what those models did with the only images they took (8-bit RGB)."""
        inference = data.get("inference")
        if isinstance(inference, dict) and any(k in inference for k in _MOVED_TO_PIXELS):
            inference = dict(inference)
            pixels = dict(data.get("pixels") or {})
            for old, new in _MOVED_TO_PIXELS.items():
                if old in inference:
                    pixels[new] = inference.pop(old)
            data = {**data, "inference": inference, "pixels": pixels}
        return data

    def validate(self, prefix: str = "") -> ModelConfig:
        """Raise ConfigError on settings the model cannot be built or run with. ``prefix`` is where
        this config sits in a bigger one ("model." in a TrainConfig), so messages name the key a
        ``--set`` must change. Also run on every checkpoint's stored config."""
        _int(f"{prefix}num_classes", self.num_classes, 1)
        for name in ("backbone", "pixel_decoder", "decoder", "loss", "inference", "pixels"):
            getattr(self, name).check(f"{prefix}{name}")
        for i, category in enumerate(self.categories):
            category.check(f"{prefix}categories[{i}]")
        duplicates = sorted(i for i, n in Counter(c.id for c in self.categories).items() if n > 1)
        if duplicates:
            raise ConfigError(f"{prefix}categories: duplicate ids {brief(duplicates)}")
        if self.categories and len(self.categories) != self.num_classes:
            raise ConfigError(f"{prefix}categories lists {len(self.categories)} classes but {prefix}num_classes is "
                              f"{self.num_classes}")
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
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
        return from_dict(annotation, value, _where=where)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(value, non_none[0], where)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {brief(value)}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {brief(value)}")
        item_type = args[0] if args else Any
        return tuple(_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {brief(value)}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where}: expected an integer, got {brief(value)}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {brief(value)}") from None
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}: expected a number, got {brief(value)}")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ConfigError(f"{where}: expected a number, got {brief(value)}") from None
        if not math.isfinite(number):  # YAML's .nan / .inf, "nan", 1e999: never a meaningful setting
            raise ConfigError(f"{where}: expected a finite number, got {brief(value)}")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {brief(value)}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], _where: str = "") -> T:
    """Build dataclass ``cls`` from a plain dict; unknown keys raise with a suggestion, and so do
    missing required ones (a hostile or truncated file must not surface as a TypeError)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{_where or cls.__name__}: expected a mapping, got {brief(data)}")
    upgrade = getattr(cls, "upgrade", None)
    if upgrade is not None:
        data = upgrade(data)
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    missing = [f.name for f in fields if f.name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{_where or cls.__name__}: missing key {missing[0]!r}")
    kwargs = {}
    for key, value in data.items():
        where = f"{_where}.{key}" if _where else key
        if key not in names:
            raise ConfigError(f"unknown config key {brief(where)}{did_you_mean(key, names)}")
        kwargs[key] = _convert(value, hints[key], where)
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings (``--set``) -> dict; values are read as YAML scalars or lists, never
    evaluated as code, and through the same bounded reader as files (an alias bomb is refused)."""
    from mask2former.safe_yaml import config_error, load_yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value, got {brief(item)}")
        key, value = item.split("=", 1)
        out[key.strip()] = load_yaml(value, origin=f"--set {brief(key.strip())}", error=config_error)
    return out


def apply_overrides(config: T, overrides: dict[str, Any]) -> T:
    """Return a copy of ``config`` with dotted keys (``decoder.num_queries=50``) replaced."""
    data = to_dict(config)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                prefix = parts[:depth]
                options = [".".join([*prefix, o]) for o in node] if isinstance(node, dict) else []
                hint = did_you_mean(".".join(parts[:depth + 1]), options, fallback="")
                raise ConfigError(f"unknown config key {brief(dotted)}{hint}")
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

    def check(self, where: str) -> None:
        """``base_lr`` and ``backbone_multiplier`` may be 0: a frozen model (or backbone) is a
        deliberate setting, e.g. to check that fine-tuning keeps every weight."""
        for name in ("base_lr", "weight_decay", "backbone_multiplier", "weight_decay_norm", "weight_decay_embed",
                     "clip_grad_norm"):
            _real(f"{where}.{name}", getattr(self, name), 0)
        _choice(f"{where}.schedule", self.schedule, ("poly", "multistep", "constant"))
        _real(f"{where}.poly_power", self.poly_power, 0, open_low=True)
        _sequence(f"{where}.steps", self.steps, None, "numbers > 0")
        for i, step in enumerate(self.steps):
            _real(f"{where}.steps[{i}]", step, 0, open_low=True)
        if any(b <= a for a, b in zip(self.steps, self.steps[1:])):
            _fail(f"{where}.steps", "increasing", self.steps)
        _real(f"{where}.gamma", self.gamma, 0, open_low=True)
        _int(f"{where}.warmup_iters", self.warmup_iters, 0)
        _real(f"{where}.warmup_factor", self.warmup_factor, 0, 1)
        _choice(f"{where}.amp", self.amp, ("auto", "off", "fp16", "bf16"))


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
    # drop training images without a non-crowd annotation (instance formats), as detectron2's FILTER_EMPTY_ANNOTATIONS
    filter_empty: bool = True

    def check(self, where: str) -> None:
        _choice(f"{where}.augmentation", self.augmentation, ("lsj", "semantic", "none"))
        if not isinstance(self.filter_empty, bool):
            _fail(f"{where}.filter_empty", "true or false", self.filter_empty)
        _sequence(f"{where}.crop_size", self.crop_size, 2, "integers >= 1 (height, width)")
        for i, v in enumerate(self.crop_size):
            _int(f"{where}.crop_size[{i}]", v, 1)
        _int(f"{where}.base_size", self.base_size, 1)
        _real(f"{where}.min_scale", self.min_scale, 0, open_low=True)
        _real(f"{where}.max_scale", self.max_scale)
        if self.max_scale < self.min_scale:
            _fail(f"{where}.max_scale", f">= {where}.min_scale ({self.min_scale})", self.max_scale)
        _real(f"{where}.cat_max_ratio", self.cat_max_ratio, 0, 1, open_low=True)


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
        """Raise ConfigError naming the dotted key (as ``--set`` spells it) of the first value out
        of range; run before any data is read, and again once the dataset has set the classes."""
        self.model.validate(prefix="model.")
        self.solver.check("solver")
        self.input.check("input")
        for name, low in (("max_iter", 1), ("batch_size", 1), ("grad_accum", 1), ("num_workers", 0),
                          ("checkpoint_period", 1), ("eval_period", 0), ("log_period", 1), ("keep_checkpoints", 0)):
            _int(name, getattr(self, name), low)
        _int("seed", self.seed, 0, 2**64 - 1)  # torch's and numpy's seed range
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if self.input.color_jitter and self.model.pixels.channels != 3:
            raise ConfigError(f"input.color_jitter jitters RGB colours, and model.pixels.channels is "
                              f"{self.model.pixels.channels}: set input.color_jitter=false")
        return self
