"""Predictor: original sizes, the reference resize chain, and batches equal to singles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mask2former import Predictor
from mask2former.data.image import ImageError
from mask2former.data.transforms import shortest_edge_size
from tests.conftest import random_image


def test_shortest_edge_size_rule():
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)
    assert shortest_edge_size(100, 1000, 800, 1333) == (133, 1333)  # long side capped
    assert shortest_edge_size(800, 1200, 800, 1333) == (800, 1200)


def test_results_at_original_size_for_every_task(tiny_model):
    predictor = Predictor(tiny_model)
    result = predictor(random_image(50, 77), task="all")
    assert result.semantic.labels.shape == (50, 77)
    assert result.semantic.scores.shape == (4, 50, 77)
    assert result.instance.masks.shape[1:] == (50, 77)
    assert result.panoptic.segments.shape == (50, 77)
    assert (result.instance.scores[:-1] >= result.instance.scores[1:]).all()


def test_batch_equals_singles(tiny_model):
    images = [random_image(60, 80, 1), random_image(61, 79, 2), random_image(96, 64, 3), random_image(60, 80, 4)]
    singles = Predictor(tiny_model, batch_size=1).predict(images, "all")
    batched = Predictor(tiny_model, batch_size=4).predict(images, "all")
    for a, b in zip(singles, batched):
        torch.testing.assert_close(a.semantic.scores, b.semantic.scores, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.instance.scores, b.instance.scores, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.panoptic.segments, b.panoptic.segments)
        assert (a.height, a.width) == (b.height, b.width)


def test_postprocess_follows_reference_chain(tiny_model):
    """Semantic scores = crop of the padded-size upsampling, resized to the original size."""
    predictor = Predictor(tiny_model)
    image = random_image(50, 77)
    item = predictor.prepare(image)
    h, w = item.tensor.shape[-2:]
    padded = (-(-h // 32) * 32, -(-w // 32) * 32)
    with torch.no_grad():
        out = tiny_model(F.pad(item.tensor, (0, padded[1] - w, 0, padded[0] - h))[None])
    masks = F.interpolate(out.mask_logits, size=padded, mode="bilinear", align_corners=False)[0, :, :h, :w]
    masks = F.interpolate(masks[None], size=(50, 77), mode="bilinear", align_corners=False)[0]
    expected = torch.einsum("qc,qhw->chw", out.class_logits[0].softmax(-1)[:, :-1], masks.sigmoid())
    torch.testing.assert_close(predictor(image, task="semantic").semantic.scores, expected)


def test_inputs_of_every_kind(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)
    rgb = random_image(40, 40)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    from_path = predictor(str(tmp_path / "a.png"), task="semantic")
    from_pil = predictor(Image.fromarray(rgb), task="semantic")
    from_array = predictor(rgb, task="semantic")
    assert torch.equal(from_path.semantic.labels, from_array.semantic.labels)
    assert torch.equal(from_pil.semantic.labels, from_array.semantic.labels)
    gray = predictor(rgb[..., 0], task="semantic")
    assert gray.semantic.labels.shape == (40, 40)


def test_bad_inputs(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)
    with pytest.raises(ImageError, match="expected an \\[H, W, 3\\] uint8"):
        predictor(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ImageError, match="missing.png: file not found"):
        predictor(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="unknown task 'depth'"):
        predictor(random_image(32, 32), task="depth")


def test_semantic_tta_averages_views(tiny_model):
    predictor = Predictor(tiny_model)
    image = random_image(70, 90)
    one = predictor.semantic_tta(image, factors=(1.0,), flip=False).semantic.scores
    torch.testing.assert_close(one, predictor(image, task="semantic").semantic.scores)
    flipped = predictor(np.ascontiguousarray(image[:, ::-1]), task="semantic").semantic.scores.flip(-1)
    both = predictor.semantic_tta(image, factors=(1.0,), flip=True).semantic.scores
    torch.testing.assert_close(both, (one + flipped) / 2)
    multi = predictor.semantic_tta(image)  # six scales x flip, each back at the original size
    assert multi.semantic.scores.shape == one.shape and multi.semantic.labels.shape == (70, 90)
