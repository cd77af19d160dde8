"""Predictor: images in, semantic / instance / panoptic results at each image's original size out."""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mask2former.config import InferenceConfig, ModelConfig
from mask2former.data import collate
from mask2former.data.image import ImageError, read_image, to_array
from mask2former.data.intensity import OnModelScale, as_image_array, match_channels, to_model_input
from mask2former.data.transforms import inference_size, resize_image, shortest_edge_size
from mask2former.device import resolve_device
from mask2former.errors import ConfigError, Mask2FormerError, brief
from mask2former.exported_model import ExportedModel, RunnableModel
from mask2former.formats import TASKS
from mask2former.inference import postprocess as pp
from mask2former.structures import ImageResult

ImageInput = str | os.PathLike | Image.Image | np.ndarray | OnModelScale
OnError = Callable[[int, Mask2FormerError], None]


@dataclass
class _Prepared:
    index: int
    tensor: torch.Tensor  # [C, h, w] on the model's scale (uint8 or float32), at the test size, not yet normalised
    original_size: tuple[int, int]
    file_name: str


def parse_tasks(task: str | Sequence[str]) -> tuple[str, ...]:
    """"all", one task or several -> a tuple of task names; unknown names raise ValueError."""
    names = TASKS if task == "all" else ((task,) if isinstance(task, str) else tuple(task))
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)} or 'all'")
    return names


def check_batch_size(batch_size: int) -> int:
    """A batch size of at least 1; anything else is a mistake to report, not to round up."""
    try:
        value = operator.index(batch_size)
    except TypeError:
        raise ConfigError(f"batch size: expected a whole number >= 1, got {brief(batch_size)}") from None
    if value < 1:
        raise ConfigError(f"batch size: expected a whole number >= 1, got {value}")
    return value


# The official TEST.AUG settings of semantic test-time augmentation: (MIN_SIZES, MAX_SIZE) by the
# zoo setting and its test size. The COCO and Mapillary configs leave them at detectron2's
# defaults; every ADE20K config writes TTA_FACTORS x its test short side, capped at 1.75 x its
# test long side (512 / 2048: 256..896 and 3584; 640 / 2560: 320..1120 and 4480), the rule any
# other model follows here.
_DETECTRON2_DEFAULT = ((400, 500, 600, 700, 800, 900, 1000, 1100, 1200), 4000)
_CITYSCAPES = ((512, 768, 1024, 1280, 1536, 1792), 4096)
OFFICIAL_TTA: dict[tuple[str, int, int], tuple[tuple[int, ...], int]] = {
    ("coco_panoptic", 800, 1333): _DETECTRON2_DEFAULT, ("coco_instance", 800, 1333): _DETECTRON2_DEFAULT,
    ("mapillary_semantic", 2048, 2048): _DETECTRON2_DEFAULT, ("mapillary_panoptic", 2048, 2048): _DETECTRON2_DEFAULT,
    ("cityscapes_semantic", 1024, 2048): _CITYSCAPES, ("cityscapes_panoptic", 1024, 2048): _CITYSCAPES,
    ("cityscapes_instance", 1024, 2048): _CITYSCAPES,
}
TTA_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def tta_views(config: ModelConfig) -> tuple[tuple[int, ...], int]:
    """``(short sides, long-side cap)`` of a model's semantic test-time views: its zoo setting's
    official ``TEST.AUG.MIN_SIZES`` / ``MAX_SIZE``, else the ADE20K configs' rule on its test size."""
    inference = config.inference
    official = OFFICIAL_TTA.get((config.dataset, inference.min_size, inference.max_size))
    if official is not None:
        return official
    return (tuple(int(f * inference.min_size + 0.5) for f in TTA_FACTORS),
            int(TTA_FACTORS[-1] * inference.max_size + 0.5))


def tta_view_sizes(height: int, width: int, min_sizes: Sequence[int], max_size: int) -> list[tuple[int, int]]:
    """The ``(h, w)`` of each test-time view of a ``height x width`` test-resized image (the
    views resize that image, not the original)."""
    return [shortest_edge_size(height, width, int(s), int(max_size)) for s in min_sizes]


def _positive(size: tuple[int, int], name: str) -> tuple[int, int]:
    if min(size) < 1:
        raise ImageError(f"{name}: a test-time view would be {size[0]}x{size[1]} px")
    return size


class Predictor:
    """Runs a Mask2Former the way the reference evaluates it.

    Each image is resized (shortest edge to ``min_size``, longest at most ``max_size``),
    normalised and zero-padded to a multiple of 32. Images are batched only with images of the
    same padded size, so that no image ever sees another's padding: a batch gives exactly the
    results of its images run one by one.
    """

    def __init__(self, model: RunnableModel, *, device: str | torch.device = "cpu", batch_size: int = 1,
                 inference: InferenceConfig | None = None, config: ModelConfig | None = None) -> None:
        self.config = config or model.config
        self.inference = inference or self.config.inference
        self.batch_size = check_batch_size(batch_size)
        exported = isinstance(model, ExportedModel) and device == "auto"
        self.device = resolve_device("cpu" if exported else device)  # exported graphs run on the CPU
        self.model = model.to(self.device).eval()
        self.pixels = self.config.pixels
        self.thing_flags = self.config.thing_flags

    # ------------------------------------------------------------------ input preparation
    def _load(self, image: ImageInput, index: int) -> tuple[np.ndarray, str]:
        """``[H, W, channels]`` on the model's scale, and the file name ("" for arrays): files, PIL
        images and arrays are decoded as ``read_image`` decodes them, then mapped by the model's
        intensity rule (``to_model_input``: 8-bit unchanged, 1 channel replicated for RGB)."""
        name = ""
        if isinstance(image, OnModelScale):
            pixels = as_image_array(image.pixels, f"image {index}")
            return match_channels(pixels, self.pixels.channels, f"image {index}"), ""
        if isinstance(image, str | os.PathLike):
            raw, name = read_image(image), str(image)
        elif isinstance(image, Image.Image):
            raw = to_array(image, f"image {index}")
        elif isinstance(image, np.ndarray):
            raw = image
        else:
            raise ImageError(f"image {index}: expected a path, PIL image or numpy array, got {type(image).__name__}")
        return to_model_input(raw, self.pixels, name or f"image {index}"), name

    def test_size(self, height: int, width: int, name: str = "image") -> tuple[int, int]:
        """The size an image of ``height x width`` is resized to (``ImageError`` if too thin)."""
        return inference_size(height, width, self.inference.min_size, self.inference.max_size, name)

    def prepare(self, image: ImageInput, index: int = 0) -> _Prepared:
        pixels, name = self._load(image, index)
        h, w = pixels.shape[:2]
        size = self.test_size(h, w, name or f"image {index}")
        tensor = torch.from_numpy(np.require(resize_image(pixels, size), requirements=["C", "W"])).permute(2, 0, 1)
        return _Prepared(index, tensor.to(self.device), (h, w), name)

    def model_input(self, image: ImageInput) -> torch.Tensor:
        """``pixel_values [1, C, H, W]`` of one image, exactly as predicting feeds it to the model
        (calibration of quantized exports, benchmarks)."""
        return self._pixel_values([self.prepare(image).tensor])

    def _padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return collate.padded_size(size, self.pixels.size_divisibility)

    def batch_key(self, item: _Prepared) -> tuple[int, int]:
        """The padded size of a prepared image: ``predict_batch`` takes only items that share it."""
        return self._padded_size((item.tensor.shape[-2], item.tensor.shape[-1]))

    def _pixel_values(self, images: list[torch.Tensor]) -> torch.Tensor:
        pixels = self.pixels
        return collate.pad_and_normalize(images, pixels.mean, pixels.std, pixels.size_divisibility,
                                         device=self.device)[0]

    # ------------------------------------------------------------------ running
    @torch.inference_mode()
    def predict_batch(self, items: list[_Prepared], tasks: tuple[str, ...]) -> list[ImageResult]:
        """Items of one padded size -> results, in the same order."""
        batch = self._pixel_values([item.tensor for item in items])
        padded = (batch.shape[-2], batch.shape[-1])
        output = self.model(batch)
        return [
            self.postprocess(output.class_logits[i], output.mask_logits[i], padded,
                             (item.tensor.shape[-2], item.tensor.shape[-1]), item.original_size, tasks, item.file_name)
            for i, item in enumerate(items)
        ]

    def postprocess(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, padded_size: tuple[int, int],
                    image_size: tuple[int, int], original_size: tuple[int, int], tasks: tuple[str, ...],
                    file_name: str = "") -> ImageResult:
        """One image's raw outputs -> its results at ``original_size``."""
        cfg = self.inference
        result = ImageResult(height=original_size[0], width=original_size[1], file_name=file_name)
        # The reference resizes mask logits to the original size before any inference when the
        # model evaluates instance or panoptic, and resizes semantic scores afterwards otherwise.
        before = cfg.instance_on or cfg.panoptic_on
        num_queries = class_logits.shape[0]
        needed = torch.zeros(num_queries, dtype=torch.bool, device=class_logits.device)
        if "semantic" in tasks and before:
            needed[:] = True
        keep = pp.panoptic_keep(class_logits, cfg.object_mask_threshold) if "panoptic" in tasks else None
        if keep is not None:
            needed |= keep
        if "instance" in tasks:
            scores, labels, queries = pp.instance_topk(
                class_logits, cfg.topk_per_image, self.thing_flags if cfg.panoptic_on else None)
            needed[queries] = True
        index = needed.nonzero().flatten()
        position = torch.full((num_queries,), -1, dtype=torch.long, device=class_logits.device)
        position[index] = torch.arange(index.numel(), device=class_logits.device)
        big = pp.upsample_masks(mask_logits[index], padded_size, image_size, original_size)

        if "semantic" in tasks:
            if before:
                scores_map = pp.semantic_inference(class_logits, big[position])
            else:
                full = F.interpolate(mask_logits[None], size=padded_size, mode="bilinear", align_corners=False)[0]
                scores_map = pp.sem_seg_postprocess(pp.semantic_inference(class_logits, full), image_size,
                                                    original_size)
            result.semantic = pp.semantic_result(scores_map)
        if keep is not None:
            result.panoptic = pp.panoptic_inference(class_logits, big[position[keep]], self.thing_flags,
                                                    cfg.object_mask_threshold, cfg.overlap_threshold, keep=keep)
        if "instance" in tasks:
            result.instance = pp.instance_inference(scores, labels, big[position[queries]], queries)
        return result

    @torch.inference_mode()
    def semantic_tta(self, image: ImageInput, *, min_sizes: Sequence[int] | None = None, max_size: int | None = None,
                     flip: bool = True) -> ImageResult:
        """Semantic scores averaged over views, as the reference's multi-scale + flip evaluation
        (detectron2's ``DatasetMapperTTA`` under Mask2Former's ``SemanticSegmentorWithTTA``): the
        image is resized to the test size first, as the test loader does; each view resizes that
        image to a short side of ``min_sizes`` (long side at most ``max_size``; both default to
        ``tta_views``), and is also taken flipped; every view's scores come back at the original
        size and all views count equally. No view is dropped: one the model cannot run is an
        ``ImageError`` naming the image and the view."""
        pixels, name = self._load(image, 0)
        label = name or "image"
        h, w = pixels.shape[:2]
        base = resize_image(pixels, self.test_size(h, w, label))
        default_sizes, default_max = tta_views(self.config)
        sizes = tta_view_sizes(base.shape[0], base.shape[1], min_sizes or default_sizes, max_size or default_max)
        total: torch.Tensor | None = None
        count = 0
        for size in sizes:
            view = resize_image(base, _positive(size, label))
            for flipped in (False, True) if flip else (False,):
                scores = self._view_scores(view, flipped, (h, w), label)
                total = scores if total is None else total + scores  # the reference's order of summation
                count += 1
        assert total is not None  # at least one size
        return ImageResult(height=h, width=w, semantic=pp.semantic_result(total / count), file_name=name)

    def _view_scores(self, view: np.ndarray, flipped: bool, original_size: tuple[int, int], label: str
                     ) -> torch.Tensor:
        """``[K, H, W]`` semantic scores of one test-time view (``flipped``: of its mirror image,
        flipped back), at the original size."""
        pixels = np.ascontiguousarray(view[:, ::-1]) if flipped else view
        tensor = torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1)
        batch = self._pixel_values([tensor])
        try:
            out = self.model(batch)
        except ValueError as e:  # e.g. a norm layer over a single value at the coarsest level
            raise ImageError(f"{label}: the {view.shape[0]}x{view.shape[1]} test-time view is too small for this "
                             f"model ({e})") from None
        semantic = self.postprocess(out.class_logits[0], out.mask_logits[0], (batch.shape[-2], batch.shape[-1]),
                                    (view.shape[0], view.shape[1]), original_size, ("semantic",)).semantic
        assert semantic is not None  # asked for
        return semantic.scores.flip(-1) if flipped else semantic.scores

    def __call__(self, images: ImageInput | Sequence[ImageInput], task: str | Sequence[str] = "panoptic"
                 ) -> ImageResult | list[ImageResult]:
        """Results for one image, or a list for a list of images (same order)."""
        if isinstance(images, list | tuple):
            return self.predict(images, task)
        return self.predict([cast(ImageInput, images)], task)[0]

    def predict(self, images: Iterable[ImageInput], task: str | Sequence[str] = "panoptic") -> list[ImageResult]:
        return list(self.iter_predict(images, task))

    def iter_predict(self, images: Iterable[ImageInput], task: str | Sequence[str] = "panoptic"
                     ) -> Iterator[ImageResult]:
        """Yields results in input order; the first image that cannot be read or prepared raises.
        At most ``batch_size + 1`` prepared images wait at any time, so memory stays bounded over a
        long list of files of mixed sizes."""
        for _, result in self.iter_predict_indexed(images, task):
            yield result

    def iter_predict_indexed(self, images: Iterable[ImageInput], task: str | Sequence[str] = "panoptic", *,
                             on_error: OnError | None = None) -> Iterator[tuple[int, ImageResult]]:
        """``(input index, result)`` in input order. With ``on_error``, an image whose reading or
        preparation raises one of the project's input errors is handed to ``on_error(index, error)``
        and skipped, so one bad file does not cost the others; any other exception (a bug, out of
        memory) propagates. Without it, the error propagates as in ``iter_predict``."""
        tasks = parse_tasks(task)
        pending: dict[tuple[int, int], list[_Prepared]] = {}
        done: dict[int, ImageResult | None] = {}  # None: the image failed and was reported
        next_out = 0
        for i, image in enumerate(images):
            item = self._prepare_or_report(image, i, on_error)
            if item is None:
                done[i] = None
            else:
                self._enqueue(pending, item, done, tasks)
            next_out = yield from self._drain(done, next_out)
        for key in list(pending):
            self._run_group(pending.pop(key), done, tasks)
        yield from self._drain(done, next_out)

    def _prepare_or_report(self, image: ImageInput, index: int, on_error: OnError | None) -> _Prepared | None:
        if on_error is None:
            return self.prepare(image, index)
        try:
            return self.prepare(image, index)
        except Mask2FormerError as error:
            on_error(index, error)
            return None

    def _enqueue(self, pending: dict[tuple[int, int], list[_Prepared]], item: _Prepared,
                 done: dict[int, ImageResult | None], tasks: tuple[str, ...]) -> None:
        """Queue an item with images of its padded size; run a group once it is full, or the group
        of the oldest waiting image once more than ``batch_size`` images wait."""
        key = self.batch_key(item)
        pending.setdefault(key, []).append(item)
        full = len(pending[key]) >= self.batch_size
        if full or sum(map(len, pending.values())) > self.batch_size:
            if not full:  # sizes are mixed: run the group holding the oldest image
                key = min(pending, key=lambda k: pending[k][0].index)
            self._run_group(pending.pop(key), done, tasks)

    def _run_group(self, group: list[_Prepared], done: dict[int, ImageResult | None], tasks: tuple[str, ...]
                   ) -> None:
        for item, result in zip(group, self.predict_batch(group, tasks)):
            done[item.index] = result

    @staticmethod
    def _drain(done: dict[int, ImageResult | None], next_out: int
               ) -> Generator[tuple[int, ImageResult], None, int]:
        """Yield the finished results that are next in input order; returns the new next index."""
        while next_out in done:
            result = done.pop(next_out)
            if result is not None:
                yield next_out, result
            next_out += 1
        return next_out
