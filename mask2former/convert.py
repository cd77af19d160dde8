"""Key tables from the official (detectron2) and HuggingFace Mask2Former checkpoints to ours.

Pure ``dict -> dict`` functions plus config inference from tensor shapes; strict checking of the
result against a model happens in :mod:`mask2former.weights`. Our names are the official ones
with ``sem_seg_head.pixel_decoder.`` -> ``pixel_decoder.`` and ``sem_seg_head.predictor.`` ->
``transformer_decoder.``, except the ResNet, which uses torchvision's names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import torch

from mask2former.config import (
    BackboneConfig,
    CategoryInfo,
    DecoderConfig,
    LossConfig,
    ModelConfig,
    PixelDecoderConfig,
)
from mask2former.errors import Mask2FormerError, brief

Tensor = torch.Tensor
T = TypeVar("T")


class ConversionError(Mask2FormerError, ValueError):
    """A checkpoint does not have the layout it claims; the message says which keys."""


def _rename(state: Mapping[str, Tensor], rules: list[tuple[str, str]]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


# ----------------------------------------------------------------------------- official (.pkl)

_OFFICIAL_RULES: list[tuple[str, str]] = [
    # detectron2 ResNet -> torchvision ResNet
    (r"^backbone\.stem\.conv1\.norm\.", "backbone.bn1."),
    (r"^backbone\.stem\.conv1\.", "backbone.conv1."),
    (r"^backbone\.res(\d)\.", lambda m: f"backbone.layer{int(m.group(1)) - 1}."),  # type: ignore[list-item]
    (r"^(backbone\.layer\d\.\d+)\.conv(\d)\.norm\.", r"\1.bn\2."),
    (r"^(backbone\.layer\d\.\d+)\.shortcut\.norm\.", r"\1.downsample.1."),
    (r"^(backbone\.layer\d\.\d+)\.shortcut\.", r"\1.downsample.0."),
    # heads
    (r"^sem_seg_head\.predictor\.static_query\.", "sem_seg_head.predictor.query_feat."),
    (r"^sem_seg_head\.predictor\.", "transformer_decoder."),
    (r"^sem_seg_head\.pixel_decoder\.", "pixel_decoder."),
    (r"^sem_seg_head\.", "pixel_decoder."),  # pre-v2 layout had the pixel decoder inline
]

# buffers that are re-derived here (and which FrozenBN does not have)
_OFFICIAL_DROP = re.compile(r"(relative_position_index|num_batches_tracked|^pixel_mean|^pixel_std"
                            r"|^criterion\.empty_weight)$")


def convert_official_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official Mask2Former names (either key generation) -> ours. Derived buffers are dropped;
    ``num_batches_tracked`` is kept only for the loader to decide (SyncBN checkpoints)."""
    out = {}
    for key, value in _rename(state, _OFFICIAL_RULES).items():
        if _OFFICIAL_DROP.search(key) and not key.endswith("num_batches_tracked"):
            continue
        out[key] = value
    return out


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    found = {m.group(1) for k in state if (m := re.match(pattern, k))}
    return len(found)


def backbone_from_state(state: Mapping[str, Tensor]) -> BackboneConfig:
    """Infer the backbone of a state dict already in our names."""
    if "backbone.conv1.weight" in state:
        blocks = [_count(state, rf"backbone\.layer{i}\.(\d+)\.") for i in range(1, 5)]
        bottleneck = "backbone.layer1.0.conv3.weight" in state
        by_blocks: dict[tuple[int, ...], int] = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34 if not bottleneck else 50,
                                                 (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
        depth = by_blocks.get(tuple(blocks))
        if depth is None:
            raise ConversionError(f"unrecognised ResNet: blocks per stage {blocks}")
        return BackboneConfig(name="resnet", depth=depth, norm="FrozenBN")
    if "backbone.patch_embed.proj.weight" in state:
        depths = tuple(_count(state, rf"backbone\.layers\.{i}\.blocks\.(\d+)\.") for i in range(4))
        heads = tuple(int(state[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
                      for i in range(4))
        table = int(state["backbone.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0])
        window = (int(round(table**0.5)) + 1) // 2
        embed = int(state["backbone.patch_embed.proj.weight"].shape[0])
        hidden = int(state["backbone.layers.0.blocks.0.mlp.fc1.weight"].shape[0])
        return BackboneConfig(name="swin", embed_dim=embed, depths=depths, num_heads=heads, window_size=window,
                              mlp_ratio=hidden / embed, pretrain_img_size=224 if window == 7 else 384)
    raise ConversionError("no backbone found: expected ResNet (stem/conv1) or Swin (patch_embed) weights")


def config_from_state(state: Mapping[str, Tensor]) -> ModelConfig:
    """Infer the architecture of a state dict in our names (official checkpoints store none).

    Head counts do not show in tensor shapes: the decoder keeps the default (the reference's 8)
    heads; the deformable attention's weights show heads x levels x points, and the default
    points per level are assumed to split them.
    """
    try:
        backbone = backbone_from_state(state)
        pd = "pixel_decoder."
        levels = _count(state, r"pixel_decoder\.input_proj\.(\d+)\.")
        attn_rows = int(state[pd + "transformer.encoder.layers.0.self_attn.attention_weights.weight"].shape[0])
        pixel_decoder = PixelDecoderConfig(
            conv_dim=int(state[pd + "input_proj.0.0.weight"].shape[0]),
            mask_dim=int(state[pd + "mask_features.weight"].shape[0]),
            num_encoder_layers=_count(state, r"pixel_decoder\.transformer\.encoder\.layers\.(\d+)\."),
            encoder_ffn_dim=int(state[pd + "transformer.encoder.layers.0.linear1.weight"].shape[0]),
            num_heads=attn_rows // (levels * PixelDecoderConfig().num_points),
        )
        td = "transformer_decoder."
        queries, hidden = state[td + "query_feat.weight"].shape
        decoder = DecoderConfig(
            hidden_dim=int(hidden),
            num_queries=int(queries),
            ffn_dim=int(state[td + "transformer_ffn_layers.0.linear1.weight"].shape[0]),
            num_layers=_count(state, r"transformer_decoder\.transformer_ffn_layers\.(\d+)\."),
            enforce_input_proj=td + "input_proj.0.weight" in state,
        )
        num_classes = int(state[td + "class_embed.weight"].shape[0]) - 1
    except KeyError as e:
        raise ConversionError(f"not a Mask2Former state dict: missing {e.args[0]!r}") from None
    return ModelConfig(num_classes=num_classes, backbone=backbone, pixel_decoder=pixel_decoder, decoder=decoder)


# ----------------------------------------------------------------------------- HuggingFace

_HF_RULES: list[tuple[str, str]] = [
    # in-memory (transformers 5) Swin names -> the on-disk (hub) names handled below
    (r"\.encoder\.swin\.", ".encoder."),
    (r"\.attention\.q_proj\.", ".attention.self.query."),
    (r"\.attention\.k_proj\.", ".attention.self.key."),
    (r"\.attention\.v_proj\.", ".attention.self.value."),
    (r"\.attention\.relative_position_bias\.relative_position_bias_table",
     ".attention.self.relative_position_bias_table"),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"(blocks\.\d+)\.mlp\.fc1\.", r"\1.intermediate.dense."),
    (r"(blocks\.\d+)\.mlp\.fc2\.", r"\1.output.dense."),
    # backbone (Swin)
    (r"^model\.pixel_level_module\.encoder\.", "backbone."),
    (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "backbone.patch_embed.proj."),
    (r"^backbone\.embeddings\.norm\.", "backbone.patch_embed.norm."),
    (r"^backbone\.encoder\.layers\.", "backbone.layers."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.self\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"\.attention\.self\.(query|key|value)\.", r".attn.\1."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"(blocks\.\d+)\.intermediate\.dense\.", r"\1.mlp.fc1."),
    (r"(blocks\.\d+)\.output\.dense\.", r"\1.mlp.fc2."),
    (r"^backbone\.hidden_states_norms\.stage(\d)\.", lambda m: f"backbone.norm{int(m.group(1)) - 1}."),  # type: ignore[list-item]
    # backbone (ResNet)
    (r"^backbone\.embedder\.embedder\.convolution\.", "backbone.conv1."),
    (r"^backbone\.embedder\.embedder\.normalization\.", "backbone.bn1."),
    (r"^backbone\.encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.convolution\.",
     lambda m: f"backbone.layer{int(m.group(1)) + 1}.{m.group(2)}.downsample.0."),  # type: ignore[list-item]
    (r"^backbone\.encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.normalization\.",
     lambda m: f"backbone.layer{int(m.group(1)) + 1}.{m.group(2)}.downsample.1."),  # type: ignore[list-item]
    (r"^backbone\.encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\.convolution\.",
     lambda m: f"backbone.layer{int(m.group(1)) + 1}.{m.group(2)}.conv{int(m.group(3)) + 1}."),  # type: ignore[list-item]
    (r"^backbone\.encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\.normalization\.",
     lambda m: f"backbone.layer{int(m.group(1)) + 1}.{m.group(2)}.bn{int(m.group(3)) + 1}."),  # type: ignore[list-item]
    # pixel decoder
    (r"^model\.pixel_level_module\.decoder\.", "pixel_decoder."),
    (r"^pixel_decoder\.input_projections\.", "pixel_decoder.input_proj."),
    (r"^pixel_decoder\.level_embed$", "pixel_decoder.transformer.level_embed"),
    (r"^pixel_decoder\.encoder\.layers\.", "pixel_decoder.transformer.encoder.layers."),
    (r"(transformer\.encoder\.layers\.\d+)\.self_attn_layer_norm\.", r"\1.norm1."),
    (r"(transformer\.encoder\.layers\.\d+)\.final_layer_norm\.", r"\1.norm2."),
    (r"(transformer\.encoder\.layers\.\d+)\.fc1\.", r"\1.linear1."),
    (r"(transformer\.encoder\.layers\.\d+)\.fc2\.", r"\1.linear2."),
    (r"^pixel_decoder\.mask_projection\.", "pixel_decoder.mask_features."),
    (r"^pixel_decoder\.(adapter|layer)_(\d+)\.0\.", r"pixel_decoder.\1_\2."),
    (r"^pixel_decoder\.(adapter|layer)_(\d+)\.1\.", r"pixel_decoder.\1_\2.norm."),
    # transformer decoder
    (r"^model\.transformer_module\.queries_embedder\.", "transformer_decoder.query_embed."),
    (r"^model\.transformer_module\.queries_features\.", "transformer_decoder.query_feat."),
    (r"^model\.transformer_module\.level_embed\.", "transformer_decoder.level_embed."),
    (r"^model\.transformer_module\.input_projections\.", "transformer_decoder.input_proj."),
    (r"^model\.transformer_module\.decoder\.layernorm\.", "transformer_decoder.decoder_norm."),
    (r"^model\.transformer_module\.decoder\.mask_predictor\.mask_embedder\.(\d)\.0\.",
     r"transformer_decoder.mask_embed.layers.\1."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.",
     r"transformer_decoder.transformer_self_attention_layers.\1.self_attn.out_proj."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.",
     r"transformer_decoder.transformer_self_attention_layers.\1.self_attn.\2_proj."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"transformer_decoder.transformer_self_attention_layers.\1.norm."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.cross_attn\.",
     r"transformer_decoder.transformer_cross_attention_layers.\1.multihead_attn."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.cross_attn_layer_norm\.",
     r"transformer_decoder.transformer_cross_attention_layers.\1.norm."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.fc(\d)\.",
     r"transformer_decoder.transformer_ffn_layers.\1.linear\2."),
    (r"^model\.transformer_module\.decoder\.layers\.(\d+)\.final_layer_norm\.",
     r"transformer_decoder.transformer_ffn_layers.\1.norm."),
    (r"^class_predictor\.", "transformer_decoder.class_embed."),
]

_HF_DROP = re.compile(r"(^criterion\.empty_weight|relative_position_index|^backbone\.layernorm\.)")


def _pack(state: dict[str, Tensor], parts: list[str], packed: str) -> None:
    """Concatenate separate q/k/v projections (rows) into one packed tensor."""
    if all(p in state for p in parts):
        state[packed] = torch.cat([state.pop(p) for p in parts], dim=0)


def convert_hf_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HF ``Mask2FormerForUniversalSegmentation`` (hub/on-disk or in-memory names) -> ours."""
    out = {k: v for k, v in _rename(state, _HF_RULES).items() if not _HF_DROP.search(k)}
    for key in [k for k in out if k.endswith(".attn.query.weight") or k.endswith(".self_attn.q_proj.weight")]:
        if key.endswith(".attn.query.weight"):  # Swin blocks: query/key/value -> qkv
            base = key[: -len("query.weight")]
            for kind in ("weight", "bias"):
                _pack(out, [f"{base}{n}.{kind}" for n in ("query", "key", "value")], f"{base}qkv.{kind}")
        else:  # decoder self-attention: q/k/v_proj -> in_proj_weight / in_proj_bias
            base = key[: -len("q_proj.weight")]
            for kind in ("weight", "bias"):
                _pack(out, [f"{base}{n}_proj.{kind}" for n in "qkv"], f"{base}in_proj_{kind}")
    return out


# config.json key -> our field, per section. A key the file leaves out keeps our dataclass default:
# HF's defaults are the paper's settings, as ours are, so each default is stated once, in config.py.
_HF_SWIN = {"embed_dim": "embed_dim", "depths": "depths", "num_heads": "num_heads", "window_size": "window_size",
            "mlp_ratio": "mlp_ratio", "drop_path_rate": "drop_path_rate", "image_size": "pretrain_img_size"}
_HF_PIXEL_DECODER = {"feature_size": "conv_dim", "mask_feature_size": "mask_dim",
                     "encoder_layers": "num_encoder_layers", "encoder_feedforward_dim": "encoder_ffn_dim",
                     "num_attention_heads": "num_heads", "dropout": "dropout", "common_stride": "common_stride"}
_HF_DECODER = {"hidden_dim": "hidden_dim", "num_queries": "num_queries", "num_attention_heads": "num_heads",
               "dim_feedforward": "ffn_dim", "pre_norm": "pre_norm", "dropout": "dropout",
               "enforce_input_projection": "enforce_input_proj"}
_HF_LOSS = {"class_weight": "class_weight", "mask_weight": "mask_weight", "dice_weight": "dice_weight",
            "no_object_weight": "no_object_weight", "train_num_points": "num_points",
            "oversample_ratio": "oversample_ratio", "importance_sample_ratio": "importance_sample_ratio"}
# Swin settings our backbone implements only one way: config.json must have these values (or none)
_HF_SWIN_FIXED = {"use_absolute_embeddings": False, "patch_size": 4, "num_channels": 3, "qkv_bias": True,
                  "hidden_act": "gelu"}


def _from_hf(cls: type[T], hf: Mapping[str, Any], names: Mapping[str, str], **fixed: Any) -> T:
    """``cls`` with the fields ``hf`` sets (as the type of the field's default), the others default."""
    defaults = cls()
    values = {}
    for theirs, ours in names.items():
        if theirs in hf:
            kind = type(getattr(defaults, ours))
            try:
                values[ours] = kind(hf[theirs])
            except (TypeError, ValueError):
                what = {int: "an integer", float: "a number", bool: "true or false"}.get(kind, "a list")
                raise ConversionError(f"config.json: {theirs} must be {what}, got {brief(hf[theirs])}") from None
    return cls(**{**values, **fixed})


def _backbone_from_hf(bc: Mapping[str, Any]) -> BackboneConfig:
    """The backbones we implement, in the settings the HF port can have them; anything else is refused."""
    kind = bc.get("model_type")
    if kind == "swin":
        unsupported = {k: bc[k] for k, ok in _HF_SWIN_FIXED.items() if k in bc and bc[k] != ok}
        if unsupported:
            raise ConversionError(f"unsupported Swin settings in config.json: {unsupported}")
        return _from_hf(BackboneConfig, bc, _HF_SWIN, name="swin")
    if kind == "resnet":
        blocks = tuple(bc.get("depths") or ())
        depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152, (2, 2, 2, 2): 18}.get(blocks)
        if depth is None or bc.get("layer_type", "bottleneck") != ("basic" if depth == 18 else "bottleneck") \
                or bc.get("downsample_in_first_stage", False) or bc.get("downsample_in_bottleneck", False):
            raise ConversionError(f"unsupported HF ResNet backbone settings: depths {bc.get('depths')}")
        return BackboneConfig(name="resnet", depth=depth, norm="FrozenBN")
    raise ConversionError(f"unsupported backbone model_type {kind!r} in config.json (swin or resnet)")


_HF_RESNET_BLOCKS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def hf_config_dict(config: ModelConfig) -> dict[str, Any]:
    """The HF ``config.json`` (dict) of ``config``'s architecture, the inverse of ``config_from_hf``
    (for running the HF port beside ours on the same weights: ``mask2former benchmark --vs-hf``)."""
    bb = config.backbone
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if bb.name == "swin":
        backbone: dict[str, Any] = {"model_type": "swin", "out_features": stages,
                                    **{theirs: getattr(bb, ours) for theirs, ours in _HF_SWIN.items()}}
        backbone["depths"], backbone["num_heads"] = list(bb.depths), list(bb.num_heads)
    elif bb.depth in _HF_RESNET_BLOCKS:
        basic = bb.depth == 18
        backbone = {"model_type": "resnet", "depths": list(_HF_RESNET_BLOCKS[bb.depth]), "out_features": stages,
                    "layer_type": "basic" if basic else "bottleneck",
                    "hidden_sizes": [64, 128, 256, 512] if basic else [256, 512, 1024, 2048]}
    else:
        raise ConversionError(f"the HF port has no ResNet-{bb.depth} layout we read (18, 50, 101, 152)")
    return {
        "backbone_config": backbone, "num_labels": config.num_classes,
        **{theirs: getattr(config.pixel_decoder, ours) for theirs, ours in _HF_PIXEL_DECODER.items()},
        **{theirs: getattr(config.decoder, ours) for theirs, ours in _HF_DECODER.items()},
        **{theirs: getattr(config.loss, ours) for theirs, ours in _HF_LOSS.items()},
        "decoder_layers": config.decoder.num_layers + 1,
    }


def config_from_hf(hf: Mapping[str, Any], weights_classes: int | None = None) -> ModelConfig:
    """Our ``ModelConfig`` from a HuggingFace ``config.json`` (dict). A config without ``id2label``
    and ``num_labels`` takes the class count of its weights (``weights_classes``), with numbered names."""
    bc = hf.get("backbone_config")
    if not bc:
        raise ConversionError("config.json has no backbone_config (timm / named backbones are not supported)")
    id2label = hf.get("id2label") or {}
    if not id2label and "num_labels" not in hf and weights_classes is None:
        raise ConversionError("config.json has neither id2label nor num_labels")
    num_classes = len(id2label) if id2label else int(hf.get("num_labels", weights_classes))
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    decoder = _from_hf(DecoderConfig, hf, _HF_DECODER)
    if "decoder_layers" in hf:  # HF counts the prediction from the learnable queries as a layer
        decoder = dataclasses.replace(decoder, num_layers=int(hf["decoder_layers"]) - 1)
    return ModelConfig(
        num_classes=num_classes,
        backbone=_backbone_from_hf(bc),
        pixel_decoder=_from_hf(PixelDecoderConfig, hf, _HF_PIXEL_DECODER),
        decoder=decoder,
        loss=_from_hf(LossConfig, hf, _HF_LOSS),
        categories=[CategoryInfo(id=i, name=n) for i, n in enumerate(names)],
    )
