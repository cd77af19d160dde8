"""Largest output differences between ours and the HF port, same weights, several configurations.

    python benchmarks/parity_vs_hf.py

Each configuration is a randomly initialised HF ``Mask2FormerForUniversalSegmentation`` (weights
perturbed so no tensor keeps a trivial init), saved with ``save_pretrained`` and loaded by our HF
reader. Prints max |HF - ours| of the final and the auxiliary class and mask logits (fp32). Where
that exceeds 1e-4 it also prints whether a masked-attention bit fell on the other side of the
threshold at a logit within rounding of 0, and the errors with HF's attention masks injected.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from mask2former import load_model
from mask2former.bench.vs_hf import attention_mask_flips, max_errors
from mask2former.testing.hf_reference import make_hf_model

CONFIGS = [
    ("Swin w7, 10 queries, 5 classes", dict(), [(1, 3, 96, 128), (2, 3, 75, 101)]),
    ("Swin w12 (48 ch), 20 queries, 17 classes, 9 decoder layers", dict(
        embed_dim=48, heads=(2, 3, 6, 12), window=12, num_labels=17, num_queries=20, decoder_layers=10,
        encoder_layers=3, num_heads=8, seed=1), [(1, 3, 131, 97)]),
    ("Swin deep stage 3, 7 queries, 1 class", dict(embed_dim=24, depths=(2, 2, 6, 2), heads=(1, 2, 3, 6),
                                                   num_labels=1, num_queries=7, decoder_layers=7, seed=2),
     [(2, 3, 64, 64), (1, 3, 33, 47)]),
    ("ResNet-18, 10 queries, 5 classes", dict(backbone="resnet", seed=3), [(2, 3, 97, 130)]),
    ("Swin-T widths (96 ch, 2-2-6-2), 256 hidden, 100 queries, 133 classes", dict(
        embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), num_labels=133, num_queries=100, hidden=256,
        decoder_layers=10, encoder_layers=6, num_heads=8, seed=4), [(1, 3, 384, 512), (1, 3, 333, 500)]),
]


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs, shapes in CONFIGS:
            hf, directory = make_hf_model(Path(tmp), **kwargs)
            ours = load_model(directory)
            for shape in shapes:
                x = torch.randn(*shape)
                with torch.no_grad():
                    errors = max_errors(hf(pixel_values=x, output_auxiliary_logits=True), ours(x))
                line = f"{name:70s} input {shape[0]}x{shape[2]}x{shape[3]}: " + ", ".join(
                    f"{k} {v:.1e}" for k, v in errors.items())
                if max(errors.values()) > 1e-4:
                    # a hard threshold on logits with ~1e-6 rounding: say whether a mask bit flipped
                    flips = attention_mask_flips(hf, ours, x)
                    line += (f"\n{'':70s}   {flips['flips']} attention-mask bit(s) flipped at |logit| <= "
                             f"{flips['max_abs_logit_at_flip']:.1e}; with HF's masks injected: "
                             + ", ".join(f"{k} {v:.1e}" for k, v in flips["pinned"].items()))
                print(line)


if __name__ == "__main__":
    main()
