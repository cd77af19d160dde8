"""mask2former eval --checkpoint C --data DATA.yaml [--split val] [--task ...] [--output DIR] [--tta]"""

from __future__ import annotations

import argparse
import sys

from mask2former.cli.options import add_device_option, add_precision_option, positive_int, preset_name


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset (PQ, mask AP, mIoU; volumes: Dice, HD95)")
    p.add_argument("--checkpoint", required=True, help="our checkpoint, an official .pkl, a HF directory, or an "
                   "exported model (.onnx, .pt2, OpenVINO folder: mask2former export)")
    p.add_argument("--data", required=True, help="DATA.yaml describing the dataset")
    p.add_argument("--split", default="val", help="split of DATA.yaml to score")
    p.add_argument("--task", nargs="+", choices=["semantic", "instance", "panoptic"],
                   help="tasks to score (default: every task the model and the annotations allow)")
    p.add_argument("--output", help="folder for predictions, metrics.json and report.md")
    p.add_argument("--tta", action="store_true", help="semantic: multi-scale + flip test-time augmentation")
    p.add_argument("--preset", type=preset_name, help="zoo setting of an official .pkl")
    add_device_option(p)
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per forward pass, >= 1")
    add_precision_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.device import resolve_device

    resolve_device(args.device)  # before the data and the checkpoint are read
    from mask2former.distributed import is_main
    from mask2former.engine.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.output, split=args.split, tasks=args.task,
                                  tta=args.tta, preset=args.preset, device=args.device, batch_size=args.batch_size,
                                  progress=True, precision=args.precision,
                                  command="mask2former " + " ".join(sys.argv[1:]))
    if is_main():
        width = max(len(k) for k in metrics) if metrics else 0
        for key, value in metrics.items():
            print(f"{key:{width}s} {metric_text(value)}" + (" mm" if key.startswith("hd95") else ""))  # HD95: mm
    return 0


def metric_text(value: float) -> str:
    """A metric as eval prints it: ``n/a`` where COCO's -1 (no objects of that size) or NaN (a class
    absent from the split) stand for "not measurable", as the report writes them."""
    return "    n/a" if value != value or value == -1.0 else f"{value:7.2f}"
