"""Ours beside the HF port (``transformers``' ``Mask2FormerForUniversalSegmentation``), stage by
stage, on the same weights and input: the HF model gets its own random initialisation for the
architecture of ``config``, and ours loads those weights through our HF reader. HF and ours are
timed in alternation, stage by stage, so drifting clocks and background load fall on both alike.
Needs ``transformers`` (a test-only reference, not a dependency)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mask2former.bench.stages import STAGES
from mask2former.benchmark import peak_memory
from mask2former.config import ModelConfig
from mask2former.errors import ConfigError
from mask2former.modeling import Mask2Former


@dataclass
class SideBySide:
    """Seconds per stage (``STAGES`` and ``total``) of HF and ours, and the largest difference of
    their final logits; ``ties`` when that exceeds 1e-4 (see ``attention_mask_flips``)."""

    hf: dict[str, float] = field(default_factory=dict)
    ours: dict[str, float] = field(default_factory=dict)
    max_abs_diff: float = 0.0
    ties: dict[str, Any] | None = None
    hf_peak_mb: float = 0.0  # tensor memory one whole forward holds at once (benchmark.peak_memory)
    our_peak_mb: float = 0.0
    hf_train_s: float | None = None  # one training step: forward, the library's own loss, backward
    our_train_s: float | None = None

    def ratios(self) -> dict[str, float]:
        """HF time / ours per stage (> 1: we are faster)."""
        return {name: self.hf[name] / self.ours[name] for name in self.ours}


def paired_medians(hf_fn: Callable[[], Any], our_fn: Callable[[], Any], runs: int) -> tuple[float, float, Any, Any]:
    """Median wall time of each, timed in alternation after one warm-up call each."""
    hf_out, our_out = hf_fn(), our_fn()
    hf_times, our_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        hf_out = hf_fn()
        hf_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        our_out = our_fn()
        our_times.append(time.perf_counter() - start)
    return statistics.median(hf_times), statistics.median(our_times), hf_out, our_out


def synthetic_outputs(mask_size: tuple[int, int], num_queries: int, num_classes: int, confident: int = 40
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits with ``confident`` queries sure of one class and smooth mask logits: random
    weights give no confident query and would leave post-processing nothing to do."""
    g = torch.Generator().manual_seed(0)
    confident = min(confident, num_queries)
    cls = torch.randn(num_queries, num_classes + 1, generator=g)
    cls[torch.arange(confident), torch.randint(0, num_classes, (confident,), generator=g)] = 12.0
    cls[confident:, -1] = 12.0  # the rest: "no object"
    h, w = mask_size
    coarse = torch.randn(1, num_queries, max(1, h // 16), max(1, w // 16), generator=g) * 4
    masks = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    return cls, masks


def max_errors(hf_out, ours) -> dict[str, float]:
    """Largest absolute differences of final and auxiliary class / mask logits."""
    aux_cls = max((a["class_queries_logits"] - b.class_logits).abs().max().item()
                  for a, b in zip(hf_out.auxiliary_logits, ours.aux))
    aux_mask = max((a["masks_queries_logits"] - b.mask_logits).abs().max().item()
                   for a, b in zip(hf_out.auxiliary_logits, ours.aux))
    return {
        "class": (hf_out.class_queries_logits - ours.class_logits).abs().max().item(),
        "mask": (hf_out.masks_queries_logits - ours.mask_logits).abs().max().item(),
        "aux_class": aux_cls,
        "aux_mask": aux_mask,
    }


def attention_mask_flips(hf: Any, ours: Any, x: torch.Tensor) -> dict[str, Any]:
    """Run both models on ``x`` and compare their masked-attention masks bit by bit.

    The mask is a hard threshold (``sigmoid(logit) < 0.5``) on mask logits that the two
    implementations compute with ~1e-6 rounding differences, so a logit within that distance of 0
    can land on opposite sides; the query then attends to one pixel more or less and its outputs
    differ by far more than rounding. Ours is re-run with HF's masks injected at every layer, so
    both see the same history; returns the errors of that run (pure numerical error), the number
    of mask bits where our own threshold would still differ, and the largest |logit| among them."""
    decoder = hf.model.transformer_module.decoder
    heads = decoder.mask_predictor.num_heads
    hf_blocked, hf_logits = [], []

    def capture(module, args, output):
        hf_blocked.append(output[1][::heads].clone())  # [B*heads, Q, hw] -> one head per image
        small = torch.nn.functional.interpolate(output[0], size=args[2], mode="bilinear", align_corners=False)
        hf_logits.append(small.flatten(2))

    handle = decoder.mask_predictor.register_forward_hook(capture)
    try:
        with torch.no_grad():
            hf_out = hf(pixel_values=x, output_auxiliary_logits=True)
    finally:
        handle.remove()

    ours_decoder = ours.transformer_decoder
    original = ours_decoder.predict
    our_blocked: list[torch.Tensor] = []

    def injected(*args, **kwargs):
        # every layer attends exactly as HF's did; record where our own threshold would differ
        class_logits, mask_logits, _ = original(*args, **kwargs)
        small = torch.nn.functional.interpolate(mask_logits, size=args[2], mode="bilinear", align_corners=False)
        our_blocked.append(small.flatten(2).sigmoid() < 0.5)
        blocked = hf_blocked[len(our_blocked) - 1]
        blocked = blocked & ~blocked.all(-1, keepdim=True)
        return class_logits, mask_logits, (~blocked).unsqueeze(1)

    ours_decoder.predict = injected
    try:
        with torch.no_grad():
            pinned = max_errors(hf_out, ours(x))
    finally:
        del ours_decoder.predict
    flips = [a != b for a, b in zip(hf_blocked, our_blocked)]
    n = sum(int(f.sum()) for f in flips)
    at_flips = max((float(lg[f].abs().max()) for lg, f in zip(hf_logits, flips) if f.any()), default=0.0)
    return {"flips": n, "max_abs_logit_at_flip": at_flips, "pinned": pinned}


def hf_model(config: ModelConfig) -> Any:
    try:
        from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
    except ImportError:
        raise ConfigError("--vs-hf needs the HF port: pip install transformers") from None
    from mask2former.convert import hf_config_dict

    return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**hf_config_dict(config))).eval()


def _training_steps(hf: Any, ours: Mask2Former, x: torch.Tensor, runs: int) -> tuple[float, float]:
    """Median seconds of one training step (train mode, forward, the library's own loss on the same
    five random segments, backward) of HF and ours, timed in alternation. HF's ResNet normalises
    with batch statistics in training and updates its running ones: run it last."""
    from mask2former.build import build_criterion
    from mask2former.structures import Target

    g = torch.Generator().manual_seed(0)
    h, w = x.shape[-2:]
    coarse = torch.rand(5, 1, max(1, h // 32), max(1, w // 32), generator=g)
    masks = torch.nn.functional.interpolate(coarse, size=(h, w), mode="nearest")[:, 0] > 0.5
    labels = torch.randint(0, ours.config.num_classes, (5,), generator=g)
    target = Target(masks=masks, labels=labels, is_thing=torch.ones(5, dtype=torch.bool),
                    iscrowd=torch.zeros(5, dtype=torch.bool), ignore=torch.zeros((h, w), dtype=torch.bool))
    criterion = build_criterion(ours.config)

    def hf_step() -> None:
        hf.zero_grad(set_to_none=True)
        hf(pixel_values=x, mask_labels=[masks.float()], class_labels=[labels]).loss.backward()

    def our_step() -> None:
        ours.zero_grad(set_to_none=True)
        sum(criterion(ours(x), [target]).values()).backward()

    hf.train(), ours.train()
    try:
        hf_s, our_s, _, _ = paired_medians(hf_step, our_step, runs)
    finally:
        hf.eval(), ours.eval()
    return hf_s, our_s


def side_by_side(config: ModelConfig, size: tuple[int, int], runs: int, *, train: bool = False) -> SideBySide:
    """Per-stage medians of HF and ours on one ``[1, 3, *size]`` input (fp32, this process's threads),
    the peak tensor memory of a whole forward of each, and with ``train`` a training step of each."""
    from transformers import Mask2FormerImageProcessor
    from transformers.utils import logging as hf_logging

    from mask2former.inference.predictor import Predictor
    from mask2former.weights import load_model

    hf_logging.disable_progress_bar()  # its shard-writing bar would land in the middle of our table
    torch.manual_seed(0)
    hf = hf_model(config)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(Path(tmp))
        ours = load_model(tmp)
    assert isinstance(ours, Mask2Former)
    predictor = Predictor(ours)
    processor = Mask2FormerImageProcessor()
    x = torch.randn(1, config.pixels.channels, *size)
    result = SideBySide()
    with torch.inference_mode():
        t_bb, o_bb, feats, our_feats = paired_medians(
            lambda: hf.model.pixel_level_module.encoder(x).feature_maps, lambda: ours.backbone(x), runs)
        t_pd, o_pd, pd_out, (mask_features, multi) = paired_medians(
            lambda: hf.model.pixel_level_module.decoder(feats), lambda: ours.pixel_decoder(our_feats), runs)

        def hf_decoder():
            dec = hf.model.transformer_module(pd_out.multi_scale_features, pd_out.mask_features,
                                             output_hidden_states=True)
            return [hf.class_predictor(s.transpose(0, 1)) for s in dec.intermediate_hidden_states], dec

        t_td, o_td, (cls, dec), out = paired_medians(hf_decoder, lambda: ours.forward_decoder(mask_features, multi),
                                                     runs)
        mask_size = tuple(dec.masks_queries_logits[-1].shape[-2:])
        pp_cls, pp_masks = synthetic_outputs(mask_size, config.decoder.num_queries, config.num_classes)
        stuff = {i for i, thing in enumerate(config.thing_flags) if not thing}

        class _Outputs:  # what the HF post-processor reads
            class_queries_logits = pp_cls[None]
            masks_queries_logits = pp_masks[None]

        inference = config.inference
        t_pp, o_pp, _, _ = paired_medians(
            lambda: processor.post_process_panoptic_segmentation(
                _Outputs, threshold=inference.object_mask_threshold,
                overlap_mask_area_threshold=inference.overlap_threshold, label_ids_to_fuse=stuff,
                target_sizes=[size]),
            lambda: predictor.postprocess(pp_cls, pp_masks, size, size, size, ("panoptic",)), runs)
        result.max_abs_diff = max((cls[-1] - out.class_logits).abs().max().item(),
                                  (dec.masks_queries_logits[-1] - out.mask_logits).abs().max().item())
        result.hf_peak_mb = peak_memory(lambda: hf(pixel_values=x))
        result.our_peak_mb = peak_memory(lambda: ours(x))
    result.hf = dict(zip(STAGES, (t_bb, t_pd, t_td, t_pp)))
    result.ours = dict(zip(STAGES, (o_bb, o_pd, o_td, o_pp)))
    result.hf["total"], result.ours["total"] = sum(result.hf.values()), sum(result.ours.values())
    if result.max_abs_diff > 1e-4:  # a masked-attention threshold tie, or a real difference: find out which
        result.ties = attention_mask_flips(hf, ours, x)
    if train:  # last: training-mode batch norms move HF's running statistics
        result.hf_train_s, result.our_train_s = _training_steps(hf, ours, x, runs)
    return result


def format_side_by_side(name: str, result: SideBySide) -> list[str]:
    lines = [f"{name}  (max |HF - ours| of final logits: {result.max_abs_diff:.2e})"]
    if result.ties is not None:
        ties = result.ties
        lines.append(f"  {ties['flips']} attention-mask bit(s) on opposite sides of the threshold at |logit| <= "
                     f"{ties['max_abs_logit_at_flip']:.1e}; with HF's masks injected the largest difference is "
                     f"{max(ties['pinned'].values()):.1e}")
    lines.append("  | stage | HF (s) | ours (s) | HF / ours |\n  |---|---|---|---|")
    for stage, ratio in result.ratios().items():
        lines.append(f"  | {stage} | {result.hf[stage]:.3f} | {result.ours[stage]:.3f} | {ratio:.2f} |")
    if result.hf_train_s is not None and result.our_train_s is not None:
        lines.append(f"  | training step | {result.hf_train_s:.3f} | {result.our_train_s:.3f} | "
                     f"{result.hf_train_s / result.our_train_s:.2f} |")
    lines.append(f"  peak tensor memory of a forward: HF {result.hf_peak_mb:,.0f} MB, ours "
                 f"{result.our_peak_mb:,.0f} MB (ours / HF {result.our_peak_mb / result.hf_peak_mb:.2f})")
    return lines
