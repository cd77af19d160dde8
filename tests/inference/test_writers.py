"""Written files decode back to the predictions (COCO panoptic PNG ids, RLE masks, label PNGs)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former import Predictor
from mask2former.inference.writers import ResultWriter, id_to_rgb
from tests.conftest import random_image


def test_id_to_rgb_round_trip():
    ids = np.array([[0, 1, 255], [256, 65535, 70000]])
    rgb = id_to_rgb(ids).astype(np.int64)
    assert np.array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], ids)


def test_writer_files_decode_to_results(tmp_path, tiny_model):
    # thresholds off, so that an untrained model yields panoptic segments to write
    inference = replace(tiny_model.config.inference, object_mask_threshold=0.0, overlap_threshold=0.0)
    image = random_image(48, 70)
    result = Predictor(tiny_model, inference=inference)(image, task="all")
    writer = ResultWriter(tmp_path, tiny_model.config, ("semantic", "instance", "panoptic"))
    writer.add(result, "000000000042", image)
    writer.close()

    pan = json.loads((tmp_path / "panoptic.json").read_text())
    ann = pan["annotations"][0]
    assert ann["image_id"] == 42 and ann["file_name"] == "000000000042.png"
    rgb = np.asarray(Image.open(tmp_path / "panoptic" / "000000000042.png")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert np.array_equal(ids, result.panoptic.segments.numpy())
    assert len(ann["segments_info"]) == len(result.panoptic.segments_info) > 0
    for seg in ann["segments_info"]:
        assert seg["area"] == int((ids == seg["id"]).sum())

    inst = json.loads((tmp_path / "instances.json").read_text())
    assert len(inst) == result.instance.masks.shape[0] > 0
    for entry, mask in zip(inst, result.instance.masks.numpy()):
        assert np.array_equal(mask_utils.decode(entry["segmentation"]).astype(bool), mask)

    labels = np.asarray(Image.open(tmp_path / "semantic" / "000000000042.png"))
    assert np.array_equal(labels, result.semantic.labels.numpy())
    for task in ("semantic", "instance", "panoptic"):
        overlay = Image.open(tmp_path / "overlays" / f"000000000042_{task}.png")
        assert overlay.size == (70, 48)
