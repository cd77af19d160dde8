"""mask2former train --data DATA.yaml --preset NAME [--iters N] [--batch-size B] [--output DIR]
[--resume] [--init CHECKPOINT] [--set key=value ...] [--print-config]"""

from __future__ import annotations

import argparse

from mask2former.cli.options import positive_int, preset_name, probability


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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (checked before anything is loaded)")
    p.add_argument("--skip-bad", action="store_true", help="skip images whose files or annotations are broken")
    p.add_argument("--max-skipped", type=probability, default=0.1,
                   help="with --skip-bad: stop when more than this fraction of the samples fail to load "
                        "(default 0.1)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. solver.base_lr=2e-4 model.decoder.num_queries=50 "
                        "(range-checked before any data is read)")
    p.add_argument("--print-config", action="store_true", help="print the full config and exit")
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace):
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
    if args.iters is not None:
        overrides["max_iter"] = args.iters
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    return apply_overrides(config, overrides).validate() if overrides else config.validate()


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
    from mask2former.engine.train import train

    final = train(config, args.data, args.output, resume=args.resume, allow_config_change=args.allow_config_change,
                  init=args.init, device=args.device, skip_bad=args.skip_bad, max_skipped=args.max_skipped)
    print(f"trained model: {final}")
    return 0
