"""``train --skip-bad``: drop samples whose files cannot be read, but never train on nothing.

Without ``--skip-bad`` the first unreadable sample stops the run with its file and problem. With
it, unreadable samples are dropped and counted, and the run stops when they are more than a
fraction (``--max-skipped``, default 10%) of the samples drawn so far (checked from the 32nd on),
or when every sample of the run's first iteration failed: a dataset that broken would "train"
from nothing, log loss 0 and exit as if all were well.
"""

from __future__ import annotations

import torch

from mask2former import distributed as dist
from mask2former.data.datasets import DatasetSplit
from mask2former.data.loader import LoadFailure
from mask2former.errors import DatasetError, TrainingError

MIN_DRAWN = 32  # the fraction is judged once this many samples were drawn (small counts are noise)


class SkipGuard:
    """Counts dropped samples over all processes and stops the run past the bound."""

    def __init__(self, *, enabled: bool, limit: float, first_iteration: int) -> None:
        self.enabled, self.limit, self.first_iteration = enabled, limit, first_iteration
        self.drawn = self.failed = 0
        self.first: LoadFailure | None = None

    def check_split(self, split: DatasetSplit) -> None:
        """Records dropped while the split was built count against the same bound."""
        skipped, total = len(split.skipped), len(split.skipped) + len(split)
        if skipped > self.limit * total:
            path, reason = split.skipped[0]
            raise DatasetError(path, f"--skip-bad: {skipped} of {total} records of split {split.name!r} failed their "
                                     f"checks, more than the {self.limit:.0%} allowed (--max-skipped); the first: "
                                     f"{reason}")

    def update(self, iteration: int, drawn: int, failures: list[LoadFailure]) -> None:
        """Account for one iteration's samples (this process's); raises past the bound."""
        counts = dist.all_reduce_sum(torch.tensor([float(drawn), float(len(failures))], dtype=torch.float64))
        drawn_all, failed_all = int(counts[0]), int(counts[1])
        if failures and self.first is None:
            self.first = failures[0]
        if failed_all and not self.enabled:
            if failures:
                raise DatasetError(failures[0].path, f"{failures[0].problem} (train --skip-bad drops unreadable "
                                                     "samples)")
            raise TrainingError(f"iteration {iteration}: another process could not load a sample (see its error)")
        self.drawn += drawn_all
        self.failed += failed_all
        if not self.failed:
            return
        first = f"{self.first.path}: {self.first.problem}" if self.first else "see the other processes' logs"
        if iteration == self.first_iteration + 1 and failed_all == drawn_all >= 2:
            raise TrainingError(f"--skip-bad: all {drawn_all} samples of iteration {iteration} failed to load, so "
                                f"the run would train on nothing; the first: {first}")
        if self.drawn >= MIN_DRAWN and self.failed > self.limit * self.drawn:
            raise TrainingError(f"--skip-bad: {self.failed} of the {self.drawn} samples drawn so far "
                                f"({self.failed / self.drawn:.0%}) failed to load, more than the {self.limit:.0%} "
                                f"allowed (--max-skipped); the first: {first}")

    def summary(self) -> str | None:
        """The line printed at the end of a run that dropped samples."""
        if not self.failed:
            return None
        return (f"skipped {self.failed} of {self.drawn} samples that failed to load (--skip-bad); the first: "
                f"{self.first.path if self.first else '?'}")
