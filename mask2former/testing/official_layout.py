"""The official (detectron2) checkpoint layout, written from the key inventory of the reference
(independently of mask2former.convert, so that the converter is tested against it)."""

from __future__ import annotations

import re

import torch

from mask2former.config import ModelConfig
from mask2former.modeling import Mask2Former

_BN = ("weight", "bias", "running_mean", "running_var")


def official_keys(config: ModelConfig) -> list[str]:
    """Every key an official checkpoint of this architecture holds (without criterion.empty_weight)."""
    keys: list[str] = []
    b = config.backbone
    if b.name == "resnet":
        blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 18: (2, 2, 2, 2)}[b.depth]
        convs = 3 if b.depth >= 50 else 2
        keys += ["backbone.stem.conv1.weight"] + [f"backbone.stem.conv1.norm.{n}" for n in _BN]
        for s, count in zip(range(2, 6), blocks):
            for i in range(count):
                p = f"backbone.res{s}.{i}"
                for c in range(1, convs + 1):
                    keys += [f"{p}.conv{c}.weight"] + [f"{p}.conv{c}.norm.{n}" for n in _BN]
                if i == 0 and (s > 2 or b.depth >= 50):
                    keys += [f"{p}.shortcut.weight"] + [f"{p}.shortcut.norm.{n}" for n in _BN]
    else:
        keys += [f"backbone.patch_embed.{m}.{n}" for m in ("proj", "norm") for n in ("weight", "bias")]
        for i, depth in enumerate(b.depths):
            for j in range(depth):
                p = f"backbone.layers.{i}.blocks.{j}"
                keys += [f"{p}.norm1.weight", f"{p}.norm1.bias", f"{p}.attn.qkv.weight", f"{p}.attn.qkv.bias",
                         f"{p}.attn.relative_position_bias_table", f"{p}.attn.relative_position_index",
                         f"{p}.attn.proj.weight", f"{p}.attn.proj.bias", f"{p}.norm2.weight", f"{p}.norm2.bias",
                         f"{p}.mlp.fc1.weight", f"{p}.mlp.fc1.bias", f"{p}.mlp.fc2.weight", f"{p}.mlp.fc2.bias"]
            if i < 3:
                keys += [f"backbone.layers.{i}.downsample.reduction.weight",
                         f"backbone.layers.{i}.downsample.norm.weight", f"backbone.layers.{i}.downsample.norm.bias"]
        keys += [f"backbone.norm{i}.{n}" for i in range(4) for n in ("weight", "bias")]
    pd = "sem_seg_head.pixel_decoder"
    keys += [f"{pd}.input_proj.{i}.{j}.{n}" for i in range(3) for j in range(2) for n in ("weight", "bias")]
    keys += [f"{pd}.transformer.level_embed"]
    for k in range(config.pixel_decoder.num_encoder_layers):
        p = f"{pd}.transformer.encoder.layers.{k}"
        keys += [f"{p}.self_attn.{m}.{n}" for m in ("sampling_offsets", "attention_weights", "value_proj",
                                                     "output_proj") for n in ("weight", "bias")]
        keys += [f"{p}.{m}.{n}" for m in ("norm1", "linear1", "linear2", "norm2") for n in ("weight", "bias")]
    keys += [f"{pd}.mask_features.weight", f"{pd}.mask_features.bias"]
    for m in ("adapter_1", "layer_1"):
        keys += [f"{pd}.{m}.weight", f"{pd}.{m}.norm.weight", f"{pd}.{m}.norm.bias"]
    pr = "sem_seg_head.predictor"
    for i in range(config.decoder.num_layers):
        for layer, attn in (("transformer_self_attention_layers", "self_attn"),
                            ("transformer_cross_attention_layers", "multihead_attn")):
            p = f"{pr}.{layer}.{i}"
            keys += [f"{p}.{attn}.in_proj_weight", f"{p}.{attn}.in_proj_bias", f"{p}.{attn}.out_proj.weight",
                     f"{p}.{attn}.out_proj.bias", f"{p}.norm.weight", f"{p}.norm.bias"]
        keys += [f"{pr}.transformer_ffn_layers.{i}.{m}.{n}" for m in ("linear1", "linear2", "norm")
                 for n in ("weight", "bias")]
    keys += [f"{pr}.decoder_norm.weight", f"{pr}.decoder_norm.bias", f"{pr}.query_feat.weight",
             f"{pr}.query_embed.weight", f"{pr}.level_embed.weight", f"{pr}.class_embed.weight",
             f"{pr}.class_embed.bias"]
    keys += [f"{pr}.mask_embed.layers.{i}.{n}" for i in range(3) for n in ("weight", "bias")]
    return keys


def _ours_name(official: str) -> str:
    key = official
    key = re.sub(r"^backbone\.stem\.conv1\.norm\.", "backbone.bn1.", key)
    key = re.sub(r"^backbone\.stem\.conv1\.", "backbone.conv1.", key)
    m = re.match(r"^backbone\.res(\d)\.(\d+)\.(.*)$", key)
    if m:
        rest = m.group(3)
        rest = re.sub(r"^conv(\d)\.norm\.", r"bn\1.", rest)
        rest = re.sub(r"^shortcut\.norm\.", "downsample.1.", rest)
        rest = re.sub(r"^shortcut\.", "downsample.0.", rest)
        key = f"backbone.layer{int(m.group(1)) - 1}.{m.group(2)}.{rest}"
    key = key.replace("sem_seg_head.pixel_decoder.", "pixel_decoder.")
    key = key.replace("sem_seg_head.predictor.", "transformer_decoder.")
    return key


def to_official(model: Mask2Former, *, legacy: bool = False) -> dict[str, torch.Tensor]:
    """Our model's weights under official names. ``legacy``: the first key generation
    (``static_query``, pixel decoder keys directly under ``sem_seg_head.``)."""
    state = model.state_dict()
    buffers = dict(model.named_buffers())
    out = {}
    for key in official_keys(model.config):
        ours = _ours_name(key)
        value = state[ours] if ours in state else buffers[ours]
        if legacy:
            key = key.replace("predictor.query_feat", "predictor.static_query")
            key = key.replace("sem_seg_head.pixel_decoder.", "sem_seg_head.")
        out[key] = value.clone()
    k = model.config.num_classes
    out["criterion.empty_weight"] = torch.cat([torch.ones(k), torch.tensor([0.1])])
    return out
