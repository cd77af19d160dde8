"""Multi-scale deformable-attention pixel decoder (the reference's MSDeformAttnPixelDecoder).

res3..res5 are projected to ``conv_dim``, refined jointly by a 6-layer deformable-attention
encoder, and res2 is merged in by one FPN step to give the 1/4-resolution ``mask_features``.
The strides and channels of the backbone's levels are given (``build.py`` reads them from the
backbone), never assumed here: they order the levels and decide how many FPN steps bring the
finest encoder level down to ``common_stride``.
Module names (``input_proj``, ``transformer.level_embed``, ``transformer.encoder.layers``,
``adapter_1``, ``layer_1``, ``mask_features``) are the reference checkpoint's. The whole
decoder runs in fp32, also under autocast, as the reference does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mask2former.modeling.ms_deform_attn import MSDeformAttn, reference_pixels
from mask2former.modeling.position_encoding import sine_position_encoding


def _feature_layout(in_channels: dict[str, int], in_strides: dict[str, int], transformer_in_features: tuple[str, ...],
                    common_stride: int) -> tuple[list[str], int]:
    """The backbone levels finest first, and how many of them the FPN steps merge in."""
    if set(in_channels) != set(in_strides):
        raise ValueError(f"in_channels and in_strides name different levels: {sorted(in_channels)} vs "
                         f"{sorted(in_strides)}")
    unknown = [name for name in transformer_in_features if name not in in_channels]
    if unknown:
        raise ValueError(f"transformer_in_features {unknown} are not backbone levels {sorted(in_channels)}")
    in_features = sorted(in_channels, key=in_strides.__getitem__)  # finest first: res2 .. res5
    min_stride = min(in_strides[name] for name in transformer_in_features)
    num_fpn_levels = int(math.log2(min_stride) - math.log2(common_stride))
    finer = [name for name in in_features if in_strides[name] < min_stride]
    if not 0 <= num_fpn_levels <= len(finer):
        raise ValueError(f"common_stride {common_stride} needs {num_fpn_levels} FPN level(s) finer than the encoder's "
                         f"stride {min_stride}, but the backbone has {len(finer)} ({finer})")
    return in_features, num_fpn_levels


class ConvNorm(nn.Conv2d):
    """An FPN convolution: Conv2d + GroupNorm (+ ReLU), named like detectron2's Conv2d so that
    checkpoint keys read ``adapter_1.weight`` / ``adapter_1.norm.weight``."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int, relu: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.GroupNorm(32, out_channels)
        self.relu = relu
        nn.init.kaiming_uniform_(self.weight, a=1)  # c2_xavier_fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(super().forward(x))
        return F.relu(x) if self.relu else x


class DeformableEncoderLayer(nn.Module):
    """One encoder layer over all levels at once: deformable self-attention, then a ReLU FFN (post-norm)."""

    def __init__(self, *, dim: int, ffn_dim: int, num_heads: int, num_levels: int, num_points: int,
                 dropout: float) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(embed_dim=dim, num_levels=num_levels, num_heads=num_heads,
                                      num_points=num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor],
                spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        src = self.norm1(src + self.dropout(self.self_attn(src + pos, reference, src, spatial_shapes)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class _Layers(nn.Module):
    """A holder whose ``layers`` give the checkpoint keys ``encoder.layers.N`` of the reference."""

    def __init__(self, *, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class DeformableEncoder(nn.Module):
    """The deformable-attention encoder over the flattened levels; holds ``level_embed`` and
    ``encoder.layers`` (the reference's EncoderOnly wrapper, hence the names)."""

    def __init__(self, *, dim: int, ffn_dim: int, num_layers: int, num_heads: int, num_levels: int,
                 num_points: int, dropout: float) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_levels, dim))
        self.encoder = _Layers(layers=[DeformableEncoderLayer(dim=dim, ffn_dim=ffn_dim, num_heads=num_heads,
                                                       num_levels=num_levels, num_points=num_points, dropout=dropout)
                                for _ in range(num_layers)])
        self.num_heads, self.num_points = num_heads, num_points
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Pixel centres of every level, normalised: ``[S, L, 2]`` (x, y)."""
        points = []
        for h, w in spatial_shapes:
            # (i + 0.5) / n: the reference's linspace(0.5, n - 0.5, n) / n to the bit, written with
            # arange so that an exported graph keeps n symbolic
            ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
            xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
            ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
        ref = torch.cat(points, 0)  # [S, 2]
        return ref[:, None, :].expand(-1, len(spatial_shapes), 2)

    def forward(self, srcs: list[torch.Tensor], pos_embeds: list[torch.Tensor]) -> torch.Tensor:
        """srcs / pos_embeds ``[B, C, H_l, W_l]`` per level -> memory ``[B, S, C]``."""
        spatial_shapes = [(s.shape[2], s.shape[3]) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos_embeds)],
            1,
        )
        reference = reference_pixels(self.reference_points(spatial_shapes, src.device), spatial_shapes,
                                     self.num_heads, self.num_points)
        for layer in self.encoder.layers:
            src = layer(src, pos, reference, spatial_shapes)
        return src


class MSDeformAttnPixelDecoder(nn.Module):
    """Backbone features -> (``mask_features`` at ``common_stride``, the encoder's maps coarsest first).

    ``in_channels`` and ``in_strides`` describe the backbone's levels (``{"res2": 4, ...}``);
    ``transformer_in_features`` are the levels the deformable encoder refines. Levels finer than
    those are merged in by FPN steps, one per halving from the finest encoder level's stride to
    ``common_stride``, as the reference computes it.
    """

    def __init__(
        self,
        *,
        in_channels: dict[str, int],
        in_strides: dict[str, int],
        conv_dim: int,
        mask_dim: int,
        num_encoder_layers: int,
        encoder_ffn_dim: int,
        num_heads: int,
        num_points: int,
        dropout: float,
        common_stride: int,
        transformer_in_features: tuple[str, ...] = ("res3", "res4", "res5"),
    ) -> None:
        super().__init__()
        self.in_features, self.num_fpn_levels = _feature_layout(in_channels, in_strides, transformer_in_features,
                                                                common_stride)
        self.in_strides = {name: in_strides[name] for name in self.in_features}
        self.transformer_in_features = sorted(transformer_in_features, key=in_strides.__getitem__)
        self.num_levels = len(self.transformer_in_features)
        self.conv_dim = conv_dim
        # index 0 <-> lowest resolution (res5), as in the reference
        self.input_proj = nn.ModuleList()
        for name in self.transformer_in_features[::-1]:
            conv = nn.Conv2d(in_channels[name], conv_dim, kernel_size=1)
            nn.init.xavier_uniform_(conv.weight, gain=1)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
            self.input_proj.append(nn.Sequential(conv, nn.GroupNorm(32, conv_dim)))
        self.transformer = DeformableEncoder(
            dim=conv_dim, ffn_dim=encoder_ffn_dim, num_layers=num_encoder_layers, num_heads=num_heads,
            num_levels=self.num_levels, num_points=num_points, dropout=dropout,
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)
        nn.init.zeros_(self.mask_features.bias)  # type: ignore[arg-type]
        for idx, name in enumerate(self.in_features[: self.num_fpn_levels]):
            self.add_module(f"adapter_{idx + 1}", ConvNorm(in_channels=in_channels[name], out_channels=conv_dim,
                                                           kernel_size=1))
            self.add_module(f"layer_{idx + 1}", ConvNorm(in_channels=conv_dim, out_channels=conv_dim, kernel_size=3,
                                                         relu=True))

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(device_type=features[self.in_features[-1]].device.type, enabled=False):
            return self._forward(features)

    def _forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        srcs, pos = [], []
        for idx, name in enumerate(self.transformer_in_features[::-1]):
            x = features[name].float()
            srcs.append(self.input_proj[idx](x))
            pos.append(sine_position_encoding(x, self.conv_dim // 2))
        memory = self.transformer(srcs, pos)  # [B, S, C]
        b = memory.shape[0]
        outs = [
            level.transpose(1, 2).reshape(b, -1, s.shape[2], s.shape[3])
            for level, s in zip(memory.split([s.shape[2] * s.shape[3] for s in srcs], dim=1), srcs)
        ]
        # extra FPN levels, from the lowest to the highest resolution
        for idx in range(self.num_fpn_levels - 1, -1, -1):
            x = features[self.in_features[idx]].float()
            lateral = getattr(self, f"adapter_{idx + 1}")(x)
            y = lateral + F.interpolate(outs[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(getattr(self, f"layer_{idx + 1}")(y))
        return self.mask_features(outs[-1]), outs[: self.num_levels]
