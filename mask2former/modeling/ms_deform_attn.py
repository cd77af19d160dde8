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
the bilinear weights, to the sampling offsets and attention weights, as with grid_sample.

That holds for the forward pass. PyTorch's backward of ``embedding_bag`` (a sort-based scatter of
the table gradient plus a gather for the weight gradient) is several times slower than
grid_sample's fused backward on a CPU, so when gradients are needed the module samples with
grid_sample instead (:func:`sample_grid`, the same numbers to rounding): training gets the faster
backward, inference the faster forward. The path follows the module's mode (``train()`` /
``eval()``) unless set with :func:`set_sampler` (an export picks the one its runtime runs
fastest); it never depends on whether gradients happen to be on. Measured on 2 threads, forward + backward of one layer:
grid_sample 99 ms vs embedding_bag 216 ms at the ``demo`` preset's sizes; forward alone at the
paper's widths: embedding_bag 110 ms vs grid_sample 357 ms.

The index arithmetic runs on contiguous ``[B, Q, heads*levels*points]`` tensors with per-column
constants (level sizes and starts), which keeps every elementwise op on PyTorch's vectorised
path; x and y offsets come from separate row sets of the offset projection for the same reason.
"""

from __future__ import annotations

import math
from typing import NamedTuple

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
    # copies made explicit (clone + view, not reshape): the same data movement, and no choice that
    # depends on the sizes for an exported graph to guard on
    dense = torch.contiguous_format
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].permute(0, 2, 3, 1).clone(memory_format=dense).view(b * heads, dim, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).clone(memory_format=dense).view(b * heads, q, points, 2)
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).clone(memory_format=dense).view(b * heads, 1, q, levels * points)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)  # [B*H, D, Q]
    return out.view(b, heads * dim, q).transpose(1, 2).contiguous()


def level_sizes(spatial_shapes: list[tuple[int, int]], dtype: torch.dtype | None = None,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``([L], [L])`` widths and heights of the levels, as tensors."""
    return (torch.tensor([w for _, w in spatial_shapes], dtype=dtype, device=device),
            torch.tensor([h for h, _ in spatial_shapes], dtype=dtype, device=device))


class _Columns(NamedTuple):
    """Per-column (head, level, point) constants of the padded value table, ``[H*L*P]`` each."""

    max_x: torch.Tensor
    max_y: torch.Tensor
    row: torch.Tensor
    start: torch.Tensor
    head: torch.Tensor
    table_rows: int  # rows of one image's padded table, all levels


def _column_constants(spatial_shapes: list[tuple[int, int]], heads: int, points: int, device: torch.device,
                      dtype: torch.dtype) -> _Columns:
    """Per-column (head, level, point) constants of the padded table, as ``[H*L*P]`` vectors."""
    widths, heights = level_sizes(spatial_shapes, device=device)
    padded = (heights + 2) * (widths + 2)
    starts = torch.cumsum(padded, 0) - padded

    def per_column(per_level: torch.Tensor) -> torch.Tensor:  # [L] -> [H*L*P], column = (h*L + l)*P + p
        return per_level.view(1, -1, 1).expand(heads, -1, points).reshape(-1)

    levels = len(spatial_shapes)
    return _Columns(
        max_x=per_column(widths + 1).to(dtype),
        max_y=per_column(heights + 1).to(dtype),
        row=per_column(widths + 2),
        start=per_column(starts),
        head=torch.arange(heads, device=device).view(-1, 1).expand(-1, levels * points).reshape(-1),
        table_rows=sum((h + 2) * (w + 2) for h, w in spatial_shapes),  # from the sizes: no data-dependent int
    )


def sample_padded(value: torch.Tensor, spatial_shapes: list[tuple[int, int]], px: torch.Tensor, py: torch.Tensor,
                  attention_weights: torch.Tensor, points: int) -> torch.Tensor:
    """The core: ``px, py [B, Q, H*L*P]`` are sampling positions in pixels of the one-pixel padded
    maps (``x * W + 0.5`` for a normalised ``x``); ``attention_weights`` has the same layout.
    value ``[B, S, H, D]``; returns ``[B, Q, H*D]``."""
    b, _, heads, dim = value.shape
    q = px.shape[1]
    c = _column_constants(spatial_shapes, heads, points, value.device, px.dtype)
    # 1. zero-padded, channels-last value table: rows = (batch, padded position, head)
    padded = [F.pad(v.view(b, h, w, heads * dim), (0, 0, 1, 1, 1, 1)).view(b, (h + 2) * (w + 2), heads * dim)
              for (h, w), v in zip(spatial_shapes, value.split([h * w for h, w in spatial_shapes], dim=1))]
    table = torch.cat(padded, dim=1).reshape(b * c.table_rows * heads, dim)
    # 2. corners: positions past the border clamp onto the zero border (values and gradients 0)
    px = torch.minimum(px.clamp(min=-1.0), c.max_x)
    py = torch.minimum(py.clamp(min=-1.0), c.max_y)
    x0f, y0f = px.floor(), py.floor()
    fx, fy = px - x0f, py - y0f
    x0, y0 = x0f.long(), y0f.long()
    x1 = torch.minimum(x0 + 1, c.row - 1).clamp_(min=0)
    y1 = torch.minimum(y0 + 1, c.max_y.long()).clamp_(min=0)
    x0.clamp_(min=0)
    y0.clamp_(min=0)
    # row of (b, position, h) = (b * rows + start + y * row_len + x) * H + h
    base = torch.arange(b, device=value.device).view(b, 1, 1) * c.table_rows + c.start
    r0 = (base + y0 * c.row) * heads + c.head
    r1 = (base + y1 * c.row) * heads + c.head
    x0h, x1h = x0 * heads, x1 * heads
    index = torch.stack((r0 + x0h, r0 + x1h, r1 + x0h, r1 + x1h), dim=-1)  # [B, Q, HLP, 4]
    wy0 = (1 - fy) * attention_weights
    wy1 = fy * attention_weights
    weight = torch.stack((wy0 * (1 - fx), wy0 * fx, wy1 * (1 - fx), wy1 * fx), dim=-1)
    bag = index.shape[2] // heads * 4  # levels * points * corners
    out = F.embedding_bag(index.view(-1, bag), table, mode="sum",
                          per_sample_weights=weight.view(-1, bag).to(table.dtype))  # [B*Q*H, D]
    return out.view(b, q, heads * dim)


def sample_grid(value: torch.Tensor, spatial_shapes: list[tuple[int, int]], px: torch.Tensor, py: torch.Tensor,
                attention_weights: torch.Tensor, points: int) -> torch.Tensor:
    """:func:`sample_padded`'s contract computed with grid_sample (the training path: its
    backward is the fast one)."""
    b, q, _ = px.shape
    heads, levels = value.shape[2], len(spatial_shapes)
    widths, heights = (t.view(1, 1, 1, -1, 1) for t in level_sizes(spatial_shapes, px.dtype, px.device))
    shape = (b, q, heads, levels, points)
    loc = torch.stack(((px.view(shape) - 0.5) / widths, (py.view(shape) - 0.5) / heights), dim=-1)
    return ms_deform_attn_reference(value, spatial_shapes, loc, attention_weights.view(shape))


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Same contract as :func:`ms_deform_attn_reference`, computed with one embedding_bag."""
    b, q, heads, levels, points, _ = sampling_locations.shape
    widths, heights = level_sizes(spatial_shapes, value.dtype, value.device)
    px = sampling_locations[..., 0] * widths.view(1, 1, 1, -1, 1) + 0.5
    py = sampling_locations[..., 1] * heights.view(1, 1, 1, -1, 1) + 0.5
    return sample_padded(value, spatial_shapes, px.reshape(b, q, -1), py.reshape(b, q, -1),
                         attention_weights.reshape(b, q, -1), points)


SAMPLERS = {"grid_sample": sample_grid, "embedding_bag": sample_padded}


def set_sampler(model: nn.Module, sampler: str | None) -> None:
    """Sample with ``sampler`` (a ``SAMPLERS`` key) in every deformable attention of ``model``;
    None restores the default (grid_sample in training, embedding_bag otherwise)."""
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)} or None, got {sampler!r}")
    for module in model.modules():
        if isinstance(module, MSDeformAttn):
            module.sampler = sampler


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention: each query attends to ``num_points`` learned sampling
    points per head and level around its reference point; parameter names match the reference
    checkpoints."""

    def __init__(self, *, embed_dim: int, num_levels: int, num_heads: int, num_points: int) -> None:
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
        self.sampler: str | None = None  # SAMPLERS key; None: grid_sample in training, embedding_bag otherwise
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
        reference_pixels: tuple[torch.Tensor, torch.Tensor],
        value_input: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """query ``[B, Q, C]`` (with positional encoding added); reference_pixels: the reference
        points in padded pixel units per column, ``([Q, H*L*P], [Q, H*L*P])`` (see
        :func:`reference_pixels`); value_input ``[B, S, C]`` over the flattened levels. Returns ``[B, Q, C]``."""
        b, q, _ = query.shape
        s = value_input.shape[1]
        heads = self.num_heads
        value = self.value_proj(value_input).view(b, s, heads, self.embed_dim // heads)
        # [B, Q, H*L*P] each, offsets in pixels of each level (the layer called whole, so that
        # quantization can swap it)
        off_x, off_y = self.sampling_offsets(query).view(b, q, -1, 2).unbind(-1)
        weights = self.attention_weights(query).view(b, q, heads, -1).softmax(-1).view(b, q, -1)
        ref_x, ref_y = reference_pixels
        sample = SAMPLERS[self.sampler or ("grid_sample" if self.training else "embedding_bag")]
        out = sample(value, spatial_shapes, ref_x + off_x, ref_y + off_y, weights, self.num_points)
        return self.output_proj(out)


def reference_pixels(reference_points: torch.Tensor, spatial_shapes: list[tuple[int, int]], heads: int,
                     points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised reference points ``[Q, L, 2]`` (x, y) -> padded-pixel positions per column
    ``([Q, H*L*P], [Q, H*L*P])``: ``x * W_l + 0.5``. Shared by all encoder layers."""
    widths, heights = level_sizes(spatial_shapes, reference_points.dtype, reference_points.device)
    q, levels = reference_points.shape[:2]

    def per_column(values: torch.Tensor) -> torch.Tensor:  # [Q, L] -> [Q, H*L*P]
        return values.view(q, 1, levels, 1).expand(q, heads, levels, points).reshape(q, -1)

    return (per_column(reference_points[..., 0] * widths + 0.5),
            per_column(reference_points[..., 1] * heights + 0.5))
