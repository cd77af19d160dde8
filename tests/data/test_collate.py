"""The model-input contract: normalise, then zero-pad to the size divisibility; targets follow."""

from __future__ import annotations

import torch

from mask2former.config import ModelConfig, PixelConfig, from_dict, to_dict
from mask2former.data.collate import pad_and_normalize, pad_targets, padded_size
from mask2former.structures import Target


def test_normalise_then_zero_pad_to_the_divisibility():
    a = torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8)
    b = torch.randint(0, 256, (3, 40, 20), dtype=torch.uint8)
    mean, std = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)
    pixels, sizes = pad_and_normalize([a, b], mean, std, 32)
    assert pixels.shape == (2, 3, 64, 64) and pixels.dtype == torch.float32
    assert sizes == [(30, 50), (40, 20)]
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    assert torch.equal(pixels[0, :, :30, :50], (a.float() - m) / s)
    assert torch.equal(pixels[1, :, :40, :20], (b.float() - m) / s)
    assert not pixels[0, :, 30:].any() and not pixels[0, :, :, 50:].any()  # zero after normalising
    assert padded_size((30, 50), 32) == (32, 64) and padded_size((30, 50), 1) == (30, 50)


def test_targets_pad_with_background_and_void():
    target = Target(masks=torch.ones((2, 5, 7), dtype=torch.bool), labels=torch.tensor([1, 2]),
                    is_thing=torch.tensor([True, False]), iscrowd=torch.tensor([False, False]),
                    ignore=torch.zeros((5, 7), dtype=torch.bool))
    (padded,) = pad_targets([target], (8, 9))
    assert padded.masks.shape == (2, 8, 9) and padded.masks[:, :5, :7].all() and padded.masks.sum() == 2 * 35
    assert padded.ignore[5:].all() and padded.ignore[:, 7:].all() and not padded.ignore[:5, :7].any()
    assert padded.semantic_map().shape == (8, 9)


def test_checkpoints_of_the_earlier_layout_keep_their_pixel_settings():
    """Configs stored before the pixel settings had their own section kept them in ``inference``."""
    old = to_dict(ModelConfig())
    old.pop("pixels")
    old["inference"].update(pixel_mean=[1.0, 2.0, 3.0], pixel_std=[4.0, 5.0, 6.0], size_divisibility=64)
    config = from_dict(ModelConfig, old).validate()
    assert config.pixels == PixelConfig(mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), size_divisibility=64)
