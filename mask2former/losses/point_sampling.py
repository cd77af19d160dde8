"""Point sampling (PointRend): losses and matching on a few thousand points instead of full masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(inputs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``inputs [N, C, H, W]`` at ``coords [N, P, 2]`` (x, y in [0, 1],
    pixel-centre convention, zeros outside) -> ``[N, C, P]``."""
    return F.grid_sample(inputs, 2.0 * coords[:, :, None, :] - 1.0, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, :, :, 0]


def uncertain_points(logits: torch.Tensor, num_points: int, oversample_ratio: float, importance_ratio: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Points where ``logits [N, 1, H, W]`` are least certain (closest to 0) plus random ones:
    draw ``num_points * oversample_ratio`` uniform candidates, keep the ``importance_ratio``
    share with the smallest ``|logit|``, fill up with fresh uniform points. Returns ``[N, P, 2]``."""
    n = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    coords = torch.rand(n, num_candidates, 2, device=logits.device, generator=generator)
    uncertainty = -point_sample(logits, coords)[:, 0].abs()  # [N, candidates]
    num_uncertain = int(importance_ratio * num_points)
    num_random = num_points - num_uncertain
    index = uncertainty.topk(num_uncertain, dim=1, sorted=False).indices  # [N, num_uncertain]; order is free
    coords = coords.gather(1, index[:, :, None].expand(-1, -1, 2))
    if num_random > 0:
        coords = torch.cat([coords, torch.rand(n, num_random, 2, device=logits.device, generator=generator)], 1)
    return coords
