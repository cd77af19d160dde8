"""mask2former train --data DATA.yaml --preset NAME [--iters N] [--batch-size B] [--output DIR]
[--resume] [--init CHECKPOINT] [--backbone-weights FILE|imagenet] [--scale-to-batch]
[--intensity percentile|window|zscore|dataset] [--window LOW,HIGH] [--set key=value ...] [--print-config]"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import TYPE_CHECKING, Any

from mask2former.cli.options import add_device_option, positive_int, preset_name, probability
from mask2former.config import INTENSITY_RULES
from mask2former.errors import brief

if TYPE_CHECKING:
    from mask2former.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset described by DATA.yaml")
    p.add_argument("--data", help="DATA.yaml describing the dataset (see README)")
    p.add_argument("--preset", default="demo", type=preset_name,
                   help="model + recipe preset (see `mask2former presets`)")
    p.add_argument("--iters", type=positive_int, help="number of iterations, >= 1 (overrides the preset's)")
    p.add_argument("--batch-size", type=positive_int, help="global batch size, >= 1 (overrides the preset's)")
    p.add_argument("--output", default="runs/train", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints/last.pt")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue with settings that differ from the run's (they are listed)")
    p.add_argument("--init", help="start from this checkpoint's weights (heads re-initialised if classes differ)")
    add_backbone_weights_option(p)
    add_scale_to_batch_option(p)
    add_device_option(p)
    p.add_argument("--skip-bad", action="store_true", help="skip images whose files or annotations are broken")
    p.add_argument("--max-skipped", type=probability, default=0.1,
                   help="with --skip-bad: stop when more than this fraction of the samples fail to load "
                        "(default 0.1)")
    add_intensity_options(p)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. solver.base_lr=2e-4 model.decoder.num_queries=50 "
                        "(range-checked before any data is read)")
    p.add_argument("--print-config", action="store_true", help="print the full config and exit")
    p.set_defaults(run=run)


def add_backbone_weights_option(p: argparse.ArgumentParser) -> None:
    """``--backbone-weights``, shared by ``train`` and ``compare``."""
    p.add_argument("--backbone-weights", metavar="FILE|imagenet",
                   help="start the backbone from this file (torchvision / timm / detectron2 ResNet, official or timm "
                        "Swin: .pth, .pkl, .safetensors), or 'imagenet' / 'imagenet-22k' for the backbone's standard "
                        "file from the local torchvision / HuggingFace caches (nothing is downloaded); config key "
                        "model.backbone.weights")


def window(text: str) -> tuple[float, float]:
    """``LOW,HIGH``: two finite numbers, low < high (CT's soft-tissue window: -1000,400)."""
    parts = text.split(",")
    try:
        low, high = (float(v) for v in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, two numbers with LOW < HIGH (e.g. -1000,400), "
                                         f"got {brief(text)}")
    return low, high


def add_intensity_options(p: argparse.ArgumentParser) -> None:
    """``--intensity`` / ``--window``: how 16-bit and float images reach the model's scale. They win
    over DATA.yaml's ``intensity`` / ``window`` (the run says so) and the checkpoint stores the rule,
    which ``eval`` and ``predict`` then apply."""
    p.add_argument("--intensity", choices=INTENSITY_RULES,
                   help="how 16-bit / float images are mapped (8-bit images pass as they are): percentile (each "
                        "image's 0.5-99.5th percentiles, the default), window (--window), zscore (mean -/+ 4 std of "
                        "the nonzero region), dataset (DATA.yaml's mean / std, `mask2former stats`); over DATA.yaml's")
    p.add_argument("--window", type=window, metavar="LOW,HIGH",
                   help="clip 16-bit / float images to LOW..HIGH and scale that to the model's range (means "
                        "--intensity window), e.g. --window -1000,400 for CT; over DATA.yaml's")
    p._negative_number_matcher = re.compile(r"^-\.?\d")  # "--window -1000,400" is a value, not an option


def intensity_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--intensity`` / ``--window`` give, as ``model.pixels`` settings (empty when neither)."""
    from mask2former.errors import ConfigError

    given: dict[str, Any] = {}
    rule, limits = getattr(args, "intensity", None), getattr(args, "window", None)
    if limits is not None:
        if rule not in (None, "window"):
            raise ConfigError(f"--window clips to a fixed range, which is intensity 'window', not --intensity {rule}")
        given = {"intensity": "window", "window": list(limits)}
    elif rule is not None:
        given = {"intensity": rule}
    return given


def _backbone_weights(args: argparse.Namespace) -> str | None:
    """``--backbone-weights``; ``imagenet`` means ImageNet-22k for the presets trained from it (``*_in21k``)."""
    value = getattr(args, "backbone_weights", None)
    if value == "imagenet" and "_in21k" in args.preset:
        return "imagenet-22k"
    return value


def check_backbone_weights(config: TrainConfig) -> None:
    """A named backbone file that is missing (or not in the caches) fails now, not after the data is read."""
    if config.model.backbone.weights:
        from mask2former.backbone_weights import locate_backbone_weights

        locate_backbone_weights(config.model.backbone)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The preset's recipe with ``--iters``, ``--batch-size`` and ``--set`` applied, validated: an
    out-of-range value fails here, naming its key, before any data or model is loaded."""
    from mask2former.config import apply_overrides, parse_overrides
    from mask2former.errors import ConfigError
    from mask2former.presets import training_recipe

    config = training_recipe(args.preset)
    overrides = parse_overrides(args.set)
    for key in ("model.num_classes", "model.categories"):
        if key in overrides:
            raise ConfigError(f"--set {key}: the classes come from the dataset (DATA.yaml's annotations or its "
                              "'classes:'); change them there, not here")
    if getattr(args, "scale_to_batch", False):
        config = _scaled(config, args, keep={*overrides, *(["max_iter"] if args.iters is not None else [])})
    if args.iters is not None:
        overrides["max_iter"] = args.iters
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if _backbone_weights(args) is not None:
        overrides["model.backbone.weights"] = _backbone_weights(args)
    given = intensity_options(args)
    if given and (given["intensity"] != "window" or "window" in given):  # shown by --print-config; the run
        # applies them over DATA.yaml's (--intensity window alone takes the file's window there)
        overrides["model.pixels.intensity"] = given["intensity"]
        overrides["model.pixels.window"] = given.get("window", [])
    return apply_overrides(config, overrides).validate() if overrides else config.validate()


def _scaled(config: TrainConfig, args: argparse.Namespace, keep: set[str]) -> TrainConfig:
    """``--scale-to-batch``: the preset's recipe moved from its reference batch to ``--batch-size``
    by the linear rule, each change said; what ``--iters`` / ``--set`` give is kept."""
    from mask2former.errors import ConfigError
    from mask2former.presets import scale_to_batch

    if args.batch_size is None:
        raise ConfigError(f"--scale-to-batch scales the recipe from the preset's batch ({config.batch_size}) to "
                          "--batch-size: give --batch-size too")
    scaled, lines = scale_to_batch(config, args.batch_size, keep=keep)
    factor = args.batch_size / config.batch_size
    print(f"--scale-to-batch: batch {config.batch_size} -> {args.batch_size}: learning rate x{factor:g}, iterations "
          f"x{1 / factor:g}"
          + "".join(f"\n  {line}" for line in lines if not line.startswith("batch_size:"))
          + (f"\n  kept as given: {', '.join(sorted(keep))}" if keep else ""), file=sys.stderr)
    return scaled


def add_scale_to_batch_option(p: argparse.ArgumentParser) -> None:
    """``--scale-to-batch``, shared by ``train`` and ``compare``."""
    p.add_argument("--scale-to-batch", action="store_true",
                   help="scale the preset's learning rate, iterations, warm-up, decay steps and periods linearly "
                        "from its reference batch (16 for the zoo presets) to --batch-size, as detectron2's "
                        "reference-world-size rule; --iters and --set values are kept as given")


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.print_config:
        import yaml

        from mask2former.config import to_dict

        data = to_dict(config)
        data["model"]["categories"] = f"<{len(data['model']['categories'])} categories, from the dataset>"
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
        return 0
    from mask2former.errors import ConfigError

    if not args.data:
        raise ConfigError("--data DATA.yaml is required (or use --print-config)")
    from mask2former.device import resolve_device

    resolve_device(args.device)
    if args.init and config.model.backbone.weights:
        raise ConfigError("--init and --backbone-weights (model.backbone.weights) both give the backbone its "
                          "weights: use one of them")
    if not args.resume:  # a resumed run takes every weight from its checkpoint
        check_backbone_weights(config)
    from mask2former.engine.train import train

    final = train(config, args.data, args.output, resume=args.resume, allow_config_change=args.allow_config_change,
                  init=args.init, device=args.device, skip_bad=args.skip_bad, max_skipped=args.max_skipped,
                  pixels=intensity_options(args))
    print(f"trained model: {final}")
    return 0
