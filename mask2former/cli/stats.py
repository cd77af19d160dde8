"""mask2former stats DATA.yaml: the per-channel mean / std of the train split, written into the file."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="compute the per-channel mean / std of a dataset's images and write them into "
                                     "its DATA.yaml (for intensity: dataset, or any rule)")
    p.add_argument("data", help="the DATA.yaml file (its mean / std keys are set; every other line is kept)")
    p.add_argument("--split", default="train", help="the split to measure (default train)")
    p.add_argument("--dry-run", action="store_true", help="print the numbers without changing the file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.data.data_yaml import dataset_stats

    mean, std, count = dataset_stats(args.data, args.split, write=not args.dry_run, progress=True)
    numbers = ", ".join(f"{m:.6g} / {s:.6g}" for m, s in zip(mean, std))
    print(f"{args.split}: {count} images, mean / std per channel: {numbers}"
          + ("" if args.dry_run else f"; written to {args.data}"))
    return 0
