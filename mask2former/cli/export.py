"""mask2former export --checkpoint C --format onnx|openvino|torch-export --output PATH"""

from __future__ import annotations

import argparse
import time

from mask2former.cli.options import preset_name
from mask2former.formats import EXPORT_FORMATS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a checkpoint as one graph for other runtimes (ONNX, OpenVINO IR, torch.export)",
        description="Write a checkpoint as one graph serving all three tasks: pixel_values [B, C, H, W] in (batch and "
                    "sizes dynamic), class and mask logits out, the config stored inside. --checkpoint, predict and "
                    "eval accept the written file. Example: mask2former export --checkpoint model_final.pt "
                    "--format onnx --output model.onnx",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="our .pt/.safetensors, an official .pkl or a HF directory")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="onnx: an .onnx file (onnxruntime); openvino: a folder of model.xml + model.bin; "
                        "torch-export: a .pt2 file (torch.export)")
    p.add_argument("--output", required=True, help="the file (or OpenVINO folder) to write; the suffix is added")
    p.add_argument("--preset", default=None, type=preset_name,
                   help="zoo setting of an official .pkl (default: from its file name or its shapes)")
    p.add_argument("--no-check", action="store_true",
                   help="skip running the written file beside PyTorch on an input size the export did not see")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.export import check_export, export_model
    from mask2former.modeling import Mask2Former
    from mask2former.weights import load_model

    model = load_model(args.checkpoint, preset=args.preset)
    if not isinstance(model, Mask2Former):
        from mask2former.errors import ExportError

        raise ExportError(f"{args.checkpoint}: already exported; export the checkpoint it came from")
    start = time.perf_counter()
    path = export_model(model, args.output, format=args.format)
    print(f"wrote {path} ({args.format}, {time.perf_counter() - start:.0f} s)")
    if not args.no_check:
        (h, w), diff = check_export(model, path)
        print(f"checked at {h} x {w} (a size the export did not see): largest logit difference to PyTorch {diff:.2e}")
    return 0
