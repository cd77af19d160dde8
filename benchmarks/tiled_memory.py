"""Peak memory and time of tiled prediction on a large synthetic GeoTIFF: a 20000 x 20000 raster
must be predicted within a few GB, because memory is set by the tile, not the raster.

    python benchmarks/tiled_memory.py [--size 20000] [--tile 512] [--height H] [--overlap 0.25]
                                      [--task semantic] [--bands 3] [--dtype uint8] [--checkpoint C]

The raster is written by a child process a strip of rows at a time with rasterio (its memory is
not counted); the model is ``--checkpoint`` (e.g. the raster demo's trained model, which finds
the scene's objects) or the ``--preset`` with random weights (semantic memory and time do not
depend on the weights; instance and panoptic memory grow with the segments found, and random
weights may find none), and the run is ``predict_files``, the path ``mask2former predict``
takes. Peak RSS is ``ru_maxrss`` of this process (model, torch runtime and tiling together);
tracemalloc's peak counts numpy's and Python's allocations alone (torch's are invisible to it).
For comparison it prints what the raster would take in memory read whole (as stored, and as the
float32 input a one-pass prediction would build).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from mask2former.cpu import cpu_name


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


COUNT_SEGMENTS = """
import sys, numpy as np, rasterio
ids = set()
with rasterio.open(sys.argv[1]) as ds:
    for _, window in ds.block_windows(1):
        ids.update(np.unique(ds.read(1, window=window)).tolist())
print(len(ids - {0}))
"""


def found(geo: Path) -> str:
    """What the run found (a child process reads the panoptic GeoTIFF, so its memory is not counted)."""
    parts = []
    for tif in geo.glob("*_panoptic.tif"):
        count = subprocess.run([sys.executable, "-c", COUNT_SEGMENTS, str(tif)], check=True, capture_output=True,
                               text=True).stdout.strip()
        parts.append(f"{count} panoptic segments")
    for geojson in geo.glob("*_instances.geojson"):
        parts.append(f"{len(json.loads(geojson.read_text())['features'])} instances")
    return ", ".join(parts) or "(semantic only)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20000, help="raster width (and height), pixels")
    parser.add_argument("--height", type=int, default=None, help="raster height if not --size (the blending "
                        "accumulators follow the width: a wide strip shows what a square of that width needs)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--task", default="semantic")
    parser.add_argument("--bands", type=int, default=3, choices=(3, 4))
    parser.add_argument("--dtype", default="uint8", choices=("uint8", "uint16"))
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--checkpoint", default=None, help="a trained model (e.g. the raster demo's) instead of the "
                        "preset's random weights, which may find no segment at all: the merges' memory grows with "
                        "the segments found")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", default=None, help="folder to keep the raster and outputs in")
    args = parser.parse_args()

    import torch

    from mask2former import build_model, get_preset, save_model
    from mask2former.inference.predict_files import predict_files

    torch.set_num_threads(args.threads)
    height = args.height or args.size
    root = Path(args.keep or tempfile.mkdtemp(prefix="tiled_memory_"))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from mask2former.data.synthetic_raster import "
                    "write_synthetic_raster as w; w(sys.argv[1], height=int(sys.argv[2]), width=int(sys.argv[3]), "
                    "tile=int(sys.argv[4]), bands=int(sys.argv[5]), dtype=sys.argv[6], held_out=False)",
                    str(root / "raster"),
                    str(height), str(args.size), str(args.tile), str(args.bands), args.dtype], check=True)
    written = time.perf_counter() - start
    config = get_preset(args.preset)
    config.num_classes = 4
    if args.bands != 3:
        config.pixels = replace(config.pixels, channels=args.bands, mean=(128.0,) * args.bands,
                                std=(64.0,) * args.bands)
    checkpoint = Path(args.checkpoint) if args.checkpoint else save_model(build_model(config).eval(),
                                                                          root / "model.safetensors")
    baseline = peak_rss_mb()
    tracemalloc.start()
    start = time.perf_counter()
    report = predict_files(checkpoint, [root / "raster" / "image.tif"], root / "out", args.task, tile=args.tile,
                           overlap=args.overlap, overlays=False)
    elapsed = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.ok, report.summary()
    pixels = height * args.size
    stored = pixels * args.bands * (1 if args.dtype == "uint8" else 2)
    print(f"raster       {height} x {args.size} px (H x W, {pixels / 1e6:.1f} MP, {args.bands} x {args.dtype}; "
          f"written in {written:.1f} s)")
    print(f"whole read   {stored / 2**20:.0f} MB as stored, {pixels * args.bands * 4 / 2**20:.0f} MB as float32 "
          f"model input (not done: what a one-pass prediction would hold before any logits)")
    model = f"checkpoint {args.checkpoint}" if args.checkpoint else f"preset {args.preset}, random weights"
    print(f"tile         {args.tile} px, overlap {args.overlap}, task {args.task}, {model}")
    print(f"found        {found(root / 'out' / 'geo')}")
    print(f"cpu          {cpu_name()}, {args.threads} torch threads")
    print(f"peak RSS     {peak_rss_mb():.0f} MB (before predicting: {baseline:.0f} MB)")
    print(f"tracemalloc  {traced / 2**20:.0f} MB peak of numpy / Python allocations while predicting")
    print(f"time         {elapsed:.1f} s ({pixels / elapsed / 1e6:.2f} MP/s)")
    print(f"outputs      {root / 'out'}")


if __name__ == "__main__":
    main()
