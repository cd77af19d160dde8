"""The model-input contract, written once: images become ``pixel_values`` and targets follow.

Training, the predictor, test-time augmentation and the DeepLab baseline all batch through here,
so they agree on the one thing that must not differ between training and inference: normalise
``(pixel - mean) / std`` first, then zero-pad to a common size divisible by ``size_divisibility``
(zero after normalising, as the reference does, so padding reads as the dataset's mean colour).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mask2former.errors import ImageError
from mask2former.structures import Target


def padded_size(size: tuple[int, int], size_divisibility: int) -> tuple[int, int]:
    """``(h, w)`` rounded up to multiples of ``size_divisibility``."""
    d = size_divisibility
    return (-(-size[0] // d) * d, -(-size[1] // d) * d) if d > 1 else (size[0], size[1])


def pad_and_normalize(images: Sequence[torch.Tensor], mean: Sequence[float], std: Sequence[float],
                      size_divisibility: int, *, device: torch.device | str | None = None
                      ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """``[C, h, w]`` images (any dtype, on the model's scale: 0-255 for 8-bit images, see
    ``data.intensity.to_model_input``) -> ``pixel_values [B, C, H, W]`` float32 and each image's
    ``(h, w)`` inside it; ``H, W`` are the largest sides rounded up to ``size_divisibility``. An
    image whose channel count is not that of ``mean`` / ``std`` is an ``ImageError``."""
    device = torch.device(device) if device is not None else images[0].device
    sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
    height, width = padded_size((max(h for h, _ in sizes), max(w for _, w in sizes)), size_divisibility)
    channels = len(mean)
    for image in images:
        if image.ndim != 3 or image.shape[0] != channels or len(std) != channels:
            raise ImageError(f"an image of shape {tuple(image.shape)} (C, h, w) does not fit a model of {channels} "
                             f"input channels (pixels.mean has {len(mean)} values, pixels.std {len(std)})")
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1)
    pixels = torch.zeros((len(images), channels, height, width), dtype=torch.float32, device=device)
    for i, (image, (h, w)) in enumerate(zip(images, sizes)):
        pixels[i, :, :h, :w] = (image.to(device).float() - mean_t) / std_t
    return pixels, sizes


def pad_targets(targets: Sequence[Target], size: tuple[int, int], *, device: torch.device | str | None = None
                ) -> list[Target]:
    """Targets padded to ``size`` ``(H, W)`` like their images: masks with background, and the
    padding marked void (it is not part of the image)."""
    out = []
    for target in targets:
        dev = torch.device(device) if device is not None else target.masks.device
        h, w = target.ignore.shape
        masks = torch.zeros((len(target), *size), dtype=torch.bool, device=dev)
        masks[:, :h, :w] = target.masks.to(dev)
        ignore = torch.ones(size, dtype=torch.bool, device=dev)
        ignore[:h, :w] = target.ignore.to(dev)
        out.append(Target(masks=masks, labels=target.labels.to(dev), is_thing=target.is_thing,
                          iscrowd=target.iscrowd, ignore=ignore))
    return out
