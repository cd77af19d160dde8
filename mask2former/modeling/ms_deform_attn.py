"""Multi-scale deformable attention in pure PyTorch, no compiled op.

The reference implementation samples every level with ``F.grid_sample`` on a channels-first
copy of the value map and stacks the results: on a CPU most of its time goes into those copies
and into a gather whose channel stride is ``H*W``. Here every level is zero-padded by one pixel,
all levels are flattened into one channels-last table, and the bilinear sample of all levels,
points and the four corners, weighted by the attention weights, is a single
``F.embedding_bag(mode="sum", per_sample_weights=...)``: one fused gather + weighted sum over
contiguous rows, with no intermediate ``[.., levels*points, channels]`` tensor. The one-pixel
zero border makes clamped out-of-range corners read zeros, which reproduces grid_sample's
``padding_mode="zeros", align_corners=False`` exactly. Gradients flow to the values and, through
the bilinear weights, to the sampling locations and attention weights, as with grid_sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The grid_sample formulation (used by tests as the definition of the operation).

    value ``[B, S, H, D]``; sampling_locations ``[B, Q, H, L, P, 2]`` in [0, 1] (x, y);
    attention_weights ``[B, Q, H, L, P]``. Returns ``[B, Q, H*D]``.
    """
    b, _, heads, dim = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    samples = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * heads, dim, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # [B*H, Q, P, 2]
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(b * heads, 1, q, levels * points)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)  # [B*H, D, Q]
    return out.view(b, heads * dim, q).transpose(1, 2).contiguous()


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Same contract as :func:`ms_deform_attn_reference`, computed with one embedding_bag."""
    b, s, heads, dim = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    dtype = value.dtype

    # 1. zero-padded, channels-last value table: rows = (batch, padded position, head)
    padded, starts, start = [], [], 0
    for (h, w), v in zip(spatial_shapes, value.split([h * w for h, w in spatial_shapes], dim=1)):
        padded.append(F.pad(v.reshape(b, h, w, heads * dim), (0, 0, 1, 1, 1, 1)).reshape(b, -1, heads * dim))
        starts.append(start)
        start += (h + 2) * (w + 2)
    s_pad = start
    table = torch.cat(padded, dim=1).reshape(b * s_pad * heads, dim)

    # 2. corner indices and bilinear weights, per level: [B, Q, H, L, P]
    device = value.device
    widths = torch.tensor([w for _, w in spatial_shapes], dtype=dtype, device=device).view(1, 1, 1, -1, 1)
    heights = torch.tensor([h for h, _ in spatial_shapes], dtype=dtype, device=device).view(1, 1, 1, -1, 1)
    row_len = (widths + 2).long()
    level_start = torch.tensor(starts, dtype=torch.long, device=device).view(1, 1, 1, -1, 1)
    # pixel coordinates in the padded map; values past the border clamp to an all-zero corner
    x = (sampling_locations[..., 0] * widths + 0.5).clamp(min=-1.0)
    y = (sampling_locations[..., 1] * heights + 0.5).clamp(min=-1.0)
    x = torch.minimum(x, widths + 1)
    y = torch.minimum(y, heights + 1)
    x0f, y0f = x.floor(), y.floor()
    fx, fy = x - x0f, y - y0f
    x0 = x0f.long().clamp_(0, None)
    y0 = y0f.long().clamp_(0, None)
    x1 = torch.minimum(x0f.long() + 1, row_len - 1).clamp_(0, None)
    y1 = torch.minimum(y0f.long() + 1, (heights + 1).long()).clamp_(0, None)
    x0 = torch.minimum(x0, row_len - 1)
    y0 = torch.minimum(y0, (heights + 1).long())

    # row index of (b, position, h): (b * S_pad + position) * H + h
    batch_base = (torch.arange(b, device=device) * s_pad).view(b, 1, 1, 1, 1)
    head = torch.arange(heads, device=device).view(1, 1, heads, 1, 1)
    base = batch_base + level_start
    r0 = (base + y0 * row_len) * heads + head
    r1 = (base + y1 * row_len) * heads + head
    x0h, x1h = x0 * heads, x1 * heads
    index = torch.stack((r0 + x0h, r0 + x1h, r1 + x0h, r1 + x1h), dim=-1)  # [B, Q, H, L, P, 4]

    wa = attention_weights
    wy0, wy1 = (1 - fy) * wa, fy * wa
    weight = torch.stack((wy0 * (1 - fx), wy0 * fx, wy1 * (1 - fx), wy1 * fx), dim=-1)

    bag = levels * points * 4
    out = F.embedding_bag(
        index.reshape(-1, bag), table, mode="sum", per_sample_weights=weight.reshape(-1, bag).to(dtype)
    )  # [B*Q*H, D]
    return out.view(b, q, heads * dim)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module; parameter names match the reference checkpoints."""

    def __init__(self, *, embed_dim: int = 256, num_levels: int = 3, num_heads: int = 8, num_points: int = 4):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Offsets start on a ring of per-head directions, attention uniform (reference init)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value_input: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """query ``[B, Q, C]`` (with positional encoding added); reference_points ``[B, Q, L, 2]``
        normalised (x, y); value_input ``[B, S, C]`` over the flattened levels. Returns ``[B, Q, C]``."""
        b, q, _ = query.shape
        s = value_input.shape[1]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value_input).view(b, s, heads, self.embed_dim // heads)
        offsets = self.sampling_offsets(query).view(b, q, heads, levels, points, 2)
        weights = self.attention_weights(query).view(b, q, heads, levels * points)
        weights = weights.softmax(-1).view(b, q, heads, levels, points)
        normalizer = torch.tensor(
            [[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device
        )  # (w, h) per level
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        out = ms_deform_attn(value, spatial_shapes, locations, weights)
        return self.output_proj(out)
