"""Post-processing equals a literal transcription of the reference algorithms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mask2former.inference import postprocess as pp


def reference_panoptic(mask_cls, mask_pred, thing_flags, object_mask_threshold=0.8, overlap_threshold=0.8):
    """The reference's loop, statement by statement (slow, obviously right)."""
    num_classes = mask_cls.shape[-1] - 1
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    mask_pred = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], mask_pred[keep]
    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks
    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.zeros((h, w), dtype=torch.int32)
    segments_info = []
    current_segment_id = 0
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info
    cur_mask_ids = cur_prob_masks.argmax(0)
    stuff_memory_list = {}
    for k in range(cur_classes.shape[0]):
        pred_class = cur_classes[k].item()
        isthing = thing_flags[pred_class]
        mask_area = (cur_mask_ids == k).sum().item()
        original_area = (cur_masks[k] >= 0.5).sum().item()
        mask = (cur_mask_ids == k) & (cur_masks[k] >= 0.5)
        if mask_area > 0 and original_area > 0 and mask.sum().item() > 0:
            if mask_area / original_area < overlap_threshold:
                continue
            if not isthing:
                if int(pred_class) in stuff_memory_list:
                    panoptic_seg[mask] = stuff_memory_list[int(pred_class)]
                    continue
                stuff_memory_list[int(pred_class)] = current_segment_id + 1
            current_segment_id += 1
            panoptic_seg[mask] = current_segment_id
            segments_info.append({"id": current_segment_id, "isthing": bool(isthing), "category_id": int(pred_class)})
    return panoptic_seg, segments_info


def _outputs(q=30, k=6, h=40, w=50, seed=0, confident=20):
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, k + 1, generator=g)
    idx = torch.randperm(q, generator=g)[:confident]
    cls[idx, torch.randint(0, k, (confident,), generator=g)] += 6.0  # confident queries, several per class
    coarse = torch.randn(q, h // 5, w // 5, generator=g) * 3
    masks = F.interpolate(coarse[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return cls, masks


def test_panoptic_equals_reference_loop():
    thing_flags = [True, True, True, False, False, False]
    for seed in range(8):
        cls, masks = _outputs(seed=seed)
        for overlap in (0.8, 0.3):
            ref_seg, ref_info = reference_panoptic(cls, masks, thing_flags, 0.8, overlap)
            ours = pp.panoptic_inference(cls, masks, thing_flags, 0.8, overlap)
            assert torch.equal(ours.segments, ref_seg), seed
            assert [(s.id, s.isthing, s.label) for s in ours.segments_info] == \
                [(r["id"], r["isthing"], r["category_id"]) for r in ref_info]
            for s in ours.segments_info:
                assert s.area == int((ref_seg == s.id).sum())


def test_panoptic_no_confident_query_gives_void():
    cls, masks = _outputs(confident=0)
    cls[:, -1] = 10  # everything "no object"
    result = pp.panoptic_inference(cls, masks, [True] * 6)
    assert result.segments_info == [] and int(result.segments.abs().sum()) == 0


def test_semantic_is_probability_weighted_sum():
    cls, masks = _outputs()
    scores = pp.semantic_inference(cls, masks)
    expected = torch.einsum("qc,qhw->chw", cls.softmax(-1)[:, :-1], masks.sigmoid())
    torch.testing.assert_close(scores, expected)


def test_instance_topk_scores_and_panoptic_thing_filter():
    cls, masks = _outputs(q=10, k=4, confident=6)
    scores, labels, queries = pp.instance_topk(cls, topk=15, thing_flags=None)
    probs = cls.softmax(-1)[:, :-1]
    top = probs.flatten().topk(15).values
    torch.testing.assert_close(scores.sort(descending=True).values, top)
    torch.testing.assert_close(scores, probs[queries, labels])
    _, labels_things, _ = pp.instance_topk(cls, topk=15, thing_flags=[True, False, True, False])
    assert set(labels_things.tolist()) <= {0, 2}
    result = pp.instance_inference(scores, labels, masks[queries])
    m = masks[queries]
    binary = (m > 0).float()
    mask_score = (m.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    torch.testing.assert_close(result.scores, (scores * mask_score).sort(descending=True).values)


def test_masks_to_boxes_edges():
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:7] = True
    masks[1, 9, 11] = True
    boxes = pp.masks_to_boxes(masks)
    assert boxes.tolist() == [[3, 2, 7, 5], [11, 9, 12, 10], [0, 0, 0, 0]]


def test_sem_seg_postprocess_crops_then_resizes():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 8, 8)
    out = pp.sem_seg_postprocess(x, (6, 5), (12, 10))
    expected = F.interpolate(x[None, :, :6, :5], size=(12, 10), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, expected)
