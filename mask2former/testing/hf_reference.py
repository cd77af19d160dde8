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


def attention_mask_flips(hf: Any, ours: Any, x: torch.Tensor) -> dict[str, Any]:
    """Run both models on ``x`` and compare their masked-attention masks bit by bit.

    The mask is a hard threshold (``sigmoid(logit) < 0.5``) on mask logits that the two
    implementations compute with ~1e-6 rounding differences, so a logit within that distance of 0
    can land on opposite sides; the query then attends to one pixel more or less and its outputs
    differ by far more than rounding. Ours is re-run with HF's masks injected at every layer, so
    both see the same history; returns the errors of that run (pure numerical error), the number
    of mask bits where our own threshold would still differ, and the largest |logit| among them."""
    decoder = hf.model.transformer_module.decoder
    heads = decoder.mask_predictor.num_heads
    hf_blocked, hf_logits = [], []

    def capture(module, args, output):
        hf_blocked.append(output[1][::heads].clone())  # [B*heads, Q, hw] -> one head per image
        small = torch.nn.functional.interpolate(output[0], size=args[2], mode="bilinear", align_corners=False)
        hf_logits.append(small.flatten(2))

    handle = decoder.mask_predictor.register_forward_hook(capture)
    try:
        with torch.no_grad():
            hf_out = hf(pixel_values=x, output_auxiliary_logits=True)
    finally:
        handle.remove()

    ours_decoder = ours.transformer_decoder
    original = ours_decoder.predict
    our_blocked: list[torch.Tensor] = []

    def injected(*args, **kwargs):
        # every layer attends exactly as HF's did; record where our own threshold would differ
        class_logits, mask_logits, _ = original(*args, **kwargs)
        small = torch.nn.functional.interpolate(mask_logits, size=args[2], mode="bilinear", align_corners=False)
        our_blocked.append(small.flatten(2).sigmoid() < 0.5)
        blocked = hf_blocked[len(our_blocked) - 1]
        blocked = blocked & ~blocked.all(-1, keepdim=True)
        return class_logits, mask_logits, (~blocked).unsqueeze(1)

    ours_decoder.predict = injected
    try:
        with torch.no_grad():
            pinned = max_errors(hf_out, ours(x))
    finally:
        del ours_decoder.predict
    flips = [a != b for a, b in zip(hf_blocked, our_blocked)]
    n = sum(int(f.sum()) for f in flips)
    at_flips = max((float(lg[f].abs().max()) for lg, f in zip(hf_logits, flips) if f.any()), default=0.0)
    return {"flips": n, "max_abs_logit_at_flip": at_flips, "pinned": pinned}
