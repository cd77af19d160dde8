"""The segmentation checks accept exactly what pycocotools encodes, and the decoder equals it."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_util

from mask2former.data.coco_masks import compressed_runs, decode_segmentations, polygon_problem, rle_problem


def runs_of(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts: column-major runs, starting with zeros."""
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], change])).tolist()


def random_masks(seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        kind = rng.integers(3)
        if kind == 0:
            yield (rng.random((h, w)) < rng.random()).astype(np.uint8)
        else:
            mask = np.full((h, w), kind == 2, np.uint8)
            mask[rng.integers(h):, rng.integers(w):] ^= 1
            yield mask
    yield np.zeros((3000, 3000), np.uint8)  # one run of 9 M: a multi-character count
    big = np.zeros((3000, 3000), np.uint8)
    big[5:2900, 1000:2999] = 1
    yield big


def test_compressed_runs_match_pycocotools_encoding():
    for mask in random_masks():
        counts = mask_util.encode(np.asfortranarray(mask))["counts"].decode()
        assert compressed_runs(counts).tolist() == runs_of(mask)
        size = list(mask.shape)
        assert rle_problem({"size": size, "counts": counts}, *mask.shape) is None
        assert rle_problem({"size": size, "counts": runs_of(mask)}, *mask.shape) is None


@pytest.mark.parametrize("counts", ["", "0", "o", "1P", "`", "PPPPPPPPPPPPPPP0", "/", "p", "\u00e9"])
def test_malformed_or_partial_strings(counts):
    assert rle_problem({"size": [4, 5], "counts": counts}, 4, 5) is not None


def test_polygon_geometry_bounds():
    assert polygon_problem([0, 0, 29, 0, 29, 19, 0, 19], 20, 30) is None
    assert polygon_problem([-0.5, -0.5, 30.4, 0, 29, 20.2], 20, 30) is None  # slightly outside: COCO has these
    assert "far outside" in polygon_problem([0, 0, 61, 0, 29, 19], 20, 30)
    assert polygon_problem([0, 0, 61, 0, 29, 19], None, None) is None  # size unknown: checked at load
    zigzag = [0, 0, 29, 0] * 400
    assert "outline" in polygon_problem(zigzag + [0, 19], 20, 30)
    assert polygon_problem([1, 2, 3, 4], 20, 30) is None  # fewer than 3 points: no area, dropped later


def test_decoder_equals_pycocotools():
    h, w = 20, 30
    polygon = [2.5, 2, 8, 2, 8, 6.5, 2, 6]
    mask = np.zeros((h, w), np.uint8)
    mask[10:20, 15:30] = 1
    compressed = mask_util.encode(np.asfortranarray(mask))
    segmentations = [[polygon, [1, 1, 5, 5]], {"size": [h, w], "counts": runs_of(mask), "x": 1, "y": 2},
                     {"size": [h, w], "counts": compressed["counts"].decode()}, [[1, 1, 5, 5]]]
    masks = decode_segmentations(segmentations, h, w)
    expected_polygon = mask_util.decode(mask_util.frPyObjects([polygon], h, w))[..., 0]
    assert masks.shape == (4, h, w) and masks.dtype == bool
    assert np.array_equal(masks[0], expected_polygon.astype(bool))
    assert np.array_equal(masks[1], mask.astype(bool)) and np.array_equal(masks[2], mask.astype(bool))
    assert not masks[3].any()
    assert decode_segmentations([], h, w).shape == (0, h, w)
