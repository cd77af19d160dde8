"""mask2former serve --checkpoint C [--host 127.0.0.1] [--port 8000] [--workers N] [--max-batch B] [--token T]"""

from __future__ import annotations

import argparse
import os

from mask2former.cli.options import (
    add_device_option,
    add_precision_option,
    positive_float,
    positive_int,
    preset_name,
    probability,
)

TOKEN_ENV = "MASK2FORMER_TOKEN"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP: a JSON API and a web page",
                       description="Serve a model over HTTP: GET / (a web page), GET /health, GET /v1/model, "
                                   "POST /v1/predict (an image -> JSON, PNG or overlay), GET /metrics. "
                                   "Example: mask2former serve --checkpoint runs/mine/model_final.pt, then open "
                                   "http://127.0.0.1:8000/")
    p.add_argument("--checkpoint", required=True, help="anything predict takes: our .pt/.safetensors, an official "
                   ".pkl, a HF directory, an exported .onnx / .pt2 / OpenVINO folder")
    p.add_argument("--preset", default=None, type=preset_name, help="zoo setting of an official .pkl")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=positive_int, default=8000, help="default 8000")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="server processes, each with its own copy of the model (default 1)")
    p.add_argument("--max-batch", type=positive_int, default=4,
                   help="images of concurrent requests run in one model call (default 4)")
    p.add_argument("--batch-window-ms", type=positive_float, default=10.0,
                   help="how long the first request of a batch waits for others (default 10)")
    p.add_argument("--max-queue", type=positive_int, default=32,
                   help="requests waiting or running; more are answered 503 with Retry-After (default 32)")
    p.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="request body limit (default 20)")
    p.add_argument("--max-pixels", type=positive_int, default=40_000_000,
                   help="decoded image limit, checked before decoding (default 40000000)")
    p.add_argument("--score-threshold", type=probability, default=0.5, help="instances drawn in overlays")
    p.add_argument("--token", default=None,
                   help=f"require 'Authorization: Bearer TOKEN' on /v1/* and /metrics (default: ${TOKEN_ENV}, "
                        "else no token)")
    add_device_option(p)
    add_precision_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mask2former.serve import serve
    from mask2former.serve.app import ServeSettings

    settings = ServeSettings(max_batch=args.max_batch, max_queue=args.max_queue, window_ms=args.batch_window_ms,
                             max_upload_mb=args.max_upload_mb, max_image_pixels=args.max_pixels,
                             score_threshold=args.score_threshold, token=args.token or os.environ.get(TOKEN_ENV))
    serve(args.checkpoint, settings, host=args.host, port=args.port, workers=args.workers, device=args.device,
          precision=args.precision, preset=args.preset)
    return 0
