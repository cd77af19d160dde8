"""The loss: near zero when perfect, query-order free, equal to the HF port's on the same points."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from mask2former.build import build_criterion
from mask2former.config import LossConfig, ModelConfig
from mask2former.losses import HungarianMatcher, SetCriterion
from mask2former.structures import Mask2FormerOutput, Prediction

K = 4


def _targets(b=2, h=32, w=40, seed=0, counts=(3, 2)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(b):
        n = counts[i]
        masks = torch.zeros(n, h, w, dtype=torch.bool)
        for j in range(n):
            y = torch.randint(0, h - 10, (1,), generator=g).item()
            x = torch.randint(0, w - 12, (1,), generator=g).item()
            masks[j, y:y + 10, x:x + 12] = True
        out.append(SimpleNamespace(labels=torch.randint(0, K, (n,), generator=g), masks=masks))
    return out


def _output(b=2, q=6, h=8, w=10, aux=2, seed=1):
    g = torch.Generator().manual_seed(seed)

    def pred():
        return Prediction(torch.randn(b, q, K + 1, generator=g), torch.randn(b, q, h, w, generator=g))

    final = pred()
    return Mask2FormerOutput(final.class_logits, final.mask_logits, aux=[pred() for _ in range(aux)])


def _criterion(num_points=500, class_weight=2.0) -> SetCriterion:
    """The paper's loss (the config's defaults) with these two settings changed."""
    loss = LossConfig(num_points=num_points, class_weight=class_weight)
    return build_criterion(ModelConfig(num_classes=K, loss=loss))


def _matcher(num_points: int) -> HungarianMatcher:
    loss = LossConfig(num_points=num_points)
    return HungarianMatcher(class_weight=loss.class_weight, mask_weight=loss.mask_weight,
                            dice_weight=loss.dice_weight, num_points=loss.num_points)


def test_perfect_prediction_has_near_zero_mask_loss():
    # masks at 8x the resolution of _targets: few sampled points fall on a border, where bilinear
    # sampling makes labels fractional; uniform points (no importance sampling) for the same reason
    targets = [SimpleNamespace(labels=t.labels, masks=t.masks.repeat_interleave(8, 1).repeat_interleave(8, 2))
               for t in _targets()]
    q = 6
    class_logits = torch.full((2, q, K + 1), -20.0)
    class_logits[..., K] = 20.0  # unmatched queries: no object
    mask_logits = torch.full((2, q, 256, 320), -20.0)
    for b, t in enumerate(targets):
        for j in range(len(t.labels)):
            class_logits[b, j] = -20.0
            class_logits[b, j, t.labels[j]] = 20.0
            mask_logits[b, j][t.masks[j]] = 20.0
    criterion = _criterion(num_points=2000)
    criterion.importance_sample_ratio = 0.0
    losses = criterion(Mask2FormerOutput(class_logits, mask_logits), targets)
    assert losses["loss_mask"] < 0.05 and losses["loss_dice"] < 0.05 and losses["loss_ce"] < 1e-3
    bad = criterion(Mask2FormerOutput(class_logits, -mask_logits), targets)
    assert bad["loss_mask"] > 10 and bad["loss_dice"] > 4


def test_query_permutation_does_not_change_the_loss():
    targets, output = _targets(), _output()
    perm = torch.randperm(6)
    permuted = Mask2FormerOutput(output.class_logits[:, perm], output.mask_logits[:, perm],
                                 aux=[Prediction(a.class_logits[:, perm], a.mask_logits[:, perm]) for a in output.aux])
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    a = _criterion()(output, targets, generators=gens)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    b = _criterion()(permuted, targets, generators=gens)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert len(a) == 9  # final + 2 aux predictions, three losses each


def test_matcher_equals_brute_force():
    matcher = _matcher(num_points=300)
    for seed in range(6):
        targets, output = _targets(b=1, seed=seed, counts=(seed % 4 + 1,)), _output(b=1, q=5, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        cost = matcher.cost_matrix(output.class_logits[0], output.mask_logits[0], targets[0].labels,
                                   targets[0].masks, gen)
        m = cost.shape[1]
        best = min(sum(cost[r, c] for r, c in zip(rows, range(m))) for rows in itertools.permutations(range(5), m))
        gen = torch.Generator().manual_seed(seed)
        (src, tgt), = matcher(output.class_logits, output.mask_logits, targets, [gen])
        assert abs(float(cost[src, tgt].sum()) - float(best)) < 1e-5


def test_empty_targets_train_towards_no_object():
    targets = _targets(counts=(2, 0))
    targets[1] = SimpleNamespace(labels=torch.zeros(0, dtype=torch.long),
                                 masks=torch.zeros(0, 32, 40, dtype=torch.bool))
    output = _output()
    output.class_logits.requires_grad_(True)
    losses = _criterion()(output, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    grad = output.class_logits.grad[1]
    assert (grad[:, K] < 0).all()  # raising the no-object logit lowers the loss for every query of image 2


def test_num_masks_normalisation_by_hand():
    """One image, one target: with logits 0 every point's BCE is log 2, so loss_mask = 5 log 2 / 1;
    two identical images give the same value (sum over 2 masks / 2 masks)."""
    target = SimpleNamespace(labels=torch.tensor([1]), masks=torch.ones(1, 16, 16, dtype=torch.bool))
    output = Mask2FormerOutput(torch.zeros(1, 1, K + 1), torch.zeros(1, 1, 4, 4))
    losses = _criterion(num_points=64)(output, [target])
    assert abs(float(losses["loss_mask"]) - 5.0 * float(torch.log(torch.tensor(2.0)))) < 1e-5
    out2 = Mask2FormerOutput(torch.zeros(2, 1, K + 1), torch.zeros(2, 1, 4, 4))
    two = _criterion(num_points=64)(out2, [target, target])
    assert abs(float(two["loss_mask"]) - float(losses["loss_mask"])) < 1e-5


def test_equals_hf_loss_on_the_same_points():
    mm = pytest.importorskip("transformers.models.mask2former.modeling_mask2former")
    from transformers import Mask2FormerConfig

    targets, output = _targets(h=32, w=40), _output(h=8, w=10, aux=3)
    hf_config = Mask2FormerConfig(num_labels=K, train_num_points=500, oversample_ratio=3.0,
                                  importance_sample_ratio=0.75, no_object_weight=0.1)
    hf_loss = mm.Mask2FormerLoss(hf_config, weight_dict={})
    # older HF versions hard-code the matcher's class cost to 1.0; use whatever this one has
    criterion = _criterion(num_points=500, class_weight=float(hf_loss.matcher.cost_class))
    torch.manual_seed(7)
    ref = hf_loss(masks_queries_logits=output.mask_logits, class_queries_logits=output.class_logits,
                  mask_labels=[t.masks.float() for t in targets], class_labels=[t.labels for t in targets],
                  auxiliary_predictions=[{"masks_queries_logits": a.mask_logits, "class_queries_logits": a.class_logits}
                                         for a in output.aux])
    torch.manual_seed(7)  # the same global RNG stream: the same matching points and mask points
    ours = criterion(output, targets)
    assert len(ours) == len(ref) == 12
    names = {"loss_cross_entropy": "loss_ce", "loss_mask": "loss_mask", "loss_dice": "loss_dice"}
    for hf_key, value in ref.items():
        base, index = (hf_key.rsplit("_", 1)[0], hf_key.rsplit("_", 1)[1]) if hf_key[-1].isdigit() else (hf_key, "")
        key = names[base] + (f"_{index}" if index else "")
        unweighted = float(ours[key]) / criterion.weights[names[base]]  # HF returns unweighted losses
        assert abs(unweighted - float(value)) < 1e-5, (hf_key, unweighted, float(value))
