"""Sine positional encoding of a feature map (DETR style, normalised to [0, 2*pi])."""

from __future__ import annotations

import math
from functools import lru_cache

import torch


@lru_cache(maxsize=32)
@torch.inference_mode(False)
@torch.no_grad()
def _sine_table(height: int, width: int, num_feats: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Built outside inference mode so that a table cached during prediction is also usable
    # (as a constant) in a later training step.
    # Positions 1..H and 1..W, divided by (last + 1e-6) and scaled by 2*pi, exactly as the
    # reference (which takes a cumsum over an all-valid mask).
    eps, scale, temperature = 1e-6, 2 * math.pi, 10000
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x = x[:, None] / dim_t  # [W, F]
    pos_y = y[:, None] / dim_t  # [H, F]
    # interleave sin(even), cos(odd): sin, cos, sin, cos, ...
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat(
        (pos_y[:, None, :].expand(height, width, num_feats), pos_x[None, :, :].expand(height, width, num_feats)),
        dim=2,
    )  # [H, W, 2F], y first
    return pos.permute(2, 0, 1).contiguous().to(dtype)  # [2F, H, W]


def sine_position_encoding(feature: torch.Tensor, num_feats: int) -> torch.Tensor:
    """Encoding for ``feature [B, C, H, W]``: ``[B, 2*num_feats, H, W]``.

    Depends only on the map size, so it is cached per size (an expanded view, no copy per batch).
    """
    b, _, h, w = feature.shape
    table = _sine_table(h, w, num_feats, feature.device, feature.dtype)
    return table.unsqueeze(0).expand(b, -1, -1, -1)
