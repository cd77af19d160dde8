"""Track rules: queries inherit tracks through a Hungarian match of their embeddings; masks keep
their track while they overlap enough and have the same class."""

from __future__ import annotations

import numpy as np
import torch

from mask2former.inference.tracking import MaskTracker, QueryTracker


def test_query_tracks_follow_a_permutation_of_the_queries():
    tracker = QueryTracker()
    first = torch.randn(10, 16)
    assert tracker.update(first).tolist() == list(range(10))
    order = torch.randperm(10)
    moved = first[order] + 0.05 * torch.randn(10, 16)  # query j of the new frame is query order[j] of the old
    assert tracker.update(moved).tolist() == order.tolist()
    back = moved[torch.argsort(order)] + 0.05 * torch.randn(10, 16)
    assert tracker.update(back).tolist() == list(range(10))


def test_query_tracks_ignore_scale_and_restart_when_the_query_count_changes():
    tracker = QueryTracker()
    base = torch.randn(6, 8)
    tracker.update(base)
    assert tracker.update(3.0 * base).tolist() == list(range(6))  # cosine similarity: length does not matter
    assert tracker.update(torch.randn(4, 8)).tolist() == list(range(4))


def _box(h, w, y, x, size):
    mask = np.zeros((h, w), dtype=bool)
    mask[y:y + size, x:x + size] = True
    return mask


def test_mask_tracks_keep_overlapping_masks_and_open_new_ones():
    tracker = MaskTracker(min_iou=0.5)
    frame0 = np.stack([_box(40, 60, 5, 5, 10), _box(40, 60, 20, 30, 10)])
    assert tracker.update(frame0, np.array([0, 1])).tolist() == [0, 1]
    # both moved by one pixel and listed in the other order; a third object appears
    frame1 = np.stack([_box(40, 60, 20, 31, 10), _box(40, 60, 5, 6, 10), _box(40, 60, 30, 0, 8)])
    assert tracker.update(frame1, np.array([1, 0, 0])).tolist() == [1, 0, 2]
    # same place, another class: a new track; a jump far away: a new track
    frame2 = np.stack([_box(40, 60, 20, 31, 10), _box(40, 60, 25, 45, 10)])
    assert tracker.update(frame2, np.array([0, 0])).tolist() == [3, 4]
    assert tracker.update(np.zeros((0, 40, 60), bool), np.array([], dtype=np.int64)).tolist() == []
