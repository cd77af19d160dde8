"""Hungarian matching of predictions to ground-truth masks (scipy's solver)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scipy.optimize import linear_sum_assignment

from mask2former.losses.point_sampling import point_sample
from mask2former.structures import Target


def pairwise_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE of every prediction ``[Q, P]`` against every target ``[M, P]`` -> ``[Q, M]``.

    BCE(x, t) = t softplus(-x) + (1 - t) softplus(x) = softplus(x) - t x, so the pairwise sum
    is one row sum and one matrix product (half the work of weighting both log-sigmoid terms)."""
    return (torch.nn.functional.softplus(logits).sum(-1, keepdim=True) - logits @ targets.t()) / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - dice of every prediction ``[Q, P]`` with every target ``[M, P]`` (+1 smoothing)."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.t()
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher:
    """Assigns each target mask of an image to one prediction, at the lowest total cost.

    Cost = ``class_weight`` x (-p(class)) + ``mask_weight`` x BCE + ``dice_weight`` x dice, with
    the mask terms on ``num_points`` uniform random points shared by predictions and targets of
    an image.
    """

    def __init__(self, *, class_weight: float, mask_weight: float, dice_weight: float, num_points: int) -> None:
        if class_weight == 0 and mask_weight == 0 and dice_weight == 0:
            raise ValueError("all matching costs are zero")
        self.class_weight, self.mask_weight, self.dice_weight = class_weight, mask_weight, dice_weight
        self.num_points = num_points

    def cost_matrix(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                    masks: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One image: ``[Q, K+1]``, ``[Q, h, w]`` vs ``labels [M]``, ``masks [M, H, W]`` -> ``[Q, M]``."""
        with torch.autocast(device_type=mask_logits.device.type, enabled=False):
            cost_class = -class_logits.float().softmax(-1)[:, labels]  # [Q, M]
            coords = torch.rand(1, self.num_points, 2, device=mask_logits.device, generator=generator)
            target_points = point_sample(masks[:, None].float(), coords.expand(masks.shape[0], -1, -1))[:, 0]
            pred_points = point_sample(mask_logits[:, None].float(), coords.expand(mask_logits.shape[0], -1, -1))[:, 0]
            cost = (self.mask_weight * pairwise_bce(pred_points, target_points) + self.class_weight * cost_class
                    + self.dice_weight * pairwise_dice(pred_points, target_points))
        return cost.clamp(-1e10, 1e10).nan_to_num(0.0)

    @torch.no_grad()
    def __call__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, targets: Sequence[Target],
                 generators: Sequence[torch.Generator] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image (prediction indices, target indices), both int64, sorted by prediction."""
        out = []
        for b, target in enumerate(targets):
            if len(target.labels) == 0:
                empty = torch.zeros(0, dtype=torch.long)
                out.append((empty, empty))
                continue
            cost = self.cost_matrix(class_logits[b], mask_logits[b], target.labels, target.masks,
                                    generators[b] if generators is not None else None)
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return out
