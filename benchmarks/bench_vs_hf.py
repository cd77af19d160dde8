"""Ours vs the HuggingFace port on CPU: same weights, same input, per-stage median latency.

    python benchmarks/bench_vs_hf.py [--presets swin_t_coco_panoptic r50_coco_panoptic]
                                     [--sizes 512x512 800x1216] [--runs 5] [--threads 2]

The same measurement as ``mask2former benchmark --vs-hf`` (``mask2former.bench.vs_hf``): the HF
model with its own random initialisation for the preset's architecture, ours loading those weights
through our HF reader, fp32; stages backbone, pixel decoder, transformer decoder (with the class
head), post-processing (panoptic, each library's own algorithm, on the same synthetic outputs);
HF and ours timed in alternation; at the first size also a training step (forward, each library's
own loss on the same random segments, backward). Prints HF time / ours per stage (> 1: we are
faster), the largest output difference and the peak tensor memory of a forward of each.
"""

from __future__ import annotations

import argparse

import torch

from mask2former.bench.table import parse_size
from mask2former.bench.vs_hf import format_side_by_side, side_by_side
from mask2former.cpu import cpu_name
from mask2former.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["swin_t_coco_panoptic", "r50_coco_panoptic"])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "800x1216"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_name()}; torch {torch.__version__}, {args.threads} threads, fp32, median of {args.runs} runs "
          "(after 1 warm-up)")
    for name in args.presets:
        config = get_preset(name)
        for index, text in enumerate(args.sizes):  # a training step at the first size
            result = side_by_side(config, parse_size(text, config.pixels.size_divisibility), args.runs,
                                  train=index == 0)
            print("\n" + "\n".join(format_side_by_side(f"{name} {text}", result)))


if __name__ == "__main__":
    main()
