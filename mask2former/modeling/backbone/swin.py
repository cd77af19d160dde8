"""Swin Transformer backbone as Mask2Former uses it (the detectron2 port of the mmseg Swin).

Behaviour that matters for loading the published weights and matching their outputs:
feature maps are padded to a multiple of the window on every block; odd blocks always use a
cyclic shift of ``window // 2`` (the window never shrinks for small maps); the shift mask is
built on the padded size with -100; each output stage has its own LayerNorm ``norm{i}``.
Parameter names follow the reference checkpoints (``layers.{i}.blocks.{j}.attn.qkv`` ...).

Maps stay channels-last ``[B, H, W, C]`` through a stage and attention runs through
``F.scaled_dot_product_attention`` over all windows at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DENSE = torch.contiguous_format  # copies made explicit (clone + view): see SwinBlock.forward


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, *, p: float) -> None:
        super().__init__()
        self.p = p  # probability of dropping the branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """The feed-forward half of a Swin block: linear -> GELU -> linear back to ``dim``."""

    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [N, N, 2]
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)  # [N, N]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    relative_position_index: torch.Tensor

    def __init__(self, *, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)  # [heads, N, N]

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """windows ``[B, nW, N, C]``; mask ``[nW, N, N]`` (0 / -100) or None."""
        b, nw, n, c = windows.shape
        heads = self.num_heads
        # 4-D attention over [B*nW, heads, N, d] (what every runtime's attention op takes)
        qkv = self.qkv(windows).view(b * nw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        bias = self.position_bias().unsqueeze(0)  # [1, heads, N, N]
        if mask is not None:
            bias = (bias + mask.unsqueeze(1)).repeat(b, 1, 1, 1)  # [B*nW, heads, N, N], windows batch-major
        bias = bias.expand(b * nw, -1, -1, -1)  # sizes equal to the query's: no broadcast decided by size
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias.to(qkv.dtype))
        out = out.transpose(1, 2).clone(memory_format=DENSE).view(b, nw, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    """One Swin block: (shifted-)window attention then an MLP, each pre-norm and residual."""

    def __init__(self, *, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.window, self.shift = window, shift  # shift 0: plain windows; else the cyclic shift in pixels
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim=dim, window=window, num_heads=num_heads)
        self.drop_path = DropPath(p=drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden_dim=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, shift_mask: torch.Tensor | None) -> torch.Tensor:
        """x ``[B, H, W, C]``."""
        b, h, w, c = x.shape
        ws = self.window
        shortcut = x
        x = self.norm1(x)
        rows, cols = (h + ws - 1) // ws, (w + ws - 1) // ws  # windows per column and row
        hp, wp = rows * ws, cols * ws  # sizes as multiples of the window: simple for a traced graph to reason on
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))  # always (maybe by 0): no branch on the size in a traced graph
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        # clone + view, not reshape: the same copy, without a size-dependent choice in a traced graph
        windows = x.view(b, rows, ws, cols, ws, c).transpose(2, 3).clone(memory_format=DENSE)
        windows = self.attn(windows.view(b, rows * cols, ws * ws, c), shift_mask if self.shift else None)
        x = windows.view(b, rows, cols, ws, ws, c).transpose(2, 3).clone(memory_format=DENSE).view(b, hp, wp, c)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x[:, :h, :w, :]
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm -> linear 4C -> 2C (pads odd sizes)."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        x = F.pad(x, (0, 0, 0, (w + 1) // 2 * 2 - w, 0, (h + 1) // 2 * 2 - h))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """One resolution of the backbone: ``len(drop_paths)`` blocks alternating plain and shifted
    windows, then (``downsample``) a patch merging to half the resolution."""

    def __init__(self, *, dim: int, num_heads: int, window: int, mlp_ratio: float, drop_paths: list[float],
                 downsample: bool) -> None:
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(
            SwinBlock(dim=dim, num_heads=num_heads, window=window, shift=0 if i % 2 == 0 else window // 2,
                      mlp_ratio=mlp_ratio, drop_path=rate)
            for i, rate in enumerate(drop_paths)
        )
        self.downsample = PatchMerging(dim=dim) if downsample else None

    def shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """[nW, N, N] mask of 0 / -100 that keeps shifted windows from mixing regions."""
        ws, shift = self.window, self.window // 2
        across, down = (w + ws - 1) // ws, (h + ws - 1) // ws  # windows per row and per column
        hp, wp = down * ws, across * ws
        ys, xs = torch.arange(hp, device=device), torch.arange(wp, device=device)
        rows = (ys >= hp - ws).long() + (ys >= hp - shift).long()  # 3 bands: body, last window, shifted-in
        cols = (xs >= wp - ws).long() + (xs >= wp - shift).long()
        region = (rows[:, None] * 3 + cols[None, :]).float()  # [Hp, Wp]
        region = region.view(down, ws, across, ws).transpose(1, 2).clone(memory_format=DENSE)
        region = region.view(down * across, ws * ws)
        diff = region[:, None, :] - region[:, :, None]
        return torch.zeros_like(diff).masked_fill_(diff != 0, -100.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (stage output before merging, input of the next stage)."""
        mask = self.shift_mask(x.shape[1], x.shape[2], x.device) if len(self.blocks) > 1 else None
        for block in self.blocks:
            x = block(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class PatchEmbed(nn.Module):
    """The stem: non-overlapping ``patch_size`` patches of the image (``in_channels``, 3 for RGB)
    -> ``embed_dim`` tokens."""

    def __init__(self, *, embed_dim: int, patch_size: int = 4, in_channels: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (w + p - 1) // p * p - w, 0, (h + p - 1) // p * p - h))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # [B, H/4, W/4, C]


class SwinBackbone(nn.Module):
    """Swin-T/S/B/L (and smaller test variants) returning res2..res5.

    ``depths`` and ``num_heads`` hold one entry per stage; stochastic depth grows linearly from 0
    to ``drop_path_rate`` over all blocks. ``in_channels`` is what the stem takes (3 for RGB);
    ``stem_weight`` names its convolution, the one tensor that depends on it.
    """

    stem_weight = "patch_embed.proj.weight"

    def __init__(self, *, embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...], window_size: int,
                 mlp_ratio: float, drop_path_rate: float, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.patch_embed = PatchEmbed(embed_dim=embed_dim, in_channels=in_channels)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                SwinStage(dim=dims[i], num_heads=num_heads[i], window=window_size, mlp_ratio=mlp_ratio,
                          drop_paths=rates[start:start + depth], downsample=i < len(depths) - 1)
            )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.out_channels = {f"res{i + 2}": d for i, d in enumerate(dims)}
        self.strides = {f"res{i + 2}": self.patch_embed.patch_size * 2**i for i in range(len(dims))}
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.patch_embed(x)
        outs = {}
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            outs[f"res{i + 2}"] = getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2).contiguous()
        return outs
