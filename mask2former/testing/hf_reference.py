"""Build HuggingFace Mask2Former models (the test-only parity reference) from random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def make_hf_model(tmp_path: Path, *, backbone: str = "swin", embed_dim: int = 32, depths=(2, 2, 2, 2),
                  heads=(1, 2, 2, 4), window: int = 7, num_labels: int = 5, num_queries: int = 10,
                  hidden: int = 64, decoder_layers: int = 4, encoder_layers: int = 2, num_heads: int = 4,
                  seed: int = 0, noise: float = 0.02):
    """Save a randomly initialised HF model (weights perturbed so no tensor keeps a trivial init,
    e.g. the zero sampling-offset weights) and return (model in eval mode, directory)."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig, SwinConfig

    torch.manual_seed(seed)
    stages = ["stage1", "stage2", "stage3", "stage4"]
    # transformers' configs take most settings as **kwargs, which its type stubs do not declare
    bc: Any
    if backbone == "swin":
        swin: dict[str, Any] = dict(embed_dim=embed_dim, depths=list(depths), num_heads=list(heads),
                                    window_size=window, out_features=stages)
        bc = SwinConfig(**swin)
    else:
        resnet: dict[str, Any] = dict(depths=[2, 2, 2, 2], layer_type="basic", hidden_sizes=[64, 128, 256, 512],
                                      out_features=stages)
        bc = ResNetConfig(**resnet)
    settings: dict[str, Any] = dict(
        backbone_config=bc, num_labels=num_labels, num_queries=num_queries, hidden_dim=hidden, feature_size=hidden,
        mask_feature_size=hidden, encoder_feedforward_dim=2 * hidden, dim_feedforward=2 * hidden,
        decoder_layers=decoder_layers, encoder_layers=encoder_layers, num_attention_heads=num_heads,
    )
    config = Mask2FormerConfig(**settings)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * noise)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1)
    directory = tmp_path / f"hf_{backbone}_{seed}"
    model.save_pretrained(directory)
    return model, directory
