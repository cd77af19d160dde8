"""Written files decode back to the predictions (COCO panoptic PNG ids, RLE masks, label PNGs)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former import Predictor
from mask2former.atomic_files import write_json_atomic
from mask2former.errors import ConfigError
from mask2former.folder_lock import FolderBusyError
from mask2former.formats import id_to_rgb
from mask2former.inference.writers import ResultWriter
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


def test_json_written_atomically(tmp_path):
    path = tmp_path / "index.json"
    write_json_atomic(path, {"images": [1, 2]})
    assert json.loads(path.read_text()) == {"images": [1, 2]}
    with pytest.raises(TypeError):  # fails half-way through serialising: the old file stays whole
        write_json_atomic(path, {"images": [3, object()]})
    assert json.loads(path.read_text()) == {"images": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]  # no temporary file left behind


def test_interrupted_add_removes_its_files_and_stays_out_of_the_index(tmp_path, tiny_model, monkeypatch):
    import mask2former.inference.writers as writers

    predictor = Predictor(tiny_model)
    images = [random_image(40, 60, i) for i in range(3)]
    results = predictor.predict(images, "all")
    real_overlay, calls = writers.overlay, []

    def overlay_interrupted_on_second_image(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # image 1's first overlay, after its panoptic and semantic PNGs
            raise KeyboardInterrupt
        return real_overlay(*args, **kwargs)

    monkeypatch.setattr(writers, "overlay", overlay_interrupted_on_second_image)
    with pytest.raises(KeyboardInterrupt), ResultWriter(tmp_path, tiny_model.config, ("instance", "panoptic",
                                                                                       "semantic")) as writer:
        for i, (result, image) in enumerate(zip(results, images)):
            writer.add(result, f"img{i}", image)
    pan = json.loads((tmp_path / "panoptic.json").read_text())
    assert [a["file_name"] for a in pan["annotations"]] == ["img0.png"]
    assert [i["id"] for i in pan["images"]] == ["img0"]
    assert {r["image_id"] for r in json.loads((tmp_path / "instances.json").read_text())} == {"img0"}
    assert sorted(p.name for p in (tmp_path / "panoptic").iterdir()) == ["img0.png"]
    assert sorted(p.name for p in (tmp_path / "semantic").iterdir()) == ["img0.png"]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == [
        "img0_instance.png", "img0_panoptic.png", "img0_semantic.png"]
    ResultWriter(tmp_path, tiny_model.config, ("panoptic",)).close()  # the folder was released


def test_writer_pickles_without_its_lock(tmp_path, tiny_model):
    """Multi-process eval gathers writers between processes; the lock must stay with its owner."""
    import copy

    writer = ResultWriter(tmp_path, tiny_model.config, ("panoptic",), overlays=False)
    clone = copy.deepcopy(writer)  # the same __getstate__ as pickling
    assert clone._lock is None and writer._lock is not None
    del clone  # dropping the copy must not release the owner's lock
    with pytest.raises(FolderBusyError, match="another prediction run is writing into this folder"):
        ResultWriter(tmp_path, tiny_model.config, ("panoptic",))
    writer.close()
    ResultWriter(tmp_path, tiny_model.config, ("panoptic",)).close()


def test_helper_writer_neither_locks_nor_writes_the_index(tmp_path, tiny_model):
    image = random_image(40, 40)
    result = Predictor(tiny_model)(image, task="panoptic")
    with ResultWriter(tmp_path, tiny_model.config, ("panoptic",), overlays=False) as owner:
        helper = ResultWriter(tmp_path, tiny_model.config, ("panoptic",), overlays=False, owns_index=False)
        helper.add(result, "7")
        helper.close()
        assert not (tmp_path / "panoptic.json").exists()
        owner.images += helper.images  # what multi-process eval does with gathered writers
        owner.panoptic_annotations += helper.panoptic_annotations
    assert [a["image_id"] for a in json.loads((tmp_path / "panoptic.json").read_text())["annotations"]] == [7]


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5, "high"])
def test_bad_score_threshold_is_an_error(tmp_path, tiny_model, threshold):
    with pytest.raises(ConfigError, match=r"score threshold: expected a number in \[0, 1\]"):
        ResultWriter(tmp_path, tiny_model.config, ("panoptic",), score_threshold=threshold)
    ResultWriter(tmp_path, tiny_model.config, ("panoptic",)).close()  # a refused writer left no lock behind


def test_existing_index_of_another_shape_is_refused(tmp_path, tiny_model):
    (tmp_path / "instances.json").write_text(json.dumps({"not": "a list of results"}))
    with pytest.raises(ConfigError, match="instances.json: the existing index is not one this program writes"):
        ResultWriter(tmp_path, tiny_model.config, ("instance",))
    (tmp_path / "instances.json").write_text(json.dumps([{"image_id": "x", "category_id": 77}]))
    with pytest.raises(ConfigError, match=r"instances.json: holds category ids \['77'\] this model does not predict"):
        ResultWriter(tmp_path, tiny_model.config, ("instance",))


def test_temporary_index_files_of_a_killed_run_are_removed(tmp_path, tiny_model):
    stale = tmp_path / ".panoptic.json.4242.0a1b2c3d.tmp"
    stale.write_text("{half")
    ResultWriter(tmp_path, tiny_model.config, ("panoptic",)).close()
    assert not stale.exists() and (tmp_path / "panoptic.json").exists()
