"""mask2former predict --checkpoint C --input FILES_OR_DIRS --output DIR [--task ...] [--strict]
[--tile SIZE --overlap R]"""

from __future__ import annotations

import argparse
import sys

from mask2former.cli.options import (
    add_device_option,
    add_precision_option,
    non_negative_int,
    positive_int,
    preset_name,
    probability,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment images with a checkpoint and write results")
    p.add_argument("--checkpoint", required=True, help="our .pt/.safetensors, an official .pkl, a HF directory, or an "
                   "exported model (.onnx, .pt2, OpenVINO folder: mask2former export)")
    p.add_argument("--input", required=True, nargs="+",
                   help="image files and/or folders of images; or videos (.mp4, .avi, .mov, .mkv, ...) or a camera "
                        "(camera:0): an annotated video and per-frame results with instance tracks")
    p.add_argument("--output", required=True, help="folder for the results (a later run merges into its index)")
    p.add_argument("--task", default="panoptic", choices=["semantic", "instance", "panoptic", "all"])
    p.add_argument("--preset", default=None, type=preset_name,
                   help="zoo setting of an official .pkl (default: from its file name or its shapes)")
    add_device_option(p)
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--score-threshold", type=probability, default=0.5, help="instances drawn in overlays, in [0, 1]")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad image (default: skip it, write the others, exit 1 at the end)")
    p.add_argument("--tile", type=non_negative_int, default=None, metavar="SIZE",
                   help="predict in overlapping SIZE x SIZE windows (>= 32): georeferenced .tif rasters always "
                        "(default: the model's test size; 0: never), other images when larger than SIZE")
    p.add_argument("--overlap", type=probability, default=0.25, metavar="R",
                   help="overlap of neighbouring windows, a fraction of the tile in [0, 0.5] (default 0.25)")
    p.add_argument("--axis", default="auto", choices=["auto", "0", "1", "2"],
                   help="volumes (.nii, .nii.gz, DICOM series folders): the slice axis (default auto: the "
                        "acquisition axis); each is written back as a label volume in its own format")
    p.add_argument("--max-frames", type=positive_int, default=None,
                   help="videos and cameras: stop after this many frames (default: the whole video; a camera runs "
                        "until Ctrl-C)")
    add_precision_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.inference.predict_files import predict_files

    report = predict_files(args.checkpoint, args.input, args.output, args.task, preset=args.preset, device=args.device,
                     batch_size=args.batch_size, overlays=not args.no_overlays,
                     score_threshold=args.score_threshold, strict=args.strict, progress=True,
                     tile=args.tile, overlap=args.overlap, axis=getattr(args, "axis", "auto"),
                     precision=args.precision, max_frames=args.max_frames)
    if report.failed:
        print(f"error: {report.summary()}", file=sys.stderr)
        return 1
    return 0
