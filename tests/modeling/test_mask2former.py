"""Model contract: output shapes and types, gradients everywhere, fp32 pixel decoder under autocast."""

from __future__ import annotations

import pytest
import torch

from mask2former import build_model, get_preset
from mask2former.structures import Mask2FormerOutput


@pytest.mark.parametrize("preset", ["tiny", "tiny_resnet"])
def test_output_contract(preset):
    model = build_model(get_preset(preset))
    for mode in (True, False):
        model.train(mode)
        out = model(torch.randn(2, 3, 64, 96))
        assert isinstance(out, Mask2FormerOutput)
        assert out.class_logits.shape == (2, 8, 5)
        assert out.mask_logits.shape == (2, 8, 16, 24)
        assert len(out.aux) == 3  # prediction from the queries + layers 1..num_layers-1
        assert all(a.mask_logits.shape == out.mask_logits.shape for a in out.aux)


def test_every_parameter_gets_a_gradient():
    model = build_model(get_preset("tiny")).train()
    with torch.no_grad():  # the reference init zeroes the deformable offset/attention weights, which
        for p in model.parameters():  # leaves the level embedding without gradient at step 0
            p.add_(torch.randn_like(p) * 0.01)
    out = model(torch.randn(2, 3, 64, 64))
    loss = out.class_logits.square().mean() + out.mask_logits.square().mean()
    loss = loss + sum(a.class_logits.square().mean() + a.mask_logits.square().mean() for a in out.aux)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_pixel_decoder_stays_fp32_under_autocast():
    model = build_model(get_preset("tiny")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.backbone(x)
        mask_features, multi = model.pixel_decoder(features)
    assert mask_features.dtype == torch.float32 and all(m.dtype == torch.float32 for m in multi)


def test_fully_masked_query_attends_everywhere():
    """A query whose mask is empty at the attention resolution must not produce NaN."""
    model = build_model(get_preset("tiny")).eval()
    with torch.no_grad():
        model.transformer_decoder.mask_embed.layers[-1].bias.fill_(-1e4)  # every mask logit very negative
        out = model(torch.randn(1, 3, 64, 64))
    assert torch.isfinite(out.class_logits).all() and torch.isfinite(out.mask_logits).all()


def test_rejects_wrong_input_shape():
    model = build_model(get_preset("tiny"))
    with pytest.raises(ValueError, match=r"pixel_values must be \[B, 3, H, W\]"):
        model(torch.randn(3, 64, 64))
