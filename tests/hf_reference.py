"""Build HuggingFace Mask2Former models (the test-only parity reference) from random weights."""

from __future__ import annotations

from pathlib import Path

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
    if backbone == "swin":
        bc = SwinConfig(embed_dim=embed_dim, depths=list(depths), num_heads=list(heads), window_size=window,
                        out_features=stages)
    else:
        bc = ResNetConfig(depths=[2, 2, 2, 2], layer_type="basic", hidden_sizes=[64, 128, 256, 512],
                          out_features=stages)
    config = Mask2FormerConfig(
        backbone_config=bc, num_labels=num_labels, num_queries=num_queries, hidden_dim=hidden, feature_size=hidden,
        mask_feature_size=hidden, encoder_feedforward_dim=2 * hidden, dim_feedforward=2 * hidden,
        decoder_layers=decoder_layers, encoder_layers=encoder_layers, num_attention_heads=num_heads,
    )
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


def max_errors(hf_out, ours) -> dict[str, float]:
    """Largest absolute differences of final and auxiliary class / mask logits."""
    aux_cls = max((a["class_queries_logits"] - b.class_logits).abs().max().item()
                  for a, b in zip(hf_out.auxiliary_logits, ours.aux))
    aux_mask = max((a["masks_queries_logits"] - b.mask_logits).abs().max().item()
                   for a, b in zip(hf_out.auxiliary_logits, ours.aux))
    return {
        "class": (hf_out.class_queries_logits - ours.class_logits).abs().max().item(),
        "mask": (hf_out.masks_queries_logits - ours.mask_logits).abs().max().item(),
        "aux_class": aux_cls,
        "aux_mask": aux_mask,
    }
