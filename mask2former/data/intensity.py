"""Intensity rules: images of any bit depth and channel count onto the model's input scale.

The one place that decides what a pixel value means to the model. Images arrive as
``data.image.read_image`` decodes them: 8-bit files as uint8, already on the 0-255 scale the
model's ``pixels.mean`` / ``pixels.std`` normalise (they pass unchanged, bit for bit); 16-bit,
32-bit and float files as float32 raw values, which ``pixels.intensity`` maps:

- ``percentile`` (the default): each channel of each image clipped to its 0.5th-99.5th
  percentiles (nnU-Net's clip) and that range scaled to 0..255;
- ``window``: clipped to a fixed ``pixels.window = (low, high)`` (CT: -1000, 400) and scaled to 0..255;
- ``zscore`` (MRI, nnU-Net's normalisation): each channel's mean and std over its nonzero region
  (the body, not the air around it); ``mean - 4 std .. mean + 4 std`` scaled to 0..255, clipped;
- ``dataset``: raw values, normalised by the dataset's own per-channel mean / std
  (``mask2former stats DATA.yaml`` computes them, ``ChannelStats`` here).

Training (``DatasetSplit.training_image``), evaluation and prediction (``Predictor``) all map
through ``to_model_input`` with the rule the checkpoint stores, so the three never differ. An image
predicted tile by tile fixes its ranges once (``rule_ranges``, ``apply_ranges``) and hands the
tiles over as ``OnModelScale``, so that no tile is stretched by its own percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mask2former.config import PixelConfig
from mask2former.errors import ImageError

PERCENTILES = (0.5, 99.5)  # nnU-Net's clip of CT intensities, per image here
ZSCORE_CLIP = 4.0  # z-scores beyond +/- 4 are clipped: 0..255 spans 8 standard deviations


def _finite(image: np.ndarray, source: str) -> None:
    bad = image.size - int(np.isfinite(image).sum())
    if bad:
        raise ImageError(f"{source}: {bad:,} pixels are NaN or infinite; no intensity rule can place them "
                         "(fill them with a value first)")


def _scale(x: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """``x`` clipped to ``[low, high]`` and that range scaled to 0..255, in float64."""
    span = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    out = (np.clip(x, low, high) - low) * np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    return np.asarray(out)


def percentile_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(low, high)`` of an ``[H, W, C]`` image: its 0.5th and 99.5th percentiles
    (numpy's linear interpolation)."""
    flat = np.asarray(image.reshape(-1, image.shape[-1]), dtype=np.float64)
    low, high = np.percentile(flat, PERCENTILES, axis=0)
    return low, high


def zscore_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean - 4 std, mean + 4 std)`` of an ``[H, W, C]`` image's nonzero values
    (all values where a channel has none); a constant region gets a span of 1e-8 around its mean."""
    flat = np.asarray(image.reshape(-1, image.shape[-1]), dtype=np.float64)
    low, high = np.empty(flat.shape[1]), np.empty(flat.shape[1])
    for c in range(flat.shape[1]):
        values = flat[:, c]
        region = values[values != 0] if (values != 0).any() else values
        mean, std = float(region.mean()), max(float(region.std()), 1e-8)
        low[c], high[c] = mean - ZSCORE_CLIP * std, mean + ZSCORE_CLIP * std
    return low, high


RANGES = {"percentile": percentile_range, "zscore": zscore_range}  # the rules whose range each image sets


def apply_intensity(image: np.ndarray, rule: str, window: Sequence[float] = (), source: str = "image"
                    ) -> np.ndarray:
    """``[H, W, C]`` on the model's scale: uint8 unchanged; any other dtype as float32 by ``rule``
    (a constant channel, which has no range, becomes 0 under ``percentile``)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in "biuf":
        raise ImageError(f"{source}: pixels of type {image.dtype} are not image intensities")
    x = image.astype(np.float64)
    _finite(x, source)
    if rule == "window":
        low, high = window
        return _scale(x, low, high).astype(np.float32)
    if rule in RANGES:
        return _scale(x, *RANGES[rule](x)).astype(np.float32)
    if rule == "dataset":
        return image.astype(np.float32)
    raise ValueError(f"unknown intensity rule {rule!r}")


def rule_ranges(sample: np.ndarray, pixels: PixelConfig, source: str = "image"
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel ``(low, high)`` that ``pixels.intensity`` maps to 0..255, fixed once from
    ``sample`` (the whole image, or a decimated read of a raster too large to hold) so that every
    tile of one image is mapped alike (``apply_ranges``); None where values pass as they are
    (8-bit images, the ``dataset`` rule)."""
    sample = as_image_array(sample, source)
    if sample.dtype == np.uint8 or pixels.intensity == "dataset":
        return None
    if pixels.intensity == "window":
        channels = sample.shape[2]
        return np.full(channels, pixels.window[0], np.float64), np.full(channels, pixels.window[1], np.float64)
    x = sample.astype(np.float64)
    _finite(x, source)
    return RANGES[pixels.intensity](x)


def apply_ranges(image: np.ndarray, ranges: tuple[np.ndarray, np.ndarray] | None, source: str = "image"
                 ) -> np.ndarray:
    """``image`` (or a tile of it) on the model's scale by ``rule_ranges``' ranges: float32, each
    channel clipped to its range and scaled to 0..255; unchanged when ``ranges`` is None (8-bit
    images stay uint8, ``dataset`` values become float32)."""
    image = as_image_array(image, source)
    if ranges is None:
        return image if image.dtype == np.uint8 else image.astype(np.float32)
    x = image.astype(np.float64)
    _finite(x, source)
    return _scale(x, *ranges).astype(np.float32)


def match_channels(image: np.ndarray, channels: int, source: str = "image") -> np.ndarray:
    """``image`` with the model's channel count: one channel given to a 3-channel model is
    replicated (as grayscale photos always were), an 8-bit gray image read as RGB (three equal
    channels) given to a 1-channel model keeps one; any other difference is an ``ImageError``."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if have == 3 and channels == 1 and image.dtype == np.uint8 and \
            (image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all():
        return np.ascontiguousarray(image[..., :1])
    raise ImageError(f"{source}: the image has {have} channel{'s' * (have != 1)} but the model takes {channels} "
                     f"(model.pixels.channels; DATA.yaml 'channels')")


def as_image_array(image: np.ndarray, source: str = "image") -> np.ndarray:
    """An ``[H, W]`` or ``[H, W, C]`` array as ``[H, W, C]``; other shapes are an ``ImageError``."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or min(image.shape) < 1:
        raise ImageError(f"{source}: expected an [H, W] or [H, W, C] image array, got {image.dtype} "
                         f"{tuple(image.shape)}")
    return image


def to_model_input(image: np.ndarray, pixels: PixelConfig, source: str = "image") -> np.ndarray:
    """A decoded image (``read_image``) as the model takes it before normalising: ``[H, W,
    pixels.channels]``, uint8 for 8-bit images (unchanged) or float32 mapped by ``pixels.intensity``."""
    image = as_image_array(image, source)
    mapped = apply_intensity(image, pixels.intensity, pixels.window, source)
    return match_channels(mapped, pixels.channels, source)


@dataclass(frozen=True)
class OnModelScale:
    """An image already on the model's scale (``to_model_input``'s output, or a tile of it), which a
    ``Predictor`` takes as it is: a large image mapped once as a whole and predicted tile by tile
    must not have each tile stretched by its own percentiles."""

    pixels: np.ndarray  # [H, W, C]


def resize_channels(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``[H, W, C]`` image of any dtype and channel count to ``size=(h, w)``:
    each channel through Pillow's filter (``L`` for uint8, ``F`` for float32), the resampling
    ``transforms.resize_image`` applies to uint8 RGB."""
    if image.shape[:2] == tuple(size):
        return image
    mode = "L" if image.dtype == np.uint8 else "F"
    data = image if mode == "L" else image.astype(np.float32, copy=False)
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(data[..., c]), mode=mode)
                         .resize((size[1], size[0]), Image.Resampling.BILINEAR)) for c in range(image.shape[2])]
    return np.stack(planes, axis=2)


# --------------------------------------------------------------------------- a view for people


def display_image(image: np.ndarray, pixels: PixelConfig | None = None) -> np.ndarray:
    """``[H, W, 3]`` uint8 for people to look at: the channels ``pixels.display_channels`` (default:
    the first three, or the first one as gray) on the 0-255 scale of ``pixels.intensity``; raw values
    (the ``dataset`` rule) are shown stretched between their 0.5th and 99.5th percentiles."""
    pixels = pixels or PixelConfig()
    image = as_image_array(image)
    if image.dtype == np.uint8 and image.shape[2] == 3 and not pixels.display_channels:
        return image  # 8-bit RGB, as it always was
    if image.dtype != np.uint8:
        rule = "percentile" if pixels.intensity == "dataset" else pixels.intensity
        image = apply_intensity(image, rule, pixels.window)
    chosen = list(pixels.display_channels) or ([0, 1, 2] if image.shape[2] >= 3 else [0])
    chosen = [c if c < image.shape[2] else 0 for c in chosen]  # a gray image under an RGB view
    view = image[..., chosen * 3 if len(chosen) == 1 else chosen]
    return np.clip(np.rint(view), 0, 255).astype(np.uint8) if view.dtype != np.uint8 else np.ascontiguousarray(view)


# --------------------------------------------------------------------------- dataset statistics


class ChannelStats:
    """Per-channel mean and (population) standard deviation over images streamed one at a time:
    each image's count, mean and sum of squared deviations, merged by Chan et al.'s pairwise
    update in float64, so memory stays one image and the result does not depend on the order's
    rounding the way running sums of squares would."""

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        """Accumulate an ``[H, W, C]`` image (every image must have the same C)."""
        flat = image.reshape(-1, image.shape[-1]).astype(np.float64)
        n = flat.shape[0]
        mean_np = flat.mean(0)
        m2 = ((flat - mean_np) ** 2).sum(0)
        if self._mean is None or self._m2 is None:
            self.count, self._mean, self._m2 = n, mean_np, m2
            return
        if mean_np.shape != self._mean.shape:
            raise ImageError(f"an image has {mean_np.shape[0]} channels where the others have {self._mean.shape[0]}")
        total = self.count + n
        delta = mean_np - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def mean(self) -> tuple[float, ...]:
        if self._mean is None:
            raise ValueError("no images were added")
        return tuple(float(v) for v in self._mean)

    @property
    def std(self) -> tuple[float, ...]:
        if self._m2 is None:
            raise ValueError("no images were added")
        return tuple(float(np.sqrt(v / self.count)) for v in self._m2)

