"""mask2former weights: the weights a name resolves to (zoo presets, ImageNet backbone files)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list the weights a name resolves to, and whether they are cached",
                       description="List the model-zoo files (--checkpoint PRESET downloads one once) and the "
                                   "ImageNet backbone files (--backbone-weights imagenet), with their addresses and "
                                   "whether the cache holds them. Example: mask2former weights --cached")
    p.add_argument("--cached", action="store_true", help="only the files already in the cache")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.download import cache_dir, weights_table

    rows = [r for r in weights_table() if r["cached"] == "yes" or not args.cached]
    width = max((len(r["name"]) for r in rows), default=4)
    print(f"cache: {cache_dir()} (zoo files); backbone files: torchvision's cache")
    print(f"{'name':{width}s}  {'cached':6s}  {'kind':17s}  {'published val':26s}  url")
    for r in rows:
        print(f"{r['name']:{width}s}  {r['cached']:6s}  {r['kind']:17s}  {r['metric']:26s}  {r['url']}")
    return 0
