"""Training augmentation moves image, masks and ignore map together, and keeps targets valid."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from mask2former.data.transforms import (
    PAD_VALUE,
    build_train_transform,
    color_jitter,
    drop_empty,
    horizontal_flip,
    hsv_to_rgb,
    large_scale_jitter,
    resize_crop_semantic,
    resize_image,
    rgb_to_hsv,
    shortest_edge_size,
)
from mask2former.structures import Target

PALETTE = np.array([[250, 20, 20], [20, 250, 20], [20, 20, 250], [250, 250, 20], [20, 250, 250]], dtype=np.uint8)


def _scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, Target]:
    """Random axis-aligned blocks partition the image; each segment's pixels carry its palette
    colour, so the image itself says which mask a pixel belongs to."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((h, w), dtype=np.int64)
    for k in range(1, len(PALETTE)):
        y0, x0 = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
        ids[y0:y0 + rng.integers(h // 8, h // 2), x0:x0 + rng.integers(w // 8, w // 2)] = k
    present = np.unique(ids)
    masks = torch.from_numpy(ids[None] == present[:, None, None])
    n = len(present)
    target = Target(masks=masks, labels=torch.from_numpy(present), is_thing=torch.ones(n, dtype=torch.bool),
                    iscrowd=torch.zeros(n, dtype=torch.bool), ignore=torch.zeros((h, w), dtype=torch.bool))
    return PALETTE[ids], target


def _decode(image: np.ndarray) -> np.ndarray:
    """Palette index of the nearest palette colour, per pixel."""
    dist = ((image[:, :, None, :].astype(np.int32) - PALETTE[None, None].astype(np.int32)) ** 2).sum(-1)
    return dist.argmin(-1)


def _agreement(image: np.ndarray, target: Target) -> float:
    """Share of labelled pixels whose colour names the class of the mask covering them."""
    labels = target.semantic_map(ignore_value=-1).numpy()
    valid = labels >= 0
    return float((_decode(image)[valid] == labels[valid]).mean())


def _assert_partition(image: np.ndarray, target: Target) -> None:
    """Every pixel is in exactly one mask or ignored, and ignored pixels are image padding."""
    cover = target.masks.sum(0).numpy() + target.ignore.numpy()
    assert (cover == 1).all()
    assert (image[target.ignore.numpy()] == PAD_VALUE).all()


@pytest.mark.parametrize("size", [(96, 128), (128, 96), (64, 64)])
def test_lsj_is_joint_and_exactly_crop_size(size):
    image, target = _scene(*size)
    for seed in range(8):
        out, t = large_scale_jitter(image, target, np.random.default_rng(seed), crop_size=80)
        assert out.shape == (80, 80, 3) and out.dtype == np.uint8
        assert t.masks.shape[1:] == (80, 80) and t.ignore.shape == (80, 80)
        _assert_partition(out, t)
        assert _agreement(out, t) > 0.97


def test_lsj_fixed_scale_pads_bottom_right_with_ignore():
    image, target = _scene(64, 64)
    out, t = large_scale_jitter(image, target, np.random.default_rng(0), crop_size=64, min_scale=0.5, max_scale=0.5)
    assert (out[32:] == PAD_VALUE).all() and (out[:, 32:] == PAD_VALUE).all()
    assert t.ignore[32:].all() and t.ignore[:, 32:].all() and not t.ignore[:32, :32].any()
    assert not t.masks[:, 32:].any() and not t.masks[:, :, 32:].any()
    # scale 1 on an image of crop size: nothing changes
    out, t = large_scale_jitter(image, target, np.random.default_rng(0), crop_size=64, min_scale=1.0, max_scale=1.0)
    assert np.array_equal(out, image) and torch.equal(t.masks, target.masks)


def test_lsj_non_square_crop():
    image, target = _scene(96, 128)
    out, t = large_scale_jitter(image, target, np.random.default_rng(1), crop_size=(48, 80))
    assert out.shape == (48, 80, 3) and t.masks.shape[1:] == (48, 80)
    _assert_partition(out, t)


def test_semantic_resize_crop_is_joint():
    image, target = _scene(96, 128)
    for seed in range(8):
        out, t = resize_crop_semantic(image, target, np.random.default_rng(seed), base_size=64, crop_size=64)
        assert out.shape == (64, 64, 3) and t.masks.shape[1:] == (64, 64)
        _assert_partition(out, t)
        assert _agreement(out, t) > 0.97
    # short side 0.5 x 48 = 24 < crop: padded bottom/right, padding ignored
    out, t = resize_crop_semantic(image, target, np.random.default_rng(0), base_size=48, crop_size=64,
                                  min_ratio=0.5, max_ratio=0.5)
    assert t.ignore[24:].all() and (out[24:] == PAD_VALUE).all() and not t.ignore[:24].all()


def test_flip_is_exact():
    image, target = _scene(40, 56)
    flipped, t = horizontal_flip(image, target, np.random.default_rng(0), p=1.0)
    assert np.array_equal(flipped, image[:, ::-1]) and torch.equal(t.masks, target.masks.flip(-1))
    assert _agreement(flipped, t) == 1.0
    same, t = horizontal_flip(image, target, np.random.default_rng(0), p=0.0)
    assert same is image and t is target


def _dominated_target() -> tuple[np.ndarray, Target]:
    """64 x 256: class 0 everywhere except 8-pixel stripes of class 1 in the left half."""
    labels = np.zeros((64, 256), dtype=np.int64)
    for x in range(8, 128, 16):
        labels[:, x:x + 8] = 1
    masks = torch.from_numpy(np.stack([labels == 0, labels == 1]))
    target = Target(masks=masks, labels=torch.tensor([0, 1]), is_thing=torch.zeros(2, dtype=torch.bool),
                    iscrowd=torch.zeros(2, dtype=torch.bool), ignore=torch.zeros((64, 256), dtype=torch.bool))
    return np.zeros((64, 256, 3), dtype=np.uint8), target


def _max_share(target: Target) -> float:
    area = target.masks.flatten(1).sum(1).float()
    return float(area.max() / area.sum())


def test_cat_max_ratio_rejects_dominated_crops():
    image, target = _dominated_target()
    kwargs = dict(base_size=64, crop_size=64, min_ratio=1.0, max_ratio=1.0)  # no resize, crop 64 x 64
    plain = [_max_share(resize_crop_semantic(image, target, np.random.default_rng(s), **kwargs)[1]) for s in range(30)]
    constrained = [_max_share(resize_crop_semantic(image, target, np.random.default_rng(s), cat_max_ratio=0.75,
                                                   **kwargs)[1]) for s in range(30)]
    assert max(plain) == 1.0  # plain random crops often see only class 0
    assert max(constrained) < 0.75


def test_empty_targets_survive():
    image = np.full((50, 70, 3), 30, dtype=np.uint8)
    empty = Target.empty(50, 70)
    for kind in ("lsj", "semantic", "none"):
        transform = build_train_transform(kind, crop_size=40, color=True)
        out, t = transform(image, empty, np.random.default_rng(0))
        assert len(t) == 0 and t.masks.shape == (0, *out.shape[:2]) and t.ignore.shape == out.shape[:2]
        assert t.semantic_map().shape == out.shape[:2]
    # a segment that every LSJ window misses: top-right corner, windows move along the diagonal
    target = Target(masks=torch.zeros((1, 100, 100), dtype=torch.bool), labels=torch.tensor([3]),
                    is_thing=torch.tensor([True]), iscrowd=torch.tensor([False]),
                    ignore=torch.zeros((100, 100), dtype=torch.bool))
    target.masks[0, :2, 98:] = True
    for seed in range(10):
        _, t = large_scale_jitter(np.zeros((100, 100, 3), np.uint8), target, np.random.default_rng(seed),
                                  crop_size=50, min_scale=2.0, max_scale=2.0)
        assert len(t) == 1 and not t.masks.any()
        kept = drop_empty(t)
        assert len(kept) == 0 and kept.masks.shape == (0, 50, 50)


@pytest.mark.parametrize("kind", ["lsj", "semantic"])
def test_transforms_are_deterministic_for_a_seed(kind):
    image, target = _scene(96, 128)
    transform = build_train_transform(kind, crop_size=64, color=True, cat_max_ratio=0.75)
    a_img, a = transform(image, target, np.random.default_rng(7))
    b_img, b = transform(image, target, np.random.default_rng(7))
    assert np.array_equal(a_img, b_img) and torch.equal(a.masks, b.masks) and torch.equal(a.ignore, b.ignore)
    others = [transform(image, target, np.random.default_rng(s))[0] for s in range(8, 12)]
    assert any(not np.array_equal(a_img, o) for o in others)


def test_build_train_transform_output_sizes_and_validation():
    image, target = _scene(96, 128)
    for kind in ("lsj", "semantic"):
        out, t = build_train_transform(kind, crop_size=(48, 64))(image, target, np.random.default_rng(0))
        assert out.shape == (48, 64, 3) and t.masks.shape[1:] == (48, 64)
        assert t.masks.flatten(1).any(1).all()  # emptied segments were dropped
    out, _ = build_train_transform("none", crop_size=64, flip=False)(image, target, np.random.default_rng(0))
    assert np.array_equal(out, image)
    with pytest.raises(ValueError, match="lsj, semantic, none"):
        build_train_transform("ssd", crop_size=64)


def test_hsv_conversion_matches_colorsys_and_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.float32)
    hsv = rgb_to_hsv(rgb)
    ref = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in rgb])
    np.testing.assert_allclose(hsv[:, 0] / 360.0, ref[:, 0], atol=1e-5)
    np.testing.assert_allclose(hsv[:, 1], ref[:, 1], atol=1e-5)
    np.testing.assert_allclose(hsv[:, 2] / 255.0, ref[:, 2], atol=1e-5)
    np.testing.assert_allclose(hsv_to_rgb(hsv), rgb, atol=1e-3)


def test_color_jitter_changes_only_colours_within_bounds():
    image, _ = _scene(40, 56)
    outs = [color_jitter(image, np.random.default_rng(s)) for s in range(20)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, image) for o in outs) >= 15  # 1/16 of draws apply no step at all
    assert np.array_equal(color_jitter(image, np.random.default_rng(3)), outs[3])
    gray = np.full((4, 4, 3), 100, dtype=np.uint8)  # no saturation: hue and saturation leave it gray
    for s in range(20):
        out = color_jitter(gray, np.random.default_rng(s))
        assert (out == out[..., :1]).all()


def test_test_time_helpers_unchanged():
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)
    assert shortest_edge_size(100, 1000, 800, 1333) == (133, 1333)
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    assert resize_image(image, (10, 20)) is image and resize_image(image, (5, 10)).shape == (5, 10, 3)


def test_mismatched_target_is_rejected():
    image, _ = _scene(40, 56)
    with pytest.raises(ValueError, match="40x56"):
        large_scale_jitter(image, Target.empty(56, 40), np.random.default_rng(0), crop_size=32)


@pytest.mark.parametrize("size", [(1, 3000), (3000, 1), (2, 50_000)])
def test_strips_whose_short_side_would_round_to_zero_train(size):
    """A 1 x 3000 strip with a 128 px crop: detectron2's size rule resizes it to 0 x 512, which
    Pillow refuses; one row is kept instead."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = 200
    masks = torch.zeros((1, h, w), dtype=torch.bool)
    masks[0, : max(1, h // 2)] = True
    target = Target(masks=masks, labels=torch.tensor([0]), is_thing=torch.tensor([True]),
                    iscrowd=torch.tensor([False]), ignore=torch.zeros((h, w), dtype=torch.bool))
    for kind in ("semantic", "lsj", "none"):
        transform = build_train_transform(kind, crop_size=128, cat_max_ratio=0.75)
        for seed in range(4):
            out, out_target = transform(image, target, np.random.default_rng(seed))
            assert out.dtype == np.uint8 and out.shape[:2] == tuple(out_target.ignore.shape)
            assert tuple(out_target.masks.shape[1:]) == out.shape[:2]
            if kind != "none":
                assert out.shape[:2] == (128, 128) and (out[~out_target.ignore.numpy()][:, 0] == 200).all()
