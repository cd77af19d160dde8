"""mask2former presets [NAME]: list the named settings, or print one as YAML."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list model presets, or show one")
    p.add_argument("name", nargs="?", help="preset to print in full")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from mask2former.config import to_dict
    from mask2former.presets import PRESETS, get_preset

    if args.name:
        data = to_dict(get_preset(args.name))
        data["categories"] = f"<{len(data['categories'])} categories>"
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
        return 0
    for name in PRESETS:
        c = PRESETS[name]()
        print(f"{name:36s} {c.num_classes:4d} classes  {c.decoder.num_queries:3d} queries  "
              f"test {c.inference.min_size}/{c.inference.max_size}")
    return 0
