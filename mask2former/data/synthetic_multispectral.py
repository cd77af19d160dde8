"""A small synthetic multispectral dataset: 16-bit TIFF stacks of N bands with a label PNG each.

Each scene is a background with a field (stuff) and a few ponds (things), every class with its
own spectral signature over the bands (vegetation bright in the fourth, near-infrared band,
water dark in it) plus sensor noise, written with tifffile as ``[H, W, bands]`` uint16 stacks.
``DATA.yaml`` (format ``folder``, ``channels: N``) reads them, so the multi-band reader, the
intensity rule and an N-channel model are exercised on real files end to end on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CLASSES = [{"name": "background"}, {"name": "field"}, {"name": "pond", "isthing": True}]
# mean reflectance per class and band (blue, green, red, near-infrared), on a 16-bit scale
SIGNATURES = np.array([[9000, 10000, 11000, 14000],    # bare soil
                       [5000, 9000, 4000, 32000],      # vegetation: red absorbed, NIR reflected
                       [7000, 8000, 6000, 2000]],      # water: NIR absorbed
                      dtype=np.float64)
NOISE = 600.0


def _signatures(channels: int, rng: np.random.Generator) -> np.ndarray:
    """``[classes, channels]`` band means: the table above, more bands drawn at random."""
    if channels <= SIGNATURES.shape[1]:
        return SIGNATURES[:, :channels]
    extra = rng.uniform(2000, 40000, size=(len(CLASSES), channels - SIGNATURES.shape[1]))
    return np.concatenate([SIGNATURES, extra], axis=1)


def _scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``[H, W]`` uint8 labels: 0 background, 1 a field rectangle, 2 up to three separate ponds."""
    labels = np.zeros((height, width), dtype=np.uint8)
    y0, x0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
    labels[y0:y0 + rng.integers(height // 4, height // 2), x0:x0 + rng.integers(width // 4, width // 2)] = 1
    yy, xx = np.mgrid[:height, :width]
    cells = [(r, c) for r in range(2) for c in range(2)]
    for k in rng.permutation(len(cells))[:rng.integers(1, 4)]:  # one pond per quadrant, so they never touch
        r, c = cells[k]
        radius = rng.uniform(min(height, width) / 14, min(height, width) / 7)
        cy = rng.uniform(r * height / 2 + radius + 1, (r + 1) * height / 2 - radius - 1)
        cx = rng.uniform(c * width / 2 + radius + 1, (c + 1) * width / 2 - radius - 1)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 2
    return labels


def write_multispectral(root: str | os.PathLike, *, num_train: int = 8, num_val: int = 2, size: int = 64,
                        channels: int = 4, seed: int = 0) -> Path:
    """Write ``images/{train,val}/NNN.tif`` (``[size, size, channels]`` uint16), ``masks/...png``
    and ``DATA.yaml``; returns the YAML's path. The same seed writes the same files."""
    import tifffile

    if channels < 1 or size < 32:
        raise ValueError(f"need channels >= 1 and size >= 32, got {channels}, {size}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    signatures = _signatures(channels, rng)
    for split, count in (("train", num_train), ("val", num_val)):
        if count == 0:
            continue
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            labels = _scene(rng, size, size)
            bands = signatures[labels] + rng.normal(0.0, NOISE, size=(size, size, channels))
            stack = np.clip(np.rint(bands), 0, 65535).astype(np.uint16)
            tifffile.imwrite(root / "images" / split / f"{i:03d}.tif", stack, photometric="minisblack",
                             planarconfig="contig")  # one pixel = its bands (axes YXS), not pages of H x 4
            Image.fromarray(labels).save(root / "masks" / split / f"{i:03d}.png")
    data = {"format": "folder", "classes": CLASSES, "channels": channels, "intensity": "percentile",
            **{split: {"images": f"images/{split}", "masks": f"masks/{split}"}
               for split, count in (("train", num_train), ("val", num_val)) if count}}
    path = root / "DATA.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
