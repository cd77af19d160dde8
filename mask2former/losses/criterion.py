"""The set-prediction loss: Hungarian matching, then cross-entropy on classes (no-object weighted)
and BCE + dice on point-sampled masks, for the final and every auxiliary prediction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mask2former import distributed as dist
from mask2former.losses.matcher import HungarianMatcher
from mask2former.losses.point_sampling import point_sample, uncertain_points
from mask2former.structures import Mask2FormerOutput, Prediction, Target


class SetCriterion(nn.Module):
    """The training loss of a model output against its targets, as named weighted terms.

    Terms: ``loss_ce``, ``loss_mask``, ``loss_dice`` (final prediction) and ``loss_ce_{i}`` ...
    (auxiliary prediction i, when ``deep_supervision``); the training loss is their sum.
    ``no_object_weight`` weights the class loss of unmatched queries; each mask loss is taken on
    ``num_points`` points, ``importance_sample_ratio`` of them the most uncertain of
    ``num_points * oversample_ratio`` candidates.

    Normalisation: mask losses are divided by the number of target masks averaged over processes
    (as the reference); the class loss by the class-weight total averaged over processes, which in
    one process is exactly ``F.cross_entropy``'s weighted mean and makes N processes with batch B/N
    give the gradients of one process with batch B.

    Random points come from ``generators`` (one per image) when given, so that an image's points do
    not depend on which process or batch it is in; otherwise from the global RNG in the reference's
    order (per image for matching, once per batch for the mask losses).
    """

    empty_weight: torch.Tensor

    def __init__(self, *, num_classes: int, matcher: HungarianMatcher, class_weight: float, mask_weight: float,
                 dice_weight: float, no_object_weight: float, num_points: int, oversample_ratio: float,
                 importance_sample_ratio: float, deep_supervision: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = no_object_weight
        self.register_buffer("empty_weight", empty_weight)

    def loss_labels(self, class_logits: torch.Tensor, targets: Sequence[Target],
                    indices: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        b, q, _ = class_logits.shape
        target_classes = torch.full((b, q), self.num_classes, dtype=torch.long, device=class_logits.device)
        for i, (src, tgt) in enumerate(indices):
            target_classes[i, src.to(class_logits.device)] = targets[i].labels[tgt.to(targets[i].labels.device)].to(
                class_logits.device)
        losses = F.cross_entropy(class_logits.float().transpose(1, 2), target_classes, reduction="none")
        weights = self.empty_weight[target_classes]  # [B, Q]
        normaliser = dist.all_reduce_mean(weights.sum().detach())
        return (losses * weights).sum() / normaliser

    def _points(self, pred: torch.Tensor, counts: list[int],
                generators: Sequence[torch.Generator] | None) -> torch.Tensor:
        """Importance-sampled points for the matched predictions ``pred [N, 1, h, w]``."""
        args = (self.num_points, self.oversample_ratio, self.importance_sample_ratio)
        if generators is None:
            return uncertain_points(pred, *args)
        chunks = [uncertain_points(p, *args, generator=g) for p, g in zip(pred.split(counts), generators) if len(p)]
        return torch.cat(chunks) if chunks else pred.new_zeros((0, self.num_points, 2))

    def loss_masks(self, mask_logits: torch.Tensor, targets: Sequence[Target],
                   indices: list[tuple[torch.Tensor, torch.Tensor]], num_masks: torch.Tensor,
                   generators: Sequence[torch.Generator] | None) -> tuple[torch.Tensor, torch.Tensor]:
        pred = torch.cat([mask_logits[i, src.to(mask_logits.device)] for i, (src, _) in enumerate(indices)])
        if pred.shape[0] == 0:
            zero = mask_logits.sum() * 0.0  # keeps the graph connected for DDP
            return zero, zero
        gt = torch.cat([t.masks[tgt.to(t.masks.device)] for t, (_, tgt) in zip(targets, indices)]).to(pred.device)
        counts = [len(src) for src, _ in indices]
        with torch.no_grad():
            coords = self._points(pred[:, None].float(), counts, generators)
            labels = point_sample(gt[:, None].float(), coords)[:, 0]  # [N, P], fractional at borders
        logits = point_sample(pred[:, None].float(), coords)[:, 0]
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1).sum() / num_masks
        probs = logits.sigmoid()
        dice = 1 - (2 * (probs * labels).sum(-1) + 1) / (probs.sum(-1) + labels.sum(-1) + 1)
        return bce, dice.sum() / num_masks

    def single(self, prediction: Prediction, targets: Sequence[Target], num_masks: torch.Tensor,
               generators: Sequence[torch.Generator] | None) -> dict[str, torch.Tensor]:
        indices = self.matcher(prediction.class_logits, prediction.mask_logits, targets, generators)
        if generators is not None:  # points follow the targets, whatever the query order
            indices = [(src[tgt.argsort()], tgt.sort().values) for src, tgt in indices]
        mask, dice = self.loss_masks(prediction.mask_logits, targets, indices, num_masks, generators)
        return {"loss_ce": self.loss_labels(prediction.class_logits, targets, indices),
                "loss_mask": mask, "loss_dice": dice}

    def forward(self, output: Mask2FormerOutput, targets: Sequence[Target],
                generators: Sequence[torch.Generator] | None = None) -> dict[str, torch.Tensor]:
        """``targets``: per image, objects with ``labels [M]`` and ``masks [M, H, W]`` at the padded
        input size. Returns the weighted losses."""
        with torch.autocast(device_type=output.mask_logits.device.type, enabled=False):
            total = sum(len(t.labels) for t in targets)
            num_masks = dist.all_reduce_mean(torch.tensor(float(total), device=output.mask_logits.device))
            num_masks = num_masks.clamp(min=1.0)
            predictions = [("", output)] + ([(f"_{i}", a) for i, a in enumerate(output.aux)]
                                            if self.deep_supervision else [])
            losses = {}
            for suffix, prediction in predictions:
                for name, value in self.single(prediction, targets, num_masks, generators).items():
                    losses[name + suffix] = value * self.weights[name]
        return losses

