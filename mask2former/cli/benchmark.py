"""mask2former benchmark (--checkpoint C | --preset P) [--formats ...] [--precision ...] [--sizes ...]
[--batch N] [--data DATA.yaml] [--vs-hf]"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mask2former.cli.options import positive_int, preset_name


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="latency, throughput, memory, FLOPs (and accuracy) per format x precision x size",
        description="Export a model to each format and precision and measure each side by side in one run, each "
                    "row in a fresh process: median latency, throughput, peak memory, parameters, FLOPs; with "
                    "--data the accuracy of each against PyTorch fp32; per-stage times for PyTorch; with --vs-hf "
                    "the HF port beside ours. Example: mask2former benchmark --preset r50_coco_panoptic "
                    "--sizes 512x512,800x1216",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="our .pt/.safetensors, an official .pkl or a HF directory")
    source.add_argument("--preset", type=preset_name, help="a preset with random weights (speed needs no weights)")
    p.add_argument("--formats", type=_names, default="torch,onnx,openvino,torch-export",
                   help="comma-separated: torch (the checkpoint in PyTorch), onnx, openvino, torch-export")
    p.add_argument("--precision", type=_names, default=None,
                   help="comma-separated fp32, bf16, int8 (default: fp32,int8, and bf16 where the CPU has native "
                        "bf16); a format that cannot hold one is skipped with a note")
    p.add_argument("--sizes", type=_names, default="512x512", help="comma-separated padded input sizes HxW")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call")
    p.add_argument("--runs", type=positive_int, default=5, help="timed calls per row (after one warm-up)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's default)")
    p.add_argument("--data", help="DATA.yaml: score every format and precision on --split, against PyTorch fp32")
    p.add_argument("--split", default="val", help="split of --data to score")
    p.add_argument("--calibration-split", default="train", help="split of --data that calibrates int8 exports")
    p.add_argument("--calibration-images", type=positive_int, default=16, help="images that calibrate int8")
    p.add_argument("--no-stages", action="store_true", help="skip the per-stage PyTorch times")
    p.add_argument("--vs-hf", action="store_true", help="also time the HF port beside ours per stage (needs "
                   "transformers)")
    p.add_argument("--output", help="folder for the exported files, benchmark.md and benchmark.json "
                   "(default: a temporary folder, removed)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from mask2former.bench.table import default_precisions, format_benchmark, parse_size, run_benchmark
    from mask2former.build import build_model
    from mask2former.modeling import Mask2Former
    from mask2former.presets import get_preset
    from mask2former.weights import load_model

    precisions, note = (args.precision, "") if args.precision else default_precisions()
    if args.checkpoint:
        model = load_model(args.checkpoint)
        if not isinstance(model, Mask2Former):
            from mask2former.errors import ConfigError

            raise ConfigError(f"{args.checkpoint}: benchmark a checkpoint, not an exported file (it exports each "
                              "format itself)")
    else:
        model = build_model(get_preset(args.preset)).eval()
    step = model.config.pixels.size_divisibility
    sizes = [parse_size(text, step) for text in args.sizes]
    with tempfile.TemporaryDirectory(prefix="mask2former_benchmark_") as tmp:
        workdir = Path(args.output) if args.output else Path(tmp)
        result = run_benchmark(model, workdir, formats=args.formats, precisions=precisions, sizes=sizes,
                               batch=args.batch, runs=args.runs, threads=args.threads, data=args.data,
                               split=args.split, calibration_split=args.calibration_split,
                               calibration_images=args.calibration_images, stages=not args.no_stages,
                               vs_hf=args.vs_hf)
    if note:
        result.notes.insert(0, note)
    text = format_benchmark(result)
    print(text)
    if args.output:
        (Path(args.output) / "benchmark.md").write_text(text)
        (Path(args.output) / "benchmark.json").write_text(json.dumps(result.to_dict(), indent=2))
    return 0
