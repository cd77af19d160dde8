"""Where a PyTorch model's time goes: backbone, pixel decoder, transformer decoder (with the heads)
and post-processing, each timed alone (median over runs) on the same input."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from mask2former.inference.predictor import Predictor
from mask2former.modeling import Mask2Former
from mask2former.precision import ReducedPrecisionModel

STAGES = ("backbone", "pixel decoder", "transformer decoder", "post-processing")
ALL_TASKS = ("panoptic", "instance", "semantic")


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of ``fn`` over ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def stage_times(model: Mask2Former | ReducedPrecisionModel, pixel_values: torch.Tensor, runs: int
                ) -> dict[str, float]:
    """Seconds per stage for one call on ``pixel_values``; post-processing runs every task the
    model's config allows on each image of the batch, at the padded size."""
    core = model.model if isinstance(model, ReducedPrecisionModel) else model
    bf16 = isinstance(model, ReducedPrecisionModel) and model.precision == "bf16"

    @contextlib.contextmanager
    def precision() -> Iterator[None]:
        with torch.autocast(pixel_values.device.type, dtype=torch.bfloat16, enabled=bf16):
            yield

    def backbone():
        with precision():
            return core.backbone(pixel_values)

    features = backbone()

    def pixel_decoder():
        with precision():
            return core.pixel_decoder(features)

    mask_features, multi_scale = pixel_decoder()

    def decoder():
        with precision():
            return core.forward_decoder(mask_features, multi_scale)

    out = decoder()
    predictor = Predictor(model)
    size = (pixel_values.shape[-2], pixel_values.shape[-1])
    tasks = tuple(t for t in ALL_TASKS if getattr(core.config.inference, f"{t}_on", True))
    class_logits, mask_logits = out.class_logits.float(), out.mask_logits.float()

    def postprocess():
        return [predictor.postprocess(class_logits[i], mask_logits[i], size, size, size, tasks)
                for i in range(pixel_values.shape[0])]

    fns = (backbone, pixel_decoder, decoder, postprocess)
    return {name: median_seconds(fn, runs) for name, fn in zip(STAGES, fns)}
