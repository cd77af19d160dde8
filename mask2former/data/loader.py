"""Training data loading that is reproducible across resumes and process counts.

Sample number ``p`` of the whole run (``p = iteration * batch_size + k``) always maps to the same
image (a fixed per-epoch permutation) and the same augmentation randomness (a generator seeded
with ``(seed, p)``). So a resumed run sees exactly the samples an uninterrupted run would, and N
processes with batch B/N see together exactly the samples one process with batch B sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mask2former.data.datasets import DatasetSplit
from mask2former.errors import DatasetError, Mask2FormerError
from mask2former.structures import Target

Transform = Callable[[np.ndarray, Target, np.random.Generator], tuple[np.ndarray, Target]]


@dataclass
class TrainSample:
    """One augmented image ``[3, H, W]`` uint8 with its target; ``position`` is its sample number."""

    image: torch.Tensor
    target: Target
    position: int


class IterationBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, per micro-batch, ``[(dataset index, sample number), ...]`` for this process.

    Iteration ``t`` covers sample numbers ``[t*B, (t+1)*B)``; micro-batch ``a`` of
    ``grad_accum`` on process ``r`` of ``world`` takes the slice ``(a*world + r) * b`` of size
    ``b = B / (world * grad_accum)``.
    """

    def __init__(self, size: int, *, batch_size: int, grad_accum: int = 1, rank: int = 0, world: int = 1,
                 seed: int = 0, start_iter: int = 0, max_iter: int | None = None, shuffle: bool = True) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        if batch_size % (world * grad_accum):
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes x "
                             f"{grad_accum} accumulation steps")
        self.size, self.batch_size, self.grad_accum = size, batch_size, grad_accum
        self.rank, self.world, self.seed = rank, world, seed
        self.start_iter, self.max_iter, self.shuffle = start_iter, max_iter, shuffle
        self.micro = batch_size // (world * grad_accum)
        self._perm: tuple[int, np.ndarray] | None = None

    def index_of(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if not self.shuffle:
            return offset
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size))
        return int(self._perm[1][offset])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        while self.max_iter is None or it < self.max_iter:
            for a in range(self.grad_accum):
                start = it * self.batch_size + (a * self.world + self.rank) * self.micro
                yield [(self.index_of(p), p) for p in range(start, start + self.micro)]
            it += 1

    def __len__(self) -> int:
        if self.max_iter is None:
            raise TypeError("infinite sampler")
        return (self.max_iter - self.start_iter) * self.grad_accum


@dataclass
class LoadFailure:
    """A sample whose files could not be read: returned by the dataset instead of raised, so the
    error crosses from a DataLoader worker as data and the main process reports it as one line
    naming the file (a raised error would arrive wrapped in the worker's traceback)."""

    index: int
    path: str
    problem: str


class TrainingSet(Dataset):
    """Loads ``split`` records and augments them; crowd regions are dropped (not trained on)
    and masks emptied by cropping are removed. A record that fails to load or augment with the
    project's own error comes back as a ``LoadFailure``; the training loop decides what to do."""

    def __init__(self, split: DatasetSplit, transform: Transform, *, seed: int = 0) -> None:
        self.split, self.transform, self.seed = split, transform, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> TrainSample | LoadFailure:
        index, position = key
        try:
            image, target = self.split.load(index)
            target = target.select(~target.iscrowd)
            image, target = self.transform(image, target, np.random.default_rng([self.seed, position]))
        except DatasetError as e:
            return LoadFailure(index, e.path, e.problem)
        except Mask2FormerError as e:
            return LoadFailure(index, str(self.split.records[index].image_path), str(e))
        target = target.select(target.masks.flatten(1).any(1)) if len(target) else target
        tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)
        return TrainSample(image=tensor, target=target, position=position)


def collate(items: list[TrainSample | LoadFailure]) -> tuple[list[TrainSample], list[LoadFailure]]:
    """A micro-batch: the samples that loaded, and the failures to report or skip."""
    return ([s for s in items if isinstance(s, TrainSample)], [f for f in items if isinstance(f, LoadFailure)])
