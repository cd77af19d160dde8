"""mask2former export --checkpoint C --format onnx|openvino|torch-export --output PATH [--precision fp32|bf16|int8
[--data DATA.yaml]]"""

from __future__ import annotations

import argparse
import time

from mask2former.cli.options import positive_int, preset_name
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
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                   help="int8: quantized after training (onnx: onnxruntime static QDQ; openvino: NNCF), needs --data; "
                        "bf16: OpenVINO only, stored as the precision the file runs at (OpenVINO's bf16 hint)")
    p.add_argument("--data", help="DATA.yaml whose images calibrate int8 (not the split you score)")
    p.add_argument("--calibration-split", default="train", help="split of --data to calibrate on")
    p.add_argument("--calibration-images", type=positive_int, default=16,
                   help="images to calibrate on, spread over the split")
    p.add_argument("--no-check", action="store_true",
                   help="skip running the written file beside PyTorch on an input size the export did not see")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.errors import ConfigError, ExportError
    from mask2former.export import calibration_inputs, check_export, export_model
    from mask2former.modeling import Mask2Former
    from mask2former.weights import load_model

    if args.precision == "int8" and args.data is None:
        raise ConfigError("--precision int8 needs --data DATA.yaml (its images calibrate the quantization)")
    model = load_model(args.checkpoint, preset=args.preset)
    if not isinstance(model, Mask2Former):
        raise ExportError(f"{args.checkpoint}: already exported; export the checkpoint it came from")
    calibration = []
    if args.precision == "int8":
        calibration = calibration_inputs(model, args.data, split=args.calibration_split,
                                         count=args.calibration_images)
    start = time.perf_counter()
    path = export_model(model, args.output, format=args.format, precision=args.precision, calibration=calibration)
    print(f"wrote {path} ({args.format}, {args.precision}, {time.perf_counter() - start:.0f} s)")
    if not args.no_check:
        (h, w), diff = check_export(model, path)
        print(f"checked at {h} x {w} (a size the export did not see): largest logit difference to PyTorch fp32 "
              f"{diff:.2e}" + (f" (the {args.precision} file)" if args.precision != "fp32" else ""))
    return 0
