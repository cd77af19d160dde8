"""Sine positional encoding of a feature map (DETR style, normalised to [0, 2*pi])."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(feature: torch.Tensor, num_feats: int) -> torch.Tensor:
    """Encoding for ``feature [B, C, H, W]``: ``[1, 2*num_feats, H, W]``, the same for every image
    (it broadcasts over the batch; no batch-sized view, whose reshapes a traced graph would guard on).

    Computed from the map's size on every call, never cached per size: a traced or exported
    graph then follows the input's size instead of freezing one size's table as a constant.
    """
    height, width = feature.shape[-2:]
    # Positions 1..H and 1..W, divided by (last + 1e-6) and scaled by 2*pi, exactly as the
    # reference (which takes a cumsum over an all-valid mask).
    eps, scale, temperature = 1e-6, 2 * math.pi, 10000
    y = torch.arange(1, height + 1, dtype=torch.float32, device=feature.device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=feature.device)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=feature.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x = x[:, None] / dim_t  # [W, F]
    pos_y = y[:, None] / dim_t  # [H, F]
    # interleave sin(even), cos(odd): sin, cos, sin, cos, ...
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((pos_y.t()[:, :, None].expand(-1, -1, width), pos_x.t()[:, None, :].expand(-1, height, -1)),
                    dim=0)  # [2F, H, W], y first
    return pos.to(feature.dtype).unsqueeze(0)
