"""mask2former synth OUT: write a synthetic dataset with its DATA.yaml files.

``--kind`` picks what: ``coco`` (COCO panoptic + instances + semantic PNGs, the default),
``volume`` (NIfTI and DICOM scans with label volumes), ``raster`` (one large georeferenced
raster), ``multispectral`` (multi-band TIFF tiles)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mask2former.cli.options import non_negative_int, positive_int
from mask2former.errors import ConfigError

KINDS = ("coco", "volume", "raster", "multispectral")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a small synthetic dataset with its DATA.yaml files")
    p.add_argument("output", help="folder to write")
    p.add_argument("--kind", choices=KINDS, default="coco",
                   help="what to write: coco (images, default), volume (NIfTI + DICOM scans), "
                        "raster (a georeferenced raster), multispectral (multi-band tiles)")
    p.add_argument("--train", type=positive_int, default=None,
                   help="number of training images (volumes), >= 1 (default per kind)")
    p.add_argument("--val", type=non_negative_int, default=None,
                   help="number of validation images (volumes), >= 0; 0 writes no val split (default per kind)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed, >= 0 (same seed, same files)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kind = getattr(args, "kind", "coco")
    kwargs = {k: v for k, v in (("num_train", args.train), ("num_val", args.val)) if v is not None}
    paths: list[Path]
    if kind == "volume":
        from mask2former.data.synthetic_volume import write_synthetic_volumes

        paths = list(write_synthetic_volumes(args.output, seed=args.seed, **kwargs))
    elif kind == "raster":
        # --- raster branch: one georeferenced raster and its DATA.yaml ---
        from mask2former.data.synthetic_raster import write_synthetic_raster

        if kwargs:
            raise ConfigError("synth --kind raster writes one raster: --train and --val do not apply")

        paths = [write_synthetic_raster(args.output, seed=args.seed).data_yaml]
    elif kind == "multispectral":
        # --- multispectral branch: multi-band TIFF tiles and their DATA.yaml ---
        from mask2former.data.synthetic_multispectral import write_multispectral

        paths = [write_multispectral(args.output, seed=args.seed, **kwargs)]
    else:
        from mask2former.data.synthetic import write_synthetic

        paths = [write_synthetic(args.output, seed=args.seed, **kwargs)]
    for path in paths:
        print(f"wrote {path}")
    return 0
