"""Ours vs the HuggingFace port on CPU: same weights, same input, per-stage median latency.

    python benchmarks/bench_vs_hf.py [--backbones swin_t r50] [--sizes 512x512 800x1216] [--runs 5]

Both models get the same randomly initialised weights (HF's init, saved with save_pretrained and
loaded by our HF reader), fp32, ``torch.set_num_threads(--threads)``. Stages: backbone, pixel
decoder, transformer decoder (with the class head), post-processing (panoptic, to the input size;
each library's own algorithm). Prints the ratio HF / ours per stage and in total (> 1 = we are
faster) and the largest output difference, which stays within 1e-4 unless a mask logit sits within
rounding of the masked-attention threshold (then it says so, and gives the difference with HF's
attention masks injected). HF and ours are timed in alternation, stage by stage.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mask2former.testing.hf_reference import attention_mask_flips


def hf_config(backbone: str):
    from transformers import Mask2FormerConfig, ResNetConfig, SwinConfig

    stages = ["stage1", "stage2", "stage3", "stage4"]
    if backbone == "swin_t":
        bc = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                        drop_path_rate=0.3, out_features=stages)
    elif backbone == "swin_s":
        bc = SwinConfig(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7,
                        drop_path_rate=0.3, out_features=stages)
    elif backbone == "r50":
        bc = ResNetConfig(depths=[3, 4, 6, 3], layer_type="bottleneck", hidden_sizes=[256, 512, 1024, 2048],
                          out_features=stages)
    else:
        raise SystemExit(f"unknown backbone {backbone}")
    # COCO panoptic head: 133 classes, 100 queries, the paper's widths
    return Mask2FormerConfig(backbone_config=bc, num_labels=133, num_queries=100)


def synthetic_outputs(mask_size, num_queries: int = 100, num_classes: int = 133, confident: int = 40):
    """Class logits with ``confident`` queries sure of one class, and smooth mask logits."""
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(num_queries, num_classes + 1, generator=g)
    cls[torch.arange(confident), torch.randint(0, num_classes, (confident,), generator=g)] = 12.0
    cls[confident:, -1] = 12.0  # the rest: "no object"
    h, w = mask_size
    coarse = torch.randn(1, num_queries, max(1, h // 16), max(1, w // 16), generator=g) * 4
    masks = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    return cls, masks


def paired_medians(hf_fn, our_fn, runs: int) -> tuple[float, float, object, object]:
    """Median wall time of each, the two timed in alternation (after one warm-up call each) so
    that drifting CPU clocks, caches and background load fall on both alike."""
    hf_out, our_out = hf_fn(), our_fn()
    hf_times, our_times = [], []
    for _ in range(runs):
        t = time.perf_counter()
        hf_out = hf_fn()
        hf_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        our_out = our_fn()
        our_times.append(time.perf_counter() - t)
    return statistics.median(hf_times), statistics.median(our_times), hf_out, our_out


def bench(backbone: str, size: tuple[int, int], runs: int) -> dict[str, tuple[float, float]]:
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    from mask2former import Predictor, load_model

    torch.manual_seed(0)
    hf = Mask2FormerForUniversalSegmentation(hf_config(backbone)).eval()
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(Path(d))
        ours = load_model(d)
    predictor = Predictor(ours)
    processor = Mask2FormerImageProcessor()
    x = torch.randn(1, 3, *size)
    results: dict[str, tuple[float, float]] = {}
    with torch.inference_mode():
        t_bb, o_bb, feats, ofeats = paired_medians(lambda: hf.model.pixel_level_module.encoder(x).feature_maps,
                                                   lambda: ours.backbone(x), runs)
        t_pd, o_pd, pd_out, (mask_features, multi) = paired_medians(
            lambda: hf.model.pixel_level_module.decoder(feats), lambda: ours.pixel_decoder(ofeats), runs)

        def hf_decoder():
            dec = hf.model.transformer_module(pd_out.multi_scale_features, pd_out.mask_features,
                                             output_hidden_states=True)
            return [hf.class_predictor(s.transpose(0, 1)) for s in dec.intermediate_hidden_states], dec

        t_td, o_td, (cls, dec), out = paired_medians(hf_decoder, lambda: ours.forward_decoder(mask_features, multi),
                                                     runs)

        # Randomly initialised weights give no confident query, which would leave post-processing
        # nothing to do; both libraries get the same synthetic, realistic outputs instead:
        # 40 of 100 queries confident (a dominant class), smooth blob-like mask logits.
        pp_cls, pp_masks = synthetic_outputs(dec.masks_queries_logits[-1].shape[-2:])
        stuff = [i for i in range(133) if i >= 80]

        class _Out:  # what the HF post-processor reads
            class_queries_logits = pp_cls[None]
            masks_queries_logits = pp_masks[None]

        predictor.thing_flags = [i < 80 for i in range(133)]
        t_pp, o_pp, _, _ = paired_medians(
            lambda: processor.post_process_panoptic_segmentation(
                _Out, threshold=0.8, overlap_mask_area_threshold=0.8, label_ids_to_fuse=set(stuff),
                target_sizes=[size]),
            lambda: predictor.postprocess(pp_cls, pp_masks, size, size, size, ("panoptic",)), runs)
        hf_stages = [t_bb, t_pd, t_td, t_pp]
        our_stages = [o_bb, o_pd, o_td, o_pp]
        err = max((cls[-1] - out.class_logits).abs().max().item(),
                  (dec.masks_queries_logits[-1] - out.mask_logits).abs().max().item())
    for name, h, o in zip(["backbone", "pixel decoder", "transformer decoder", "post-processing"], hf_stages,
                          our_stages):
        results[name] = (h, o)
    results["total"] = (sum(hf_stages), sum(our_stages))
    results["_max_abs_diff"] = (err, err)
    if err > 1e-4:  # a masked-attention threshold tie, or a real difference: find out which
        results["_ties"] = attention_mask_flips(hf, ours, x)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["swin_t", "r50"])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "800x1216"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, median of {args.runs} runs (after 1 warm-up)")
    for backbone in args.backbones:
        for size_text in args.sizes:
            size = tuple(int(v) for v in size_text.split("x"))
            res = bench(backbone, size, args.runs)
            err = res.pop("_max_abs_diff")[0]
            ties = res.pop("_ties", None)
            print(f"\n{backbone} {size_text}  (max |HF - ours| of final logits: {err:.2e})")
            if ties is not None:
                print(f"  {ties['flips']} attention-mask bit(s) on opposite sides of the threshold at |logit| <= "
                      f"{ties['max_abs_logit_at_flip']:.1e}; with HF's masks injected the largest difference is "
                      f"{max(ties['pinned'].values()):.1e}")
            print(f"  {'stage':22s} {'HF (s)':>9s} {'ours (s)':>9s} {'HF/ours':>8s}")
            for name, (h, o) in res.items():
                print(f"  {name:22s} {h:9.3f} {o:9.3f} {h / o:8.2f}")


if __name__ == "__main__":
    main()
