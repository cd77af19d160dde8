"""Masked-attention transformer decoder (the reference's MultiScaleMaskedTransformerDecoder).

Learnable queries go through ``num_layers`` layers of masked cross-attention -> self-attention
-> FFN (post-norm by default), cycling over the 1/32, 1/16 and 1/8 maps. Each layer's
cross-attention only sees the pixels where the previous prediction's mask is >= 0.5 (resized to
that layer's map); a query whose mask is empty everywhere attends everywhere. A prediction is made
from the raw queries and after every layer, so ``num_layers + 1`` predictions come out.

Module and parameter names are the reference checkpoint's. Tensors are batch-first here and
attention runs through ``F.scaled_dot_product_attention``; the packed ``in_proj_weight`` layout of
``nn.MultiheadAttention`` is kept so checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mask2former.modeling.position_encoding import sine_position_encoding


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``nn.MultiheadAttention``'s parameter layout."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                allowed: torch.Tensor | None = None) -> torch.Tensor:
        """query ``[B, Q, C]``, key/value ``[B, S, C]``; allowed ``[B, 1, Q, S]`` bool (True = attend)."""
        b, q, c = query.shape
        h = self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        qh = F.linear(query, w_q, b_q).view(b, q, h, c // h).transpose(1, 2)
        kh = F.linear(key, w_k, b_k).view(b, -1, h, c // h).transpose(1, 2)
        vh = F.linear(value, w_v, b_v).view(b, -1, h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            qh, kh, vh, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )  # [B, h, Q, C/h]
        return self.out_proj(out.transpose(1, 2).reshape(b, q, c))


class SelfAttentionLayer(nn.Module):
    """Self-attention among the queries, residual, with its LayerNorm before or after (``pre_norm``)."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim=dim, num_heads=num_heads, dropout=dropout)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        x = self.norm(tgt) if self.pre_norm else tgt
        q = x + query_pos
        tgt = tgt + self.dropout(self.self_attn(q, q, x))
        return tgt if self.pre_norm else self.norm(tgt)


class CrossAttentionLayer(nn.Module):
    """Masked attention of the queries to one level's pixels, residual, LayerNorm before or after."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.multihead_attn = MultiheadAttention(dim=dim, num_heads=num_heads, dropout=dropout)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, allowed: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        x = self.norm(tgt) if self.pre_norm else tgt
        tgt = tgt + self.dropout(self.multihead_attn(x + query_pos, memory + pos, memory, allowed))
        return tgt if self.pre_norm else self.norm(tgt)


class FFNLayer(nn.Module):
    """The queries' ReLU feed-forward block, residual, LayerNorm before or after (``pre_norm``)."""

    def __init__(self, *, dim: int, ffn_dim: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        x = self.norm(tgt) if self.pre_norm else tgt
        tgt = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x)))))
        return tgt if self.pre_norm else self.norm(tgt)


class MLP(nn.Module):
    """A small perceptron: ``num_layers`` linear layers with ReLU between them (``layers.{i}`` in checkpoints)."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskedAttentionDecoder(nn.Module):
    """Multi-scale features + mask features -> ``num_layers + 1`` (class logits, mask logits).

    ``in_channels`` is the width of the pixel decoder's maps and ``num_feature_levels`` their
    count (the layers cycle over them); ``num_classes`` excludes the no-object class.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        pre_norm: bool,
        dropout: float,
        mask_dim: int,
        enforce_input_proj: bool,
        num_feature_levels: int,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.num_feature_levels = num_feature_levels
        self.transformer_self_attention_layers = nn.ModuleList()
        self.transformer_cross_attention_layers = nn.ModuleList()
        self.transformer_ffn_layers = nn.ModuleList()
        for _ in range(num_layers):
            self.transformer_self_attention_layers.append(
                SelfAttentionLayer(dim=hidden_dim, num_heads=num_heads, dropout=dropout, pre_norm=pre_norm))
            self.transformer_cross_attention_layers.append(
                CrossAttentionLayer(dim=hidden_dim, num_heads=num_heads, dropout=dropout, pre_norm=pre_norm))
            self.transformer_ffn_layers.append(FFNLayer(dim=hidden_dim, ffn_dim=ffn_dim, dropout=dropout,
                                                        pre_norm=pre_norm))
        for layers in (self.transformer_self_attention_layers, self.transformer_cross_attention_layers,
                       self.transformer_ffn_layers):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_proj:
                conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
                self.input_proj.append(conv)
            else:
                self.input_proj.append(nn.Sequential())
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(in_dim=hidden_dim, hidden_dim=hidden_dim, out_dim=mask_dim, num_layers=3)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the reference renamed it call the query features "static_query"
        old = prefix + "static_query.weight"
        if old in state_dict and prefix + "query_feat.weight" not in state_dict:
            state_dict[prefix + "query_feat.weight"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def predict(self, tgt: torch.Tensor, mask_features: torch.Tensor,
                attn_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads on queries ``[B, Q, C]``: class logits ``[B, Q, K+1]``, mask logits
        ``[B, Q, H/4, W/4]`` and the cross-attention mask for the next layer ``[B, 1, Q, h*w]``
        (True = may attend)."""
        x = self.decoder_norm(tgt)
        class_logits = self.class_embed(x)
        embed = self.mask_embed(x)
        b, c, h, w = mask_features.shape
        mask_logits = torch.bmm(embed, mask_features.view(b, c, h * w)).view(b, -1, h, w)
        with torch.no_grad():
            small = F.interpolate(mask_logits.detach(), size=attn_size, mode="bilinear", align_corners=False)
            blocked = small.flatten(2).sigmoid() < 0.5  # [B, Q, h*w]
            allowed = ~blocked | blocked.all(-1, keepdim=True)  # a query blocked everywhere attends everywhere
        return class_logits, mask_logits, allowed.unsqueeze(1)

    def forward(self, features: list[torch.Tensor],
                mask_features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """features: ``[1/32, 1/16, 1/8]`` maps ``[B, C, h, w]``; mask_features ``[B, C, H/4, W/4]``."""
        sizes, memories, positions = [], [], []
        for i, x in enumerate(features):
            sizes.append((x.shape[-2], x.shape[-1]))
            positions.append(sine_position_encoding(x, self.decoder_norm.normalized_shape[0] // 2)
                             .flatten(2).transpose(1, 2))  # [1, h*w, C]
            memories.append((self.input_proj[i](x).flatten(2) + self.level_embed.weight[i][None, :, None])
                            .transpose(1, 2))
        b = mask_features.shape[0]
        # repeat (not expand): a view of a parameter made in inference mode still claims to need a
        # gradient without having a graph, which trips module hooks such as torch's FLOP counter
        query_pos = self.query_embed.weight.unsqueeze(0).repeat(b, 1, 1)
        tgt = self.query_feat.weight.unsqueeze(0).repeat(b, 1, 1)
        class_logits, mask_logits, allowed = self.predict(tgt, mask_features, sizes[0])
        predictions = [(class_logits, mask_logits)]
        for i in range(self.num_layers):
            lvl = i % self.num_feature_levels
            tgt = self.transformer_cross_attention_layers[i](tgt, memories[lvl], allowed, positions[lvl], query_pos)
            tgt = self.transformer_self_attention_layers[i](tgt, query_pos)
            tgt = self.transformer_ffn_layers[i](tgt)
            class_logits, mask_logits, allowed = self.predict(
                tgt, mask_features, sizes[(i + 1) % self.num_feature_levels]
            )
            predictions.append((class_logits, mask_logits))
        return predictions
