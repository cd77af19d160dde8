"""``predict_and_score``: the one loop that predicts the images of a split and scores them.

Training-time evaluation, ``mask2former eval`` and ``compare`` (Mask2Former and the baselines)
all go through it, so they score the same images with the same image ids, the same ground truth
(the instances JSON and semantic label PNGs a split names beside its panoptic annotations) and the
same rules (LVIS AP on an LVIS split, Cityscapes' rules on Cityscapes), and the numbers of one are
the numbers of the others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former import distributed as dist
from mask2former.data.datasets import DatasetError, DatasetSplit, Record, read_label_map
from mask2former.data.ground_truth import INSTANCES, SEMANTIC, InstancesGroundTruth, SemanticGroundTruth
from mask2former.evaluation.tasks import TaskEvaluators
from mask2former.inference.predictor import Predictor
from mask2former.inference.writers import ResultWriter
from mask2former.progress import track
from mask2former.structures import ImageResult, Target

PredictStream = Callable[[Iterable[np.ndarray]], Iterable[ImageResult]]
"""Images in, one result per image out in the same order (a model may batch inside)."""


@dataclass
class ScoredSplit:
    """Metrics and per-class metrics in percent (empty on a helper process of a sharded run), and
    the first predictions, kept for pictures."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    examples: list[ImageResult] = field(default_factory=list)


def model_predictions(predictor: Predictor, tasks: Sequence[str], *, tta: bool = False) -> PredictStream:
    """How a Mask2Former predicts a split: batched at the test size for every task; with ``tta``,
    semantic from the multi-scale + flip average instead (the reference's semantic TTA)."""
    tasks = tuple(tasks)
    if not (tta and "semantic" in tasks):
        return lambda images: predictor.iter_predict(images, tasks)
    single_scale = tuple(t for t in tasks if t != "semantic")

    def predict(images: Iterable[np.ndarray]) -> Iterator[ImageResult]:
        if not single_scale:
            yield from map(predictor.semantic_tta, images)
            return
        waiting: deque[np.ndarray] = deque()  # the predictor reads ahead to fill its batches
        for result in predictor.iter_predict(_remembered(images, waiting), single_scale):
            result.semantic = predictor.semantic_tta(waiting.popleft()).semantic
            yield result

    return predict


def per_image(predict: Callable[[np.ndarray], ImageResult]) -> PredictStream:
    """A stream from a one-image prediction function (the baselines)."""
    return lambda images: map(predict, images)


@torch.inference_mode()
def predict_and_score(split: DatasetSplit, predict: PredictStream, tasks: Sequence[str], *,
                      writer: ResultWriter | None = None, shard: bool = False, keep: int = 0,
                      progress: str | None = None) -> ScoredSplit:
    """Predict every image of ``split`` and score ``tasks`` under the split format's rules.

    ``writer`` also writes each prediction (named after its image, with the dataset's image id).
    ``shard`` shares the images out over the processes of a torchrun group and gathers the
    scores (and the writer's entries) on the main process; every process must call it then.
    ``keep`` predictions are returned for pictures; ``progress`` is a progress bar's label."""
    evaluators = TaskEvaluators(split.categories, tasks, split.format, lvis_annotations=split.annotation_file)
    indices = list(range(dist.rank(), len(split), dist.world_size()) if shard else range(len(split)))
    examples: list[ImageResult] = []
    for index, target, result in _progress(_predicted(split, indices, predict), len(indices), progress):
        record = split.records[index]
        evaluators.update(record.image_id, target, result, instance_ids=_instance_ids(record, evaluators),
                          instance_annotations=_instance_annotations(record, evaluators, target),
                          semantic_labels=_semantic_labels(record, evaluators, target))
        if writer is not None:
            result.file_name = record.image_path.name
            writer.add(result, Path(record.image_path).stem, image_id=record.image_id)
        if len(examples) < keep:
            examples.append(result)
    if shard and dist.world_size() > 1:
        _gather_on_main(evaluators, writer)
        if not dist.is_main():
            return ScoredSplit({}, {}, examples)
    return ScoredSplit(*evaluators.compute_with_per_class(), examples)


def _remembered(images: Iterable[np.ndarray], into: deque[np.ndarray]) -> Iterator[np.ndarray]:
    for image in images:
        into.append(image)
        yield image


def _predicted(split: DatasetSplit, indices: Sequence[int], predict: PredictStream
               ) -> Iterator[tuple[int, Target, ImageResult]]:
    """``(index, target, result)`` per image; each target waits only while its image is predicted."""
    targets: deque[Target] = deque()

    def images() -> Iterator[np.ndarray]:
        for i in indices:
            image, target = split.load(i)
            targets.append(target)
            yield image

    for index, result in zip(indices, predict(images())):
        yield index, targets.popleft(), result


def _progress(items: Iterator[Any], total: int, label: str | None) -> Iterator[Any]:
    if label is None or not dist.is_main():
        return items
    return track(items, total=total, desc=label, unit="img")


def _instance_ids(record: Record, evaluators: TaskEvaluators) -> np.ndarray | None:
    """The raw Cityscapes instanceIds map, where instance AP is scored by cityscapesscripts' rules."""
    path = record.extra.get("instance_path")
    return read_label_map(path) if evaluators.needs_instance_ids and path is not None else None


def _instance_annotations(record: Record, evaluators: TaskEvaluators, target: Target) -> list[dict] | None:
    """The image's annotations of the instances JSON its mask AP is scored against, if any."""
    ground_truth: InstancesGroundTruth | None = record.extra.get(INSTANCES)
    if ground_truth is None or evaluators.instance is None:
        return None
    problem = ground_truth.size_problem(*target.ignore.shape)
    if problem is not None:
        raise DatasetError(ground_truth.source, f"image {record.image_path.name}: the file {problem}")
    return ground_truth.annotations


def _semantic_labels(record: Record, evaluators: TaskEvaluators, target: Target) -> np.ndarray | None:
    """The image's semantic label map its mIoU is scored against, if the split names one."""
    ground_truth: SemanticGroundTruth | None = record.extra.get(SEMANTIC)
    if ground_truth is None or evaluators.semantic is None:
        return None
    return ground_truth.read(*target.ignore.shape)


def _gather_on_main(evaluators: TaskEvaluators, writer: ResultWriter | None) -> None:
    """Add every other process's scores and written entries to the main process's."""
    gathered = dist.gather_objects((evaluators, writer))
    if not dist.is_main():
        return
    for other_evaluators, other_writer in gathered[1:]:
        evaluators.merge(other_evaluators)
        if writer is not None:
            writer.merge(other_writer)
