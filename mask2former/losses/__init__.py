"""The training loss: Hungarian matching and the point-sampled set criterion."""

from __future__ import annotations

from mask2former.losses.criterion import SetCriterion
from mask2former.losses.matcher import HungarianMatcher
from mask2former.losses.point_sampling import point_sample, uncertain_points

__all__ = ["HungarianMatcher", "SetCriterion", "point_sample", "uncertain_points"]
