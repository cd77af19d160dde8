"""mask2former synth OUT: write the synthetic dataset (COCO panoptic + instances + semantic PNGs)."""

from __future__ import annotations

import argparse

from mask2former.cli.options import non_negative_int, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a small synthetic dataset with its DATA.yaml files")
    p.add_argument("output", help="folder to write")
    p.add_argument("--train", type=positive_int, default=None, help="number of training images, >= 1 (default 400)")
    p.add_argument("--val", type=non_negative_int, default=None,
                   help="number of validation images, >= 0; 0 writes no val split (default 50)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed, >= 0 (same seed, same files)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.data.synthetic import write_synthetic

    kwargs = {k: v for k, v in (("num_train", args.train), ("num_val", args.val)) if v is not None}
    path = write_synthetic(args.output, seed=args.seed, **kwargs)
    print(f"wrote {path}")
    return 0
