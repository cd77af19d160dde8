"""pycocotools against faster-coco-eval: same ground truth, same detections, every number and the time.

    pip install faster-coco-eval        # not a dependency: this script decides whether it could be one
    python benchmarks/coco_eval_backends.py [--gt instances_val.json --results instances.json]

The pycocotools side is what ``mask2former eval`` runs (``coco_evaluate``). Without files it
builds a random case: images of several sizes, RLE masks of every COCO size range,
crowd regions, detections that are jittered copies of the ground truth plus false positives. Prints
the 12 COCO numbers of both tools for mask and box AP, their largest difference, and the median time
of each with the ratio pycocotools / faster-coco-eval (> 1: faster-coco-eval is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mask2former.evaluation.instance import STAT_NAMES, _for_iou_type, coco_evaluate


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An ellipse of random size (small, medium and large all occur) somewhere in the image."""
    ry, rx = rng.uniform(2, h / 3), rng.uniform(2, w / 3)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def random_case(images: int = 300, classes: int = 8, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    gt: dict[str, Any] = {"images": [], "annotations": [],
                          "categories": [{"id": 3 * c + 1, "name": f"c{c}"} for c in range(classes)]}
    dets: list[dict[str, Any]] = []
    for image_id in range(1, images + 1):
        h, w = int(rng.integers(120, 400)), int(rng.integers(120, 400))
        gt["images"].append({"id": image_id, "height": h, "width": w})
        for _ in range(int(rng.integers(0, 8))):
            mask = _blob(rng, h, w)
            if not mask.any():
                continue
            cat = gt["categories"][int(rng.integers(classes))]["id"]
            rle = _rle(mask)
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                "segmentation": rle, "area": float(mask.sum()),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": int(rng.random() < 0.1)})
            if rng.random() < 0.8:  # a detection of it, shifted
                moved = np.roll(mask, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
                dets.append({"image_id": image_id, "category_id": cat, "segmentation": _rle(moved),
                             "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 4))):  # false positives
            dets.append({"image_id": image_id, "category_id": gt["categories"][int(rng.integers(classes))]["id"],
                         "segmentation": _rle(_blob(rng, h, w)), "score": float(rng.random() * 0.7)})
    return gt, dets


def _pycocotools(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> np.ndarray:
    """What ``mask2former eval`` runs."""
    stats = coco_evaluate(gt, dets, iou_types=(iou_type,))[iou_type]
    return np.array([stats[name] / 100 if stats[name] >= 0 else -1.0 for name in STAT_NAMES])


def _faster(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> np.ndarray:
    """The same evaluation with faster-coco-eval's COCO and COCOeval_faster."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco = COCO()
    coco.dataset = {**gt, "info": {}, "licenses": []}
    coco.createIndex()
    e = COCOeval_faster(coco, coco.loadRes([_for_iou_type(d, iou_type) for d in dets]), iou_type)
    e.evaluate()
    e.accumulate()
    e.summarize()
    return np.asarray(e.stats[:12])


def _timed(fn: Callable[..., np.ndarray], runs: int, *args: Any) -> tuple[np.ndarray, float]:
    times, stats = [], np.empty(0)
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            stats = fn(*args)
        times.append(time.perf_counter() - start)
    return stats, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", help="COCO instances JSON (ground truth)")
    parser.add_argument("--results", help="COCO results JSON (detections with RLE masks)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        raise SystemExit("faster-coco-eval is not installed: pip install faster-coco-eval") from None
    if args.gt and args.results:
        with open(args.gt) as f:
            gt = json.load(f)
        with open(args.results) as f:
            dets = json.load(f)
        source = f"{args.gt} + {args.results}"
    else:
        gt, dets = random_case()
        source = "random case (seed 0)"
    print(f"{source}: {len(gt['images'])} images, {len(gt['annotations'])} ground-truth masks, "
          f"{len(dets)} detections")
    for iou_type in ("segm", "bbox"):
        ref, t_ref = _timed(_pycocotools, args.runs, gt, dets, iou_type)
        fast, t_fast = _timed(_faster, args.runs, gt, dets, iou_type)
        print(f"{iou_type}: pycocotools {np.round(ref * 100, 3).tolist()}")
        print(f"{iou_type}: faster      {np.round(fast * 100, 3).tolist()}")
        print(f"{iou_type}: max |difference| {np.abs(ref - fast).max():.2e}; "
              f"pycocotools {t_ref:.2f} s, faster-coco-eval {t_fast:.2f} s, ratio {t_ref / t_fast:.2f}")


if __name__ == "__main__":
    main()
