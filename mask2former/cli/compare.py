"""mask2former compare --data DATA.yaml [--preset demo] [--iters N] [--batch-size B] [--scale-to-batch]
[--checkpoint C] [--backbone-weights FILE|imagenet] [--output DIR]: Mask2Former vs Mask R-CNN / DeepLabV3
with the same budget and the same backbone start, written as a report."""

from __future__ import annotations

import argparse
import sys

from mask2former.cli.options import add_device_option, channel_width, positive_float, positive_int, preset_name
from mask2former.cli.train import add_backbone_weights_option, add_scale_to_batch_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="Mask2Former vs Mask R-CNN and DeepLabV3 on the same data and budget")
    p.add_argument("--data", required=True, help="DATA.yaml with train and val splits")
    p.add_argument("--preset", default="demo", type=preset_name, help="Mask2Former preset and training recipe")
    p.add_argument("--iters", type=positive_int, help="iterations for every model, >= 1 (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int,
                   help="batch size for every model, >= 1 (default: the preset's)")
    p.add_argument("--checkpoint", help="use this Mask2Former checkpoint instead of training one")
    add_backbone_weights_option(p)
    add_scale_to_batch_option(p)
    p.add_argument("--output", default="runs/compare", help="folder for report.md, results.json and the runs")
    p.add_argument("--baseline-backbone", default="auto",
                   choices=["auto", "resnet18", "resnet34", "resnet50", "resnet101"],
                   help="backbone of both baselines (auto: Mask2Former's ResNet depth, ResNet-50 for Swin)")
    p.add_argument("--baseline-rois", type=positive_int, default=512,
                   help="Mask R-CNN RoIs sampled per image (torchvision's 512 suits COCO; 128 trains faster on "
                        "small images with few objects)")
    p.add_argument("--baseline-width", default="auto", type=channel_width,
                   help="FPN / ASPP / head channels of both baselines (auto: Mask2Former's pixel-decoder width, "
                        "256 for the zoo presets; 256 is torchvision's standard)")
    p.add_argument("--baseline-optimizer", default="adamw", choices=["adamw", "sgd"],
                   help="optimizer of both baselines (poly decay either way)")
    p.add_argument("--baseline-lr", type=positive_float,
                   help="base learning rate of both baselines, > 0 (default: Mask2Former's, from the preset)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields, as in train")
    add_device_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.cli.train import build_config, check_backbone_weights
    from mask2former.device import resolve_device

    config = build_config(args)  # --iters, --batch-size and --set checked before any data is read
    resolve_device(args.device)
    check_backbone_weights(config)
    from mask2former.compare.run import compare

    report = compare(args.data, args.output, config=config, checkpoint=args.checkpoint,
                     baseline_backbone=args.baseline_backbone, baseline_optimizer=args.baseline_optimizer,
                     baseline_lr=args.baseline_lr, rois_per_image=args.baseline_rois,
                     baseline_width=args.baseline_width, device=args.device,
                     command="mask2former " + " ".join(sys.argv[1:]))
    print(f"report: {report}")
    return 0

