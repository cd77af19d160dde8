"""The embedding_bag deformable attention equals the grid_sample definition, values and gradients."""

from __future__ import annotations

import pytest
import torch

from mask2former.modeling.ms_deform_attn import (
    MSDeformAttn,
    level_sizes,
    ms_deform_attn,
    ms_deform_attn_reference,
    reference_pixels,
    sample_grid,
    sample_padded,
)

SHAPES = [(9, 13), (5, 7), (3, 4)]


def _inputs(b=2, q=23, heads=4, dim=8, points=3, spread=0.6):
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, s, heads, dim, dtype=torch.float64)
    # locations well outside [0, 1] too: those corners must read zeros
    loc = (torch.rand(b, q, heads, len(SHAPES), points, 2, dtype=torch.float64) - 0.5) * (1 + 2 * spread) + 0.5
    weights = torch.rand(b, q, heads, len(SHAPES), points, dtype=torch.float64).softmax(-1)
    return value, loc, weights


def test_forward_equals_grid_sample():
    value, loc, weights = _inputs()
    ref = ms_deform_attn_reference(value, SHAPES, loc, weights)
    out = ms_deform_attn(value, SHAPES, loc, weights)
    assert out.shape == ref.shape == (2, 23, 4 * 8)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_exact_integer_and_border_locations():
    value, _, weights = _inputs(q=5)
    h, w = SHAPES[0]
    # pixel centres, pixel corners, the exact image border and far outside
    xs = torch.tensor([0.5 / w, 0.0, 1.0, 1.0 + 0.5 / w, -3.0], dtype=torch.float64)
    loc = torch.stack([xs, xs.flip(0)], -1).view(1, 5, 1, 1, 1, 2).expand(2, 5, 4, 3, 3, 2).contiguous()
    torch.testing.assert_close(ms_deform_attn(value, SHAPES, loc, weights),
                               ms_deform_attn_reference(value, SHAPES, loc, weights), rtol=0, atol=1e-12)


def test_gradients_equal_grid_sample():
    value, loc, weights = _inputs(q=11)
    grads = []
    for fn in (ms_deform_attn_reference, ms_deform_attn):
        v, l, a = (t.clone().requires_grad_(True) for t in (value, loc, weights))
        (fn(v, SHAPES, l, a) * torch.linspace(-1, 1, 32, dtype=torch.float64)).sum().backward()
        grads.append((v.grad, l.grad, a.grad))
    for ours, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_module_equals_reference_formulation():
    """The module (pixel-unit reference points, split x/y offset rows) equals the reference's
    location formula ``ref + offset / (W, H)`` fed to grid_sample."""
    attn = MSDeformAttn(embed_dim=32, num_levels=3, num_heads=4, num_points=2).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    s = sum(h * w for h, w in SHAPES)
    src = torch.randn(2, s, 32, dtype=torch.float64)
    ref = torch.rand(s, 3, 2, dtype=torch.float64)
    out = attn(src, reference_pixels(ref, SHAPES, 4, 2), src, SHAPES)
    value = attn.value_proj(src).view(2, s, 4, 8)
    offsets = attn.sampling_offsets(src).view(2, s, 4, 3, 2, 2)
    weights = attn.attention_weights(src).view(2, s, 4, 6).softmax(-1).view(2, s, 4, 3, 2)
    normaliser = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float64)
    loc = ref[None, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
    expected = attn.output_proj(ms_deform_attn_reference(value, SHAPES, loc, weights))
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # eval mode samples with embedding_bag, training mode with grid_sample: the same numbers
        fast = attn.eval()(src, reference_pixels(ref, SHAPES, 4, 2), src, SHAPES)
    torch.testing.assert_close(fast, out.detach(), rtol=1e-9, atol=1e-9)


def test_the_sampler_follows_the_mode_or_the_choice_never_the_grad_mode(monkeypatch):
    import mask2former.modeling.ms_deform_attn as mda

    used = []
    for name, fn in list(mda.SAMPLERS.items()):
        monkeypatch.setitem(mda.SAMPLERS, name, lambda *a, _fn=fn, _name=name: used.append(_name) or _fn(*a))
    model = MSDeformAttn(embed_dim=32, num_levels=3, num_heads=4, num_points=2).double()
    s = sum(h * w for h, w in SHAPES)
    src = torch.randn(1, s, 32, dtype=torch.float64)
    ref = reference_pixels(torch.rand(s, 3, 2, dtype=torch.float64), SHAPES, 4, 2)
    for training in (True, False):
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                model.train(training)(src, ref, src, SHAPES)
    assert used == ["grid_sample", "grid_sample", "embedding_bag", "embedding_bag"]
    used.clear()
    mda.set_sampler(model, "grid_sample")
    model.eval()(src, ref, src, SHAPES)
    mda.set_sampler(model, None)
    model(src, ref, src, SHAPES)
    assert used == ["grid_sample", "embedding_bag"]
    with pytest.raises(ValueError, match="sampler must be one of"):
        mda.set_sampler(model, "bilinear")


def test_module_reset():
    attn = MSDeformAttn(embed_dim=32, num_levels=3, num_heads=4, num_points=2)
    # initial offsets: each head points along its own direction, the p-th point p+1 pixels away
    bias = attn.sampling_offsets.bias.view(4, 3, 2, 2)
    assert torch.allclose(bias[:, :, 1], 2 * bias[:, :, 0])
    assert torch.count_nonzero(attn.attention_weights.weight) == 0


def test_grid_path_equals_padded_path_in_pixel_units():
    """The two samplers behind the module take pixel positions of the padded maps, including
    positions far outside them, and agree."""
    value, loc, weights = _inputs(q=13)
    b, q, heads, levels, points, _ = loc.shape
    widths, heights = (t.view(1, 1, 1, -1, 1) for t in level_sizes(SHAPES, torch.float64))
    px = (loc[..., 0] * widths + 0.5).reshape(b, q, -1)
    py = (loc[..., 1] * heights + 0.5).reshape(b, q, -1)
    w = weights.reshape(b, q, -1)
    torch.testing.assert_close(sample_grid(value, SHAPES, px, py, w, points),
                               sample_padded(value, SHAPES, px, py, w, points), rtol=0, atol=1e-12)
