"""mask2former demo [--kind coco|volume|raster|multispectral] [--output DIR]: synthetic data -> train ->
eval -> predict (-> compare), on the CPU."""

from __future__ import annotations

import argparse

from mask2former.cli.options import positive_int
from mask2former.cli.synth import KINDS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the end-to-end demo on generated data (20-40 minutes on 2 CPU cores)")
    p.add_argument("--kind", default="coco", choices=KINDS,
                   help="coco: photos with COCO annotations and the comparison with Mask R-CNN / DeepLabV3 (default); "
                        "volume: NIfTI / DICOM scans; raster: a georeferenced 16-bit 4-band GeoTIFF predicted tiled; "
                        "multispectral: 4-band 16-bit TIFF tiles (a few minutes each)")
    p.add_argument("--output", help="folder for the data, runs, predictions and reports (default: demo_output, "
                                    "or demo_output_KIND)")
    p.add_argument("--iters", type=positive_int, help="training iterations, >= 1 (default: the demo preset's)")
    p.add_argument("--no-compare", action="store_true", help="skip the Mask R-CNN / DeepLabV3 comparison")
    p.add_argument("--compare-iters", type=positive_int,
                   help="iteration budget of the comparison, >= 1 (default: --iters)")
    p.add_argument("--baseline-backbone", default="auto", choices=["auto", "resnet18", "resnet34", "resnet50"],
                   help="backbone of the baselines (auto: the same ResNet depth as the demo model, ResNet-18)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override training config fields (range-checked before the data is written)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mask2former.cli.train import build_config
    from mask2former.demo import results_table, run_demo

    if args.kind != "coco":
        return _run_path(args)
    args.output = args.output or "demo_output"

    # run_demo writes the data before it trains: check --iters and --set against the demo recipe first
    build_config(argparse.Namespace(preset="demo", set=args.set, iters=args.iters, batch_size=None))
    summary = run_demo(args.output, iters=args.iters, compare=not args.no_compare, compare_iters=args.compare_iters,
                       baseline_backbone=args.baseline_backbone, overrides=args.set)
    print()
    print(results_table(summary))
    if "compare_report" in summary:
        report = Path(summary["compare_report"]).read_text()
        start = report.find("## Summary")
        end = report.find("\n## ", start + 1)
        print()
        print(report[start:end].strip() if start >= 0 else report)
        print(f"\nfull comparison report: {summary['compare_report']}")
    print(f"all outputs: {args.output} ({summary['total_seconds'] / 60:.1f} min)")
    return 0


def _run_path(args: argparse.Namespace) -> int:
    from mask2former.demo_paths import path_results_table, run_path_demo
    from mask2former.errors import ConfigError

    if args.no_compare or args.compare_iters or args.set or args.baseline_backbone != "auto":
        raise ConfigError(f"--kind {args.kind} runs train -> eval -> predict alone: --no-compare, --compare-iters, "
                          "--baseline-backbone and --set belong to the coco demo")
    output = args.output or f"demo_output_{args.kind}"
    summary = run_path_demo(args.kind, output, iters=args.iters)
    print()
    print(path_results_table(summary))
    print(f"all outputs: {output} ({summary['total_seconds'] / 60:.1f} min)")
    return 0
