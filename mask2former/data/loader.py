"""Training data loading that is reproducible across resumes and process counts, and that feeds
each dataset format the way the official mapper for it does.

Sample number ``p`` of the whole run (``p = iteration * batch_size + k``) always maps to the same
image (a fixed per-epoch permutation) and the same augmentation randomness (a generator seeded
with ``(seed, p)``). So a resumed run sees exactly the samples an uninterrupted run would, and N
processes with batch B/N see together exactly the samples one process with batch B sees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mask2former.config import CategoryInfo, InputConfig
from mask2former.data.datasets import DatasetSplit
from mask2former.data.transforms import TrainTransform, build_train_transform
from mask2former.errors import DatasetError, Mask2FormerError
from mask2former.structures import Target

logger = logging.getLogger(__name__)

INSTANCE_FORMATS = ("coco_instances", "lvis")  # per-object JSON annotations: detectron2's "annotations"


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
    """Loads ``split`` records and augments them; crowd regions are dropped (not trained on, as
    in every official mapper), COCO polygons go through the augmentation as polygons, and what
    happens to segments the crop empties is the transform's rule. A record that fails to load or
    augment with the project's own error comes back as a ``LoadFailure``; the training loop
    decides what to do."""

    def __init__(self, split: DatasetSplit, transform: TrainTransform, *, seed: int = 0) -> None:
        self.split, self.transform, self.seed = split, transform, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> TrainSample | LoadFailure:
        index, position = key
        try:
            image, target, polygons = self.split.load_with_polygons(index)
            if target.iscrowd.any():
                polygons = [p for p, crowd in zip(polygons, target.iscrowd.tolist()) if not crowd]
                target = target.select(~target.iscrowd)
            image, target = self.transform(image, target, np.random.default_rng([self.seed, position]),
                                           polygons=polygons)
        except DatasetError as e:
            return LoadFailure(index, e.path, e.problem)
        except Mask2FormerError as e:
            return LoadFailure(index, str(self.split.records[index].image_path), str(e))
        tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)
        return TrainSample(image=tensor, target=target, position=position)


def collate(items: list[TrainSample | LoadFailure]) -> tuple[list[TrainSample], list[LoadFailure]]:
    """A micro-batch: the samples that loaded, and the failures to report or skip."""
    return ([s for s in items if isinstance(s, TrainSample)], [f for f in items if isinstance(f, LoadFailure)])


@dataclass(frozen=True)
class MapperRules:
    """What the official dataset mapper of a format does besides the augmentation recipe.

    ``keep_empty``: segments a crop empties stay, as empty masks that count in ``num_masks`` and
    are matched (MaskFormerPanoptic/InstanceDatasetMapper, COCOPanopticNewBaselineDatasetMapper
    build masks for every non-crowd segment after the transform) or are dropped
    (MaskFormerSemanticDatasetMapper builds masks only for the classes left in the crop;
    COCOInstanceNewBaselineDatasetMapper calls ``utils.filter_empty_instances``).
    ``nearest``: how masks are resized (see ``transforms.NEAREST_RULES``): the semantic mapper
    reads its label map as float64, the others resize uint8 maps (panoptic PNGs, decoded RLE).
    ``filter_images``: detectron2's ``DATALOADER.FILTER_EMPTY_ANNOTATIONS`` applies, which
    ``get_detection_dataset_dicts`` runs only on datasets with instance ``annotations``.
    """

    mapper: str
    keep_empty: bool
    nearest: str
    filter_images: bool


def mapper_rules(data_format: str, augmentation: str, categories: Sequence[CategoryInfo]) -> MapperRules:
    """The official mapper a format trains with: COCO-style instances -> COCO instance LSJ (with
    "lsj") or MaskFormer instance; label maps without thing classes -> MaskFormer semantic;
    panoptic data (COCO panoptic, Cityscapes, folders with things) -> COCO panoptic LSJ or
    MaskFormer panoptic, the mapper of the one official model that predicts all three tasks."""
    instance = data_format in INSTANCE_FORMATS
    if data_format == "semantic" or (not instance and not any(c.isthing for c in categories)):
        return MapperRules("mask_former_semantic", keep_empty=False, nearest="torch", filter_images=False)
    if instance and augmentation == "lsj":
        return MapperRules("coco_instance_lsj", keep_empty=False, nearest="pillow", filter_images=True)
    if instance:
        return MapperRules("mask_former_instance", keep_empty=True, nearest="pillow", filter_images=True)
    return MapperRules("coco_panoptic_lsj" if augmentation == "lsj" else "mask_former_panoptic", keep_empty=True,
                       nearest="pillow", filter_images=False)


def drop_unannotated(split: DatasetSplit) -> DatasetSplit:
    """The split without images that have no annotation or only crowd ones (detectron2's
    ``filter_images_with_only_crowd_annotations``: an image stays if some annotation has
    ``iscrowd == 0``); annotations without a usable segmentation were dropped when it was read."""
    kept = [r for r in split.records if any(not a.get("iscrowd", 0) for a in r.annotations)]
    dropped = len(split.records) - len(kept)
    if split.records and not kept:
        raise DatasetError(split.records[0].image_path, f"none of the {len(split.records)} images of split "
                                                        f"{split.name!r} has a non-crowd annotation, so there is "
                                                        "nothing to train on (input.filter_empty=false trains on "
                                                        "them as background)")
    if dropped:
        logger.info("%s: dropped %d of %d images with no non-crowd annotation (input.filter_empty, as detectron2's "
                    "FILTER_EMPTY_ANNOTATIONS); %d left", split.name or "train", dropped, len(split.records),
                    len(kept))
    return replace(split, records=kept) if dropped else split


def build_training_set(split: DatasetSplit, inp: InputConfig, *, seed: int) -> TrainingSet:
    """The split as the official mapper of its format feeds it to training: images without a
    usable annotation dropped (``inp.filter_empty``, instance formats), the augmentation of
    ``inp``, masks resized and emptied segments kept or dropped as that mapper does."""
    rules = mapper_rules(split.format, inp.augmentation, split.categories)
    if inp.filter_empty and rules.filter_images:
        split = drop_unannotated(split)
    transform = build_train_transform(inp.augmentation, crop_size=tuple(inp.crop_size), base_size=inp.base_size,
                                      min_scale=inp.min_scale, max_scale=inp.max_scale,
                                      cat_max_ratio=inp.cat_max_ratio, color=inp.color_jitter, flip=inp.flip,
                                      nearest=rules.nearest, keep_empty=rules.keep_empty)
    logger.debug("training data of format %r follows the official %s mapper", split.format, rules.mapper)
    return TrainingSet(split, transform, seed=seed)
