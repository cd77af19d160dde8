"""``mask2former <command>``: the only place that parses argv. Each command is a thin wrapper
over the Python function of the same name."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from mask2former import __version__
from mask2former.cli import (
    benchmark,
    compare,
    convert,
    demo,
    export,
    predict,
    presets,
    serve,
    stats,
    synth,
    train,
    weights,
)
from mask2former.cli import eval as eval_
from mask2former.cli.options import pixel_limit

COMMANDS = {"train": train, "eval": eval_, "predict": predict, "compare": compare, "synth": synth,
            "convert": convert, "export": export, "benchmark": benchmark, "presets": presets, "demo": demo,
            "stats": stats, "serve": serve, "weights": weights}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mask2former", description="Mask2Former segmentation toolkit")
    parser.add_argument("--version", action="version", version=f"mask2former {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    parser.add_argument("--max-image-pixels", type=pixel_limit, metavar="N",
                        help="refuse images (and masks) with more pixels than N, or 'none' for no limit; default "
                             "178956970 or $MASK2FORMER_MAX_IMAGE_PIXELS (a guard against decompression bombs)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_image_pixels is not None:  # the environment reaches DataLoader workers and torchrun's processes too
        os.environ["MASK2FORMER_MAX_IMAGE_PIXELS"] = args.max_image_pixels
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        if getattr(args, "device", None) == "auto":
            args.device = _auto_device(getattr(args, "checkpoint", None))
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mask2former presets | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - one clear line for the user; --debug shows the rest
        if args.debug:
            raise
        print(error_line(e), file=sys.stderr)
        return 1


def _auto_device(checkpoint: str | None) -> str:
    """``--device auto`` made concrete once, for everything the command runs: the CPU for an
    exported file (where exported graphs run), else a CUDA GPU, else MPS, else the CPU."""
    from mask2former.device import auto_device
    from mask2former.exported_model import exported_format

    if checkpoint is not None and exported_format(checkpoint) is not None:
        return "cpu"
    return str(auto_device())


def error_line(error: BaseException) -> str:
    """The one line a user sees: our errors and the operating system's say what and where; any
    other exception is a bug of ours and is reported as one."""
    from mask2former.errors import Mask2FormerError, brief

    if isinstance(error, Mask2FormerError):
        return f"error: {error}"
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"error: {where}{error.strerror[0].lower()}{error.strerror[1:]}"
    return (f"internal error: {type(error).__name__}: {brief(str(error))} (a bug in mask2former, not in your "
            "input; --debug shows the traceback)")


if __name__ == "__main__":
    sys.exit(main())
