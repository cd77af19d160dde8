"""Instance identities across video frames, without any video training.

``QueryTracker`` is the MinVIS rule: a Mask2Former's object queries already separate instances,
so the queries of frame t are matched one to one to those of frame t-1 by the cosine similarity
of their final embeddings (Hungarian assignment), and each query inherits the track of the query
it matched. An instance's track is its query's track. ``MaskTracker`` is the fallback for models
whose graph does not give the embeddings (exported files): instances are matched to the previous
frame's by mask IoU (Hungarian, at least ``min_iou``, same class), unmatched ones start new tracks.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

QUERY_RULE = "query-embedding matching between consecutive frames (MinVIS: Hungarian on cosine similarity)"
MASK_RULE = "mask IoU matching between consecutive frames (Hungarian, IoU >= {min_iou}, same class)"


class QueryTracker:
    """Track id per query, carried from frame to frame by matching query embeddings."""

    rule = QUERY_RULE

    def __init__(self) -> None:
        self._previous: torch.Tensor | None = None  # [Q, C], unit length
        self._tracks: np.ndarray | None = None  # [Q] track id of each query slot

    def update(self, embeddings: torch.Tensor) -> np.ndarray:
        """``embeddings [Q, C]`` of one frame -> the track id of each of its queries."""
        current = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=-1)
        if self._previous is None or self._tracks is None or self._previous.shape != current.shape:
            tracks = np.arange(current.shape[0])
        else:
            similarity = (current @ self._previous.T).numpy()  # [Q now, Q before]
            rows, cols = linear_sum_assignment(similarity, maximize=True)
            tracks = np.empty(current.shape[0], dtype=np.int64)
            tracks[rows] = self._tracks[cols]
        self._previous, self._tracks = current, tracks
        return tracks


class MaskTracker:
    """Track ids of one frame's instances from their masks' overlap with the previous frame's."""

    def __init__(self, *, min_iou: float = 0.5) -> None:
        self.min_iou = min_iou
        self.rule = MASK_RULE.format(min_iou=min_iou)
        self._masks: np.ndarray | None = None  # [N, H*W] bool of the previous frame
        self._labels: np.ndarray | None = None
        self._tracks: np.ndarray | None = None
        self._next = 0

    def update(self, masks: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``masks [N, H, W]`` bool and ``labels [N]`` -> a track id per instance."""
        flat = masks.reshape(masks.shape[0], int(np.prod(masks.shape[1:])))
        tracks = np.full(flat.shape[0], -1, dtype=np.int64)
        if self._masks is not None and self._labels is not None and self._tracks is not None and len(flat) \
                and len(self._masks) and self._masks.shape[1] == flat.shape[1]:
            a, b = flat.astype(np.float32), self._masks.astype(np.float32)
            inter = a @ b.T
            union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            iou[labels[:, None] != self._labels[None, :]] = 0.0
            rows, cols = linear_sum_assignment(iou, maximize=True)
            good = iou[rows, cols] >= self.min_iou
            tracks[rows[good]] = self._tracks[cols[good]]
        for i in np.nonzero(tracks < 0)[0]:
            tracks[i] = self._next
            self._next += 1
        self._next = max(self._next, int(tracks.max(initial=-1)) + 1)
        self._masks, self._labels, self._tracks = flat, labels.copy(), tracks
        return tracks
