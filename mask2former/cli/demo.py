"""mask2former demo --output DIR: the main job on an embedded default.

Until training lands, this builds the small ``demo`` preset (random weights), generates a few
images, runs ``predict`` for every task and writes the results and overlays.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on generated images")
    p.add_argument("--output", default="demo_output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    from mask2former import build_model, get_preset, save_model
    from mask2former.inference.predict import predict

    out = Path(args.output)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        img = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y = rng.integers(0, 260), rng.integers(0, 180)
            draw.ellipse((x, y, x + 60, y + 60), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.save(images / f"{i:03d}.png")
    model = build_model(get_preset("demo"))
    checkpoint = save_model(model, out / "model_random.safetensors")
    predict(checkpoint, [images], out / "predictions", "all", progress=True)
    print(f"demo: wrote predictions and overlays of an untrained 'demo' model to {out / 'predictions'}")
    return 0
