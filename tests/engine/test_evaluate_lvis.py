"""A model trained on LVIS is scored with LVIS AP (the ``lvis`` package on the dataset's own file)
during training, and training reports the numbers ``mask2former eval`` gives for its checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former.engine.evaluate import evaluate_checkpoint
from mask2former.engine.train import train
from mask2former.evaluation.instance import LVIS_STAT_NAMES
from mask2former.presets import training_recipe

pytest.importorskip("lvis")

H, W = 64, 64
CATEGORIES = [{"id": 4, "name": "bagel", "frequency": "r"}, {"id": 9, "name": "ball", "frequency": "c"},
              {"id": 12, "name": "bench", "frequency": "f"}]


def _split(root, name: str, first_id: int, seed: int) -> None:
    """Two images, each nearly filled by one object (so that even a barely trained model's masks
    match some: a number that is only above 0 if the image ids match the file's), with ids far
    from 0, 1 (the images' positions in the split)."""
    rng = np.random.default_rng(seed)
    (root / "images" / name).mkdir(parents=True)
    images, annotations = [], []
    for k in range(2):
        image_id = first_id + 17 * k
        pixels = np.kron(rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
        j = (k + seed) % len(CATEGORIES)
        x0, y0 = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        x1, y1 = W - int(rng.integers(0, 6)), H - int(rng.integers(0, 6))
        pixels[y0:y1, x0:x1] = 60 * (j + 1)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORIES[j]["id"],
                            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        Image.fromarray(pixels).save(root / "images" / name / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{name}/{image_id}.png", "height": H, "width": W,
                       "neg_category_ids": [], "not_exhaustive_category_ids": []})
    (root / f"lvis_{name}.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                         "categories": CATEGORIES}))


@pytest.fixture
def lvis_data(tmp_path):
    _split(tmp_path, "train", 101, seed=0)
    _split(tmp_path, "val", 205, seed=1)
    (tmp_path / "DATA.yaml").write_text("format: lvis\n"
                                        "train: {images: images, annotations: lvis_train.json}\n"
                                        "val: {images: images, annotations: lvis_val.json}\n")
    return tmp_path / "DATA.yaml"


@pytest.mark.slow
def test_training_scores_lvis_with_lvis_ap_as_eval_does(lvis_data, tmp_path):
    config = training_recipe("tiny")
    config.max_iter, config.eval_period = 1, 0
    checkpoint = train(config, lvis_data, tmp_path / "run", progress=False)
    during_training = json.loads((tmp_path / "run" / "metrics.json").read_text())  # the final evaluation
    assert set(during_training) == {f"instance.{name}" for name in LVIS_STAT_NAMES}  # APr/APc/APf, no COCO ARs
    assert during_training["instance.AP50"] > 0
    assert during_training == evaluate_checkpoint(checkpoint, lvis_data)
