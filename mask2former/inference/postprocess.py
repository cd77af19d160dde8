"""Per-image post-processing, exactly as the reference implementation (not the HF port).

Mask logits go 1/4 -> padded input size -> crop to the resized image -> original size, bilinear
without corner alignment. Semantic = sum over queries of class probability x mask probability;
panoptic = confident queries painted by argmax with an overlap test and stuff merging; instance =
the top-k (query, class) pairs scored by class probability x mean mask probability.

Bilinear resizing acts on each query's mask separately, so only the queries a task can use are
resized (the confident ones for panoptic, the top-k ones for instance); the results are the same
as resizing all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mask2former.structures import InstanceResult, PanopticResult, Segment, SemanticResult


def sem_seg_postprocess(x: torch.Tensor, image_size: tuple[int, int], output_size: tuple[int, int]) -> torch.Tensor:
    """Crop ``x [C, H_pad, W_pad]`` to the resized image and resize to the original size."""
    x = x[:, : image_size[0], : image_size[1]]
    if tuple(x.shape[-2:]) == tuple(output_size):
        return x
    return F.interpolate(x[None], size=output_size, mode="bilinear", align_corners=False)[0]


def upsample_masks(mask_logits: torch.Tensor, padded_size: tuple[int, int], image_size: tuple[int, int],
                   output_size: tuple[int, int]) -> torch.Tensor:
    """``[N, H/4, W/4]`` logits -> ``[N, H_out, W_out]`` through the reference's resize chain."""
    if mask_logits.shape[0] == 0:
        return mask_logits.new_zeros((0, *output_size))
    x = F.interpolate(mask_logits[None], size=padded_size, mode="bilinear", align_corners=False)[0]
    return sem_seg_postprocess(x, image_size, output_size)


def semantic_inference(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """``[Q, K+1]``, ``[Q, H, W]`` -> per-class scores ``[K, H, W]`` (not renormalised)."""
    probs = class_logits.softmax(-1)[:, :-1]
    q, h, w = mask_logits.shape
    return (probs.t() @ mask_logits.sigmoid().view(q, h * w)).view(-1, h, w)


def panoptic_keep(class_logits: torch.Tensor, object_mask_threshold: float) -> torch.Tensor:
    """Queries that enter panoptic inference: not "no object" and confident enough."""
    scores, labels = class_logits.softmax(-1).max(-1)
    return (labels != class_logits.shape[-1] - 1) & (scores > object_mask_threshold)


def panoptic_inference(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    thing_flags: Sequence[bool],
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    keep: torch.Tensor | None = None,
) -> PanopticResult:
    """``class_logits [Q, K+1]`` and ``mask_logits [N, H, W]`` (N = Q, or only the kept queries
    when ``keep`` is given) -> a segment map and its segments.

    The reference paints kept queries one by one in query order; each query's pixels are where
    it wins the score-weighted argmax and its own probability is >= 0.5, so the paintings are
    disjoint and are computed here all at once, leaving only the per-query decisions in Python.
    """
    scores, labels = class_logits.softmax(-1).max(-1)
    if keep is None:
        keep = panoptic_keep(class_logits, object_mask_threshold)
        mask_logits = mask_logits[keep]
    cur_scores, cur_classes = scores[keep], labels[keep]
    h, w = mask_logits.shape[-2:]
    segments = torch.zeros((h, w), dtype=torch.int32, device=mask_logits.device)
    n = cur_scores.shape[0]
    if n == 0:
        return PanopticResult(segments=segments, segments_info=[])
    probs = mask_logits.sigmoid()
    ids = _first_argmax(probs, cur_scores)  # [H, W] winning kept query
    above = probs >= 0.5
    own_above = above.gather(0, ids[None])[0]  # the winner's own prob >= 0.5
    mask_area = torch.bincount(ids.flatten(), minlength=n).tolist()
    original_area = [int(above[k].sum()) for k in range(n)]  # contiguous rows: much faster than a dim-1 sum
    painted_area = torch.bincount(ids[own_above], minlength=n).tolist()

    lut = [0] * n  # segment id painted for each kept query (0 = not painted)
    infos: list[Segment] = []
    stuff_memory: dict[int, int] = {}
    next_id = 0
    for k in range(n):
        cls = int(cur_classes[k])
        isthing = bool(thing_flags[cls])
        if not (mask_area[k] > 0 and original_area[k] > 0 and painted_area[k] > 0):
            continue
        if mask_area[k] / original_area[k] < overlap_threshold:
            continue
        if not isthing:
            if cls in stuff_memory:
                lut[k] = stuff_memory[cls]
                continue
            stuff_memory[cls] = next_id + 1
        next_id += 1
        lut[k] = next_id
        infos.append(Segment(id=next_id, label=cls, isthing=isthing, score=float(cur_scores[k]), area=0))
    table = torch.tensor(lut, dtype=torch.int32, device=segments.device)
    segments = torch.where(own_above, table[ids], segments)
    if infos:
        areas = torch.bincount(segments.flatten().long(), minlength=next_id + 1).tolist()
        for seg in infos:
            seg.area = int(areas[seg.id])
    return PanopticResult(segments=segments, segments_info=infos)


def _first_argmax(probs: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``(scores[:, None, None] * probs).argmax(0)`` (first index on ties), computed one query at
    a time on contiguous maps: a reduction over the leading dimension is several times slower on
    CPU, and the ``[N, H, W]`` product is never materialised."""
    best = probs[0] * scores[0]
    ids = torch.zeros(probs.shape[1:], dtype=torch.long, device=probs.device)
    for k in range(1, probs.shape[0]):
        weighted = probs[k] * scores[k]
        better = weighted > best
        best = torch.maximum(best, weighted)
        ids.masked_fill_(better, k)
    return ids


def instance_topk(class_logits: torch.Tensor, topk: int, thing_flags: Sequence[bool] | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores, labels, query index) of the top-k (query, class) pairs; with ``thing_flags``
    (panoptic models) stuff classes are dropped after the top-k, as the reference does."""
    probs = class_logits.softmax(-1)[:, :-1]
    num_classes = probs.shape[1]
    scores, index = probs.flatten().topk(min(topk, probs.numel()), sorted=False)
    labels, queries = index % num_classes, index // num_classes
    if thing_flags is not None:
        things = torch.tensor(list(thing_flags), dtype=torch.bool, device=labels.device)[labels]
        scores, labels, queries = scores[things], labels[things], queries[things]
    return scores, labels, queries


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """XYXY boxes ``[N, 4]`` (pixel edges: x1 = last column + 1) of ``masks [N, H, W]``; zeros when empty."""
    n = masks.shape[0]
    boxes = torch.zeros((n, 4), dtype=torch.float32)
    if n == 0:
        return boxes
    rows, cols = masks.any(2), masks.any(1)
    nonempty = rows.any(1)
    h, w = masks.shape[-2:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values + 1
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).float().cpu()
    boxes[~nonempty.cpu()] = 0
    return boxes


def instance_inference(scores: torch.Tensor, labels: torch.Tensor, mask_logits: torch.Tensor,
                       queries: torch.Tensor | None = None) -> InstanceResult:
    """Scored instances from the top-k pairs and their masks' logits ``[N, H, W]`` (one per pair).

    Score = class probability x mean mask probability inside the mask (logit > 0); sorted by
    score, highest first.
    """
    masks = mask_logits > 0
    flat = masks.flatten(1).float()
    mask_scores = (mask_logits.sigmoid().flatten(1) * flat).sum(1) / (flat.sum(1) + 1e-6)
    final = scores * mask_scores
    order = final.argsort(descending=True, stable=True)
    masks = masks[order]
    return InstanceResult(masks=masks, scores=final[order], labels=labels[order], boxes=masks_to_boxes(masks),
                          queries=None if queries is None else queries[order])


def semantic_result(scores: torch.Tensor) -> SemanticResult:
    return SemanticResult(scores=scores, labels=scores.argmax(0))
