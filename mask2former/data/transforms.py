"""Image (and, for training, joint image + target) transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from mask2former.errors import ImageError
from mask2former.formats import IGNORE_LABEL
from mask2former.structures import Target


def shortest_edge_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Size after scaling the short side to ``min_size`` unless the long side would pass
    ``max_size`` (detectron2's ResizeShortestEdge, rounding half up)."""
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def inference_size(height: int, width: int, min_size: int, max_size: int, name: str = "image") -> tuple[int, int]:
    """``shortest_edge_size`` at test time, where an image a side of which would round to 0 px (a
    1 x 3000 strip) cannot be segmented: an ``ImageError`` naming ``name`` instead of Pillow's or
    torch's obscure complaint."""
    if height < 1 or width < 1:
        raise ImageError(f"{name}: empty image ({height}x{width})")
    size = shortest_edge_size(height, width, min_size, max_size)
    if min(size) < 1:
        raise ImageError(f"{name}: a {height}x{width} image (height x width) is too thin to segment: at the test "
                         f"size (short side {min_size}, long side at most {max_size}) it would be {size[0]}x{size[1]} "
                         "px")
    return size


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``[H, W, 3]`` uint8 image to ``size=(h, w)`` with Pillow (as the
    reference does for uint8 images)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


# ---------------------------------------------------------------------------------------------
# Training: joint image + target augmentation. Every function takes an ``[H, W, 3]`` uint8 RGB
# image, its ``Target`` (same H, W) and a ``numpy.random.Generator`` (seeded per sample by the
# loader, so runs are reproducible), and returns the transformed ``(image, target)``.

Transform = Callable[[np.ndarray, Target, np.random.Generator], tuple[np.ndarray, Target]]

PAD_VALUE = 128  # image padding of the official mappers (FixedSizeCrop, the semantic mapper)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` outputs for a nearest resize of ``n_in`` inputs, taken
    from Pillow itself so masks land exactly where Pillow's (the reference's) nearest puts them."""
    if n_in == n_out:
        return np.arange(n_in)
    line = Image.fromarray(np.arange(n_in, dtype=np.int32)[None])
    return np.asarray(line.resize((n_out, 1), Image.Resampling.NEAREST))[0].astype(np.intp)


def _resize_crop_pad(image: np.ndarray, target: Target, resized: tuple[int, int], box: tuple[int, int, int, int],
                     padded: tuple[int, int]) -> tuple[np.ndarray, Target]:
    """Resize to ``resized=(h, w)`` (image bilinear, masks nearest), keep ``box=(y0, x0, h, w)`` of
    the resized image, then pad bottom/right to ``padded`` (image 128, masks empty, ignore True).

    Masks are gathered only inside the box (nearest resize then crop is a pure index selection),
    so a 2x upscale of many masks never materialises at full size."""
    y0, x0, ch, cw = box
    h, w = image.shape[:2]
    if tuple(target.ignore.shape) != (h, w) or tuple(target.masks.shape[1:]) != (h, w):
        raise ValueError(f"target (masks {tuple(target.masks.shape)}, ignore {tuple(target.ignore.shape)}) does not "
                         f"match the {h}x{w} image")
    image = resize_image(image, resized)[y0:y0 + ch, x0:x0 + cw]
    rows = _nearest_index(h, resized[0])[y0:y0 + ch]
    cols = _nearest_index(w, resized[1])[x0:x0 + cw]
    masks = np.take(np.take(target.masks.numpy(), rows, axis=1), cols, axis=2)  # [N, ch, cw]
    ignore = np.take(np.take(target.ignore.numpy(), rows, axis=0), cols, axis=1)  # [ch, cw]
    ph, pw = max(padded[0], ch), max(padded[1], cw)
    if (ph, pw) != (ch, cw):
        out = np.full((ph, pw, 3), PAD_VALUE, dtype=np.uint8)
        out[:ch, :cw] = image
        image = out
        out_masks = np.zeros((masks.shape[0], ph, pw), dtype=bool)
        out_masks[:, :ch, :cw] = masks
        masks = out_masks
        out_ignore = np.ones((ph, pw), dtype=bool)
        out_ignore[:ch, :cw] = ignore
        ignore = out_ignore
    return np.ascontiguousarray(image), replace(target, masks=torch.from_numpy(np.ascontiguousarray(masks)),
                                                ignore=torch.from_numpy(np.ascontiguousarray(ignore)))


def large_scale_jitter(image: np.ndarray, target: Target, rng: np.random.Generator, *,
                       crop_size: int | Sequence[int], min_scale: float = 0.1,
                       max_scale: float = 2.0) -> tuple[np.ndarray, Target]:
    """The COCO instance / panoptic "LSJ" recipe: ResizeScale then FixedSizeCrop.

    The image is scaled (aspect kept) to fit ``crop_size`` times a factor drawn uniformly from
    ``[min_scale, max_scale]``, a random window of at most ``crop_size`` is kept, and the result
    is padded bottom/right to exactly ``crop_size`` (``int`` or ``(h, w)``); the padding is
    marked ignore. As in detectron2's FixedSizeCrop, one uniform draw places the window along
    both axes (offset = round(u * max_offset) per axis).
    """
    th, tw = _pair(crop_size)
    h, w = image.shape[:2]
    scale = rng.uniform(min_scale, max_scale)
    factor = min(th * scale / h, tw * scale / w)
    oh, ow = max(1, int(np.round(h * factor))), max(1, int(np.round(w * factor)))
    u = rng.uniform(0.0, 1.0)
    y0, x0 = int(np.round(max(oh - th, 0) * u)), int(np.round(max(ow - tw, 0) * u))
    return _resize_crop_pad(image, target, (oh, ow), (y0, x0, min(oh, th), min(ow, tw)), (th, tw))


def _shortest_edge_train_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge.get_output_shape, float for float, except that no side
    rounds down to 0 px: a 1 x 3000 strip capped at a long side of 2048 keeps 1 row where
    detectron2 would ask Pillow for an empty image."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short * 1.0, scale * w) if h < w else (scale * h, short * 1.0)
    if max(newh, neww) > max_size:
        shrink = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * shrink, neww * shrink
    return max(1, int(newh + 0.5)), max(1, int(neww + 0.5))


def _category_crop(semantic: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int],
                   rng: np.random.Generator, cat_max_ratio: float, ignore_label: int) -> tuple[int, int]:
    """Top-left of a random ``size`` window of the resized map ``semantic[rows][:, cols]``; with
    ``cat_max_ratio < 1`` up to 10 windows are drawn and the first where no class covers
    ``cat_max_ratio`` of the labelled pixels (and at least two classes are present) is taken,
    else the last one (detectron2's RandomCrop_CategoryAreaConstraint)."""
    oh, ow, (ch, cw) = len(rows), len(cols), size
    y0, x0 = int(rng.integers(oh - ch + 1)), int(rng.integers(ow - cw + 1))
    if cat_max_ratio >= 1.0:
        return y0, x0
    for attempt in range(10):
        if attempt:
            y0, x0 = int(rng.integers(oh - ch + 1)), int(rng.integers(ow - cw + 1))
        window = semantic[np.ix_(rows[y0:y0 + ch], cols[x0:x0 + cw])]
        counts = np.bincount(window.ravel())
        if ignore_label < len(counts):
            counts[ignore_label] = 0
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() < counts.sum() * cat_max_ratio:
            break
    return y0, x0


def resize_crop_semantic(image: np.ndarray, target: Target, rng: np.random.Generator, *, base_size: int,
                         crop_size: int | Sequence[int], min_ratio: float = 0.5, max_ratio: float = 2.0,
                         cat_max_ratio: float = 1.0, ignore_label: int = IGNORE_LABEL) -> tuple[np.ndarray, Target]:
    """The official semantic (ADE20K / Cityscapes / Mapillary) recipe: ResizeShortestEdge then
    RandomCrop_CategoryAreaConstraint, padded bottom/right to ``crop_size`` (padding = ignore).

    The short side is drawn from ``int(x * 0.1 * base_size)`` for ``x`` in ``min_ratio*10 ..
    max_ratio*10`` (the configs' list), with the long side capped at ``4 * base_size``.
    ``cat_max_ratio < 1`` rejects windows where one class covers that share of the labelled
    pixels (``ignore_label`` only names void in the internal label map; it is never a class).
    """
    th, tw = _pair(crop_size)
    h, w = image.shape[:2]
    lo, hi = int(round(min_ratio * 10)), int(round(max_ratio * 10))
    shorts = [int(x * 0.1 * base_size) for x in range(lo, hi + 1)]
    short = shorts[int(rng.integers(len(shorts)))]
    oh, ow = _shortest_edge_train_size(h, w, short, 4 * base_size)
    rows, cols = _nearest_index(h, oh), _nearest_index(w, ow)
    ch, cw = min(th, oh), min(tw, ow)
    semantic = target.semantic_map(ignore_label).numpy() if cat_max_ratio < 1.0 else np.zeros((h, w), np.int64)
    y0, x0 = _category_crop(semantic, rows, cols, (ch, cw), rng, cat_max_ratio, ignore_label)
    return _resize_crop_pad(image, target, (oh, ow), (y0, x0, ch, cw), (th, tw))


def horizontal_flip(image: np.ndarray, target: Target, rng: np.random.Generator,
                    p: float = 0.5) -> tuple[np.ndarray, Target]:
    """Mirror left-right with probability ``p`` (one draw from ``rng`` either way)."""
    if rng.random() >= p:
        return image, target
    return np.ascontiguousarray(image[:, ::-1]), replace(target, masks=target.masks.flip(-1),
                                                          ignore=target.ignore.flip(-1))


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB in 0-255 -> HSV as float32: hue in degrees [0, 360), saturation [0, 1],
    value 0-255."""
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value, low = rgb.max(-1), rgb.min(-1)
    delta = value - low
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(value == r, ((g - b) / safe) % 6.0,
                   np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) * 60.0
    hue = np.where(delta > 0, hue, 0.0)
    sat = np.where(value > 0, delta / np.where(value > 0, value, 1.0), 0.0)
    return np.stack([hue, sat, value], -1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`; float32 RGB in 0-255."""
    hue, sat, value = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    k = (np.array([5.0, 3.0, 1.0], dtype=np.float32) + hue / 60.0) % 6.0  # R, G, B
    return (value - value * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def color_jitter(image: np.ndarray, rng: np.random.Generator, *, brightness_delta: float = 32,
                 contrast_range: tuple[float, float] = (0.5, 1.5), saturation_range: tuple[float, float] = (0.5, 1.5),
                 hue_delta: int = 18) -> np.ndarray:
    """SSD photometric distortion (detectron2's ColorAugSSDTransform, used by the official
    semantic mapper); only the image changes, so targets need no update.

    Brightness (+-``brightness_delta``), then contrast before or after saturation and hue, each
    step applied with probability 0.5. ``hue_delta`` is in OpenCV's 8-bit hue units (2 degrees).
    Unlike the reference, values stay float between steps (no rounding to uint8 in between).
    """
    img = image.astype(np.float32)

    def brightness(x: np.ndarray) -> np.ndarray:
        return np.clip(x + rng.uniform(-brightness_delta, brightness_delta), 0, 255) if rng.integers(2) else x

    def contrast(x: np.ndarray) -> np.ndarray:
        return np.clip(x * rng.uniform(*contrast_range), 0, 255) if rng.integers(2) else x

    def saturation_and_hue(x: np.ndarray) -> np.ndarray:
        sat = rng.uniform(*saturation_range) if rng.integers(2) else None
        hue = int(rng.integers(-hue_delta, hue_delta + 1)) if rng.integers(2) else None
        if sat is None and hue is None:
            return x
        hsv = rgb_to_hsv(x)
        if sat is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0.0, 1.0)
        if hue is not None:
            hsv[..., 0] = (hsv[..., 0] + 2.0 * hue) % 360.0
        return hsv_to_rgb(hsv)

    img = brightness(img)
    img = saturation_and_hue(contrast(img)) if rng.integers(2) else contrast(saturation_and_hue(img))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def drop_empty(target: Target, min_area: int = 1) -> Target:
    """Remove segments with fewer than ``min_area`` pixels (e.g. cropped away). The result is
    still a valid target, with ``masks [0, H, W]`` when nothing is left."""
    if len(target) == 0:
        return target
    area = np.count_nonzero(target.masks.numpy().reshape(len(target), -1), axis=1)  # torch's bool sum is slow
    return target.select(torch.from_numpy(area >= min_area))


@dataclass(frozen=True)
class TrainTransform:
    """The training augmentation of one recipe as a picklable callable
    ``(image, target, rng) -> (image, target)`` (DataLoader workers may be spawned)."""

    kind: str
    crop_size: tuple[int, int]
    base_size: int
    min_scale: float = 0.1
    max_scale: float = 2.0
    cat_max_ratio: float = 1.0
    color: bool = False
    flip: bool = True

    def __call__(self, image: np.ndarray, target: Target, rng: np.random.Generator) -> tuple[np.ndarray, Target]:
        if self.kind == "lsj":
            if self.flip:
                image, target = horizontal_flip(image, target, rng)
            image, target = large_scale_jitter(image, target, rng, crop_size=self.crop_size,
                                               min_scale=self.min_scale, max_scale=self.max_scale)
            if self.color:
                image = color_jitter(image, rng)
        else:
            if self.kind == "semantic":
                image, target = resize_crop_semantic(image, target, rng, base_size=self.base_size,
                                                     crop_size=self.crop_size, cat_max_ratio=self.cat_max_ratio)
            if self.color:
                image = color_jitter(image, rng)
            if self.flip:
                image, target = horizontal_flip(image, target, rng)
        return image, drop_empty(target)


TRAIN_TRANSFORM_KINDS = ("lsj", "semantic", "none")


def build_train_transform(kind: str, *, crop_size: int | Sequence[int], base_size: int | None = None,
                          min_scale: float = 0.1, max_scale: float = 2.0, cat_max_ratio: float = 1.0,
                          color: bool = False, flip: bool = True) -> Transform:
    """The official training augmentation by name.

    ``"lsj"`` (COCO instance / panoptic): flip -> :func:`large_scale_jitter` [-> color].
    ``"semantic"`` (ADE20K, Cityscapes, ...): :func:`resize_crop_semantic` (``base_size``
    defaults to the crop's short side) -> color -> flip; the official semantic configs turn
    ``color`` on. ``"none"``: only color / flip, sizes unchanged. Segments emptied by the crop
    are dropped at the end.
    """
    if kind not in TRAIN_TRANSFORM_KINDS:
        raise ValueError(f"unknown augmentation {kind!r}; expected one of {', '.join(TRAIN_TRANSFORM_KINDS)}")
    size = _pair(crop_size)
    if min(size) < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    return TrainTransform(kind=kind, crop_size=size, base_size=base_size or min(size), min_scale=min_scale,
                          max_scale=max_scale, cat_max_ratio=cat_max_ratio, color=color, flip=flip)
