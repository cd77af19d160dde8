"""mask2former convert SRC DST [--preset NAME]: any readable checkpoint -> ours."""

from __future__ import annotations

import argparse

from mask2former.cli.options import preset_name


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an official .pkl or HF directory to our checkpoint format")
    p.add_argument("source", help="official .pkl, HF directory, or our checkpoint")
    p.add_argument("destination", help="output file: .safetensors or .pt")
    p.add_argument("--preset", default=None, type=preset_name,
                   help="zoo setting of an official .pkl (default: matched)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.weights import convert

    path, model = convert(args.source, args.destination, preset=args.preset)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {path} ({n / 1e6:.2f}M parameters, {model.config.num_classes} classes, "
          f"dataset {model.config.dataset or 'unknown'})")
    return 0
