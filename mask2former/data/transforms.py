"""Image (and, for training, joint image + target) transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mask2former.data import polygons as poly
from mask2former.data.intensity import resize_channels
from mask2former.data.polygons import Polygons
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
    """Bilinear resize of an ``[H, W, C]`` image to ``size=(h, w)`` with Pillow: 8-bit RGB as the
    reference does it, any other dtype or channel count channel by channel with the same filter."""
    if image.shape[:2] == tuple(size):
        return image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return resize_channels(image, size)
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


# ---------------------------------------------------------------------------------------------
# Training: joint image + target augmentation. Every function takes an ``[H, W, 3]`` uint8 RGB
# image, its ``Target`` (same H, W) and a ``numpy.random.Generator`` (seeded per sample by the
# loader, so runs are reproducible), and returns the transformed ``(image, target)``.

PAD_VALUE = 128  # image padding of the official mappers (FixedSizeCrop, the semantic mapper)
# How masks are resized, by what the official mapper resizes: "pillow" for uint8 maps (panoptic PNGs,
# decoded RLE), whose detectron2 ResizeTransform uses Pillow's NEAREST; "torch" for the semantic
# mapper's label map, read as float64 and so resized by torch's F.interpolate(mode="nearest").
NEAREST_RULES = ("pillow", "torch")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def nearest_index(n_in: int, n_out: int, rule: str = "pillow") -> np.ndarray:
    """Source index of each of ``n_out`` outputs of a nearest resize of ``n_in`` inputs, taken
    from the library itself: Pillow samples about ``floor((i + 0.5) * n_in / n_out)``, torch
    ``floor(i * n_in / n_out)``; they differ on most sizes."""
    if n_in == n_out:
        return np.arange(n_in)
    if rule == "torch":
        values = torch.arange(n_in, dtype=torch.float64).view(1, 1, 1, n_in)
        return F.interpolate(values, size=(1, n_out), mode="nearest")[0, 0, 0].numpy().astype(np.intp)
    line = Image.fromarray(np.arange(n_in, dtype=np.int32)[None])
    return np.asarray(line.resize((n_out, 1), Image.Resampling.NEAREST))[0].astype(np.intp)


@dataclass(frozen=True)
class Geometry:
    """Where one sample's pixels go, in the official order: mirror the input (``flip_input``,
    LSJ), resize ``size`` to ``resized``, keep ``window=(y0, x0, h, w)`` of it, mirror that crop
    (``flip_crop``, the semantic recipe), pad bottom/right to ``padded``. The window may reach
    past the resized image (FixedSizeCrop's does); polygons are clipped to the window itself."""

    size: tuple[int, int]
    resized: tuple[int, int]
    window: tuple[int, int, int, int]
    padded: tuple[int, int]
    flip_input: bool = False
    flip_crop: bool = False

    @property
    def crop(self) -> tuple[int, int]:
        """``(h, w)`` of the window's part inside the resized image: the unpadded output."""
        y0, x0, h, w = self.window
        return min(h, self.resized[0] - y0), min(w, self.resized[1] - x0)

    def indices(self, rule: str) -> tuple[np.ndarray, np.ndarray]:
        """Input row and column of each output pixel of the crop, for masks resized by ``rule``."""
        (y0, x0, _, _), (ch, cw) = self.window, self.crop
        rows = nearest_index(self.size[0], self.resized[0], rule)[y0:y0 + ch]
        cols = nearest_index(self.size[1], self.resized[1], rule)[x0:x0 + cw]
        if self.flip_input:
            cols = self.size[1] - 1 - cols
        return rows, cols[::-1] if self.flip_crop else cols

    def move_polygons(self, rings: Polygons) -> Polygons:
        """The rings moved as detectron2 moves them: mirror, rescale, clip to the window, mirror the crop."""
        if self.flip_input:
            rings = poly.mirror(rings, self.size[1])
        rings = poly.crop(poly.rescale(rings, self.size, self.resized), self.window)
        return poly.mirror(rings, self.crop[1]) if self.flip_crop else rings


def transform_image(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The image through ``geometry`` up to the crop (bilinear, as the reference), unpadded."""
    (y0, x0, _, _), (ch, cw) = geometry.window, geometry.crop
    if geometry.flip_input:
        image = np.ascontiguousarray(image[:, ::-1])
    image = resize_image(image, geometry.resized)[y0:y0 + ch, x0:x0 + cw]
    return np.ascontiguousarray(image[:, ::-1] if geometry.flip_crop else image)


def transform_target(target: Target, geometry: Geometry, rule: str = "pillow",
                     rings: Sequence[Polygons | None] | None = None) -> Target:
    """Masks and ignore map through ``geometry``, padded (masks empty, ignore True). Masks move as
    a pure index selection (a 2x upscale of many masks never materialises at full size); the
    segments with ``rings`` get them moved and rasterised at the output size instead."""
    h, w = geometry.size
    if tuple(target.ignore.shape) != (h, w) or tuple(target.masks.shape[1:]) != (h, w):
        raise ValueError(f"target (masks {tuple(target.masks.shape)}, ignore {tuple(target.ignore.shape)}) does not "
                         f"match the {h}x{w} image")
    rings = rings if rings is not None else [None] * len(target)
    rows, cols = geometry.indices(rule)
    (ch, cw), (ph, pw) = geometry.crop, geometry.padded
    ph, pw = max(ph, ch), max(pw, cw)
    masks = torch.zeros((len(target), ph, pw), dtype=torch.bool)
    dense = [k for k, segment in enumerate(rings) if segment is None]
    if len(dense) == len(target):
        masks[:, :ch, :cw] = torch.from_numpy(np.take(np.take(target.masks.numpy(), rows, axis=1), cols, axis=2))
    elif dense:
        source = target.masks.numpy()[dense]
        masks[dense, :ch, :cw] = torch.from_numpy(np.take(np.take(source, rows, axis=1), cols, axis=2))
    for k, segment in enumerate(rings):
        if segment is not None:
            masks[k] = torch.from_numpy(poly.rasterise(geometry.move_polygons(segment), ph, pw))
    ignore = torch.ones((ph, pw), dtype=torch.bool)
    ignore[:ch, :cw] = torch.from_numpy(np.take(np.take(target.ignore.numpy(), rows, axis=0), cols, axis=1))
    return replace(target, masks=masks, ignore=ignore)


def pad_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pad bottom/right to ``size`` with 128 (on the 0-255 scale), as the mappers do after augmenting;
    every channel, in the image's dtype."""
    ch, cw = image.shape[:2]
    ph, pw = max(size[0], ch), max(size[1], cw)
    if (ph, pw) == (ch, cw):
        return image
    out = np.full((ph, pw, *image.shape[2:]), PAD_VALUE, dtype=image.dtype)
    out[:ch, :cw] = image
    return out


def apply_geometry(image: np.ndarray, target: Target, geometry: Geometry, *,
                   nearest: str = "pillow") -> tuple[np.ndarray, Target]:
    """Image and dense target through ``geometry``, padded."""
    return pad_image(transform_image(image, geometry), geometry.padded), transform_target(target, geometry, nearest)


def lsj_geometry(height: int, width: int, rng: np.random.Generator, *, crop_size: int | Sequence[int],
                 min_scale: float = 0.1, max_scale: float = 2.0, flip_input: bool = False) -> Geometry:
    """detectron2's ResizeScale then FixedSizeCrop: scale (aspect kept) to fit ``crop_size``
    times a factor drawn from ``[min_scale, max_scale]``, then a ``crop_size`` window placed by
    one uniform draw along both axes (offset = round(u * max_offset) per axis)."""
    th, tw = _pair(crop_size)
    scale = rng.uniform(min_scale, max_scale)
    factor = min(th * scale / height, tw * scale / width)
    oh, ow = max(1, int(np.round(height * factor))), max(1, int(np.round(width * factor)))
    u = rng.uniform(0.0, 1.0)
    y0, x0 = int(np.round(max(oh - th, 0) * u)), int(np.round(max(ow - tw, 0) * u))
    return Geometry(size=(height, width), resized=(oh, ow), window=(y0, x0, th, tw), padded=(th, tw),
                    flip_input=flip_input)


def large_scale_jitter(image: np.ndarray, target: Target, rng: np.random.Generator, *,
                       crop_size: int | Sequence[int], min_scale: float = 0.1, max_scale: float = 2.0,
                       nearest: str = "pillow") -> tuple[np.ndarray, Target]:
    """The COCO instance / panoptic "LSJ" recipe (:func:`lsj_geometry`), padded bottom/right to
    exactly ``crop_size`` (``int`` or ``(h, w)``) with the padding marked ignore."""
    h, w = image.shape[:2]
    geometry = lsj_geometry(h, w, rng, crop_size=crop_size, min_scale=min_scale, max_scale=max_scale)
    return apply_geometry(image, target, geometry, nearest=nearest)


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


def semantic_geometry(height: int, width: int, rng: np.random.Generator, *, base_size: int,
                      crop_size: int | Sequence[int], min_ratio: float = 0.5, max_ratio: float = 2.0,
                      cat_max_ratio: float = 1.0, ignore_label: int = IGNORE_LABEL,
                      label_map: Callable[[], np.ndarray] | None = None) -> Geometry:
    """ResizeShortestEdge then RandomCrop_CategoryAreaConstraint (window at most ``crop_size``),
    padded to ``crop_size``. The short side is drawn from ``int(x * 0.1 * base_size)`` for ``x``
    in ``min_ratio*10 .. max_ratio*10`` (the configs' list), the long side capped at ``4 *
    base_size``. ``cat_max_ratio < 1`` judges windows on ``label_map()`` resized as the official
    semantic map is (float64, so by torch's nearest rule)."""
    th, tw = _pair(crop_size)
    lo, hi = int(round(min_ratio * 10)), int(round(max_ratio * 10))
    shorts = [int(x * 0.1 * base_size) for x in range(lo, hi + 1)]
    short = shorts[int(rng.integers(len(shorts)))]
    oh, ow = _shortest_edge_train_size(height, width, short, 4 * base_size)
    rows, cols = nearest_index(height, oh, "torch"), nearest_index(width, ow, "torch")
    ch, cw = min(th, oh), min(tw, ow)
    semantic = label_map() if cat_max_ratio < 1.0 and label_map is not None else np.zeros((height, width), np.int64)
    y0, x0 = _category_crop(semantic, rows, cols, (ch, cw), rng, cat_max_ratio, ignore_label)
    return Geometry(size=(height, width), resized=(oh, ow), window=(y0, x0, ch, cw), padded=(th, tw))


def resize_crop_semantic(image: np.ndarray, target: Target, rng: np.random.Generator, *, base_size: int,
                         crop_size: int | Sequence[int], min_ratio: float = 0.5, max_ratio: float = 2.0,
                         cat_max_ratio: float = 1.0, ignore_label: int = IGNORE_LABEL,
                         nearest: str = "pillow") -> tuple[np.ndarray, Target]:
    """The official semantic (ADE20K / Cityscapes / Mapillary) recipe (:func:`semantic_geometry`),
    padded bottom/right to ``crop_size`` (padding = ignore). ``ignore_label`` only names void in
    the internal label map; it is never a class."""
    h, w = image.shape[:2]
    geometry = semantic_geometry(h, w, rng, base_size=base_size, crop_size=crop_size,
                                 min_ratio=min_ratio, max_ratio=max_ratio, cat_max_ratio=cat_max_ratio,
                                 ignore_label=ignore_label, label_map=lambda: target.semantic_map(ignore_label).numpy())
    return apply_geometry(image, target, geometry, nearest=nearest)


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


def keep_segments(target: Target, rings: Sequence[Polygons | None], *, keep_empty: bool) -> Target:
    """Segments the crop emptied, by the official mapper's rule: kept as empty masks (the panoptic
    and instance mappers) or dropped (the semantic mapper makes masks only for the classes left
    in the crop; the COCO-instance LSJ mapper runs detectron2's filter_empty_instances: a polygon
    segment goes when no ring is left after the crop, a mask segment when no pixel is left).
    ``rings`` are the segments' rings after the crop (None for mask segments)."""
    if keep_empty or len(target) == 0:
        return target
    masks = target.masks.numpy()  # torch's any() on bool masks is ~100x slower
    keep = [poly.survives(segment) if segment is not None else bool(masks[k].any()) for k, segment in enumerate(rings)]
    return target if all(keep) else target.select(torch.tensor(keep, dtype=torch.bool))


@dataclass(frozen=True)
class TrainTransform:
    """The training augmentation of one recipe as a picklable callable (DataLoader workers may be
    spawned): ``(image, target, rng, polygons=...) -> (image, target)``. ``polygons`` gives, per
    segment, COCO rings to move with the image and rasterise at the output size (that segment's
    mask is ignored) or None; ``nearest`` and ``keep_empty`` follow the dataset's official mapper."""

    kind: str
    crop_size: tuple[int, int]
    base_size: int
    min_scale: float = 0.1
    max_scale: float = 2.0
    cat_max_ratio: float = 1.0
    color: bool = False
    flip: bool = True
    nearest: str = "pillow"
    keep_empty: bool = False

    def __call__(self, image: np.ndarray, target: Target, rng: np.random.Generator, *,
                 polygons: Sequence[Polygons | None] | None = None) -> tuple[np.ndarray, Target]:
        rings: list[Polygons | None] = list(polygons) if polygons is not None else [None] * len(target)
        if len(rings) != len(target):
            raise ValueError(f"{len(rings)} polygon entries for {len(target)} segments")
        geometry, image = self._draw(image, target, rings, rng)
        target = transform_target(target, geometry, self.nearest, rings)
        moved = [geometry.move_polygons(segment) if segment is not None and not self.keep_empty else None
                 for segment in rings]
        return pad_image(image, geometry.padded), keep_segments(target, moved, keep_empty=self.keep_empty)

    def _draw(self, image: np.ndarray, target: Target, rings: list[Polygons | None],
              rng: np.random.Generator) -> tuple[Geometry, np.ndarray]:
        """The sample's geometry, drawn in the recipe's order, and the image through it (colour
        jittered, unpadded). LSJ: flip -> resize -> crop [-> colour]; semantic: resize -> crop
        [-> colour] -> flip; "none": [colour ->] flip."""
        h, w = image.shape[:2]
        if self.kind == "lsj":
            flip = self.flip and rng.random() < 0.5
            geometry = lsj_geometry(h, w, rng, crop_size=self.crop_size, min_scale=self.min_scale,
                                    max_scale=self.max_scale, flip_input=flip)
        elif self.kind == "semantic":
            geometry = semantic_geometry(h, w, rng, base_size=self.base_size, crop_size=self.crop_size,
                                         cat_max_ratio=self.cat_max_ratio, label_map=lambda: _label_map(target, rings))
        else:
            geometry = Geometry(size=(h, w), resized=(h, w), window=(0, 0, h, w), padded=(h, w))
        image = transform_image(image, geometry)
        if self.color:
            image = color_jitter(image, rng)
        if self.kind != "lsj" and self.flip and rng.random() < 0.5:
            geometry, image = replace(geometry, flip_crop=True), np.ascontiguousarray(image[:, ::-1])
        return geometry, image


def _label_map(target: Target, rings: Sequence[Polygons | None]) -> np.ndarray:
    """``[H, W]`` class map of the untransformed target, polygon segments rasterised."""
    if any(segment is not None for segment in rings):
        h, w = target.ignore.shape
        masks = target.masks.clone()
        for k, segment in enumerate(rings):
            if segment is not None:
                masks[k] = torch.from_numpy(poly.rasterise(segment, h, w))
        target = replace(target, masks=masks)
    return target.semantic_map(IGNORE_LABEL).numpy()


TRAIN_TRANSFORM_KINDS = ("lsj", "semantic", "none")


def build_train_transform(kind: str, *, crop_size: int | Sequence[int], base_size: int | None = None,
                          min_scale: float = 0.1, max_scale: float = 2.0, cat_max_ratio: float = 1.0,
                          color: bool = False, flip: bool = True, nearest: str = "pillow",
                          keep_empty: bool = False) -> TrainTransform:
    """The official training augmentation by name.

    ``"lsj"`` (COCO instance / panoptic): flip -> ResizeScale -> FixedSizeCrop [-> color].
    ``"semantic"`` (ADE20K, Cityscapes, ...): ResizeShortestEdge -> RandomCrop (``base_size``
    defaults to the crop's short side) -> color -> flip, then padding; the official semantic
    configs turn ``color`` on. ``"none"``: only color / flip, sizes unchanged. Masks are resized
    by the ``nearest`` rule; segments the crop empties stay (``keep_empty``) or are dropped.
    """
    if kind not in TRAIN_TRANSFORM_KINDS:
        raise ValueError(f"unknown augmentation {kind!r}; expected one of {', '.join(TRAIN_TRANSFORM_KINDS)}")
    if nearest not in NEAREST_RULES:
        raise ValueError(f"unknown nearest rule {nearest!r}; expected one of {', '.join(NEAREST_RULES)}")
    size = _pair(crop_size)
    if min(size) < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    return TrainTransform(kind=kind, crop_size=size, base_size=base_size or min(size), min_scale=min_scale,
                          max_scale=max_scale, cat_max_ratio=cat_max_ratio, color=color, flip=flip, nearest=nearest,
                          keep_empty=keep_empty)
