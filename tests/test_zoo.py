"""The model-zoo table, and official weights matched to a preset without a guess: a zoo file name
decides; weights that fit several presets with different settings are refused without --preset.

Which presets share an architecture is computed here from the tensor shapes of their official
state dicts (built on the meta device: shapes without memory), independently of
``mask2former.zoo.architecture``."""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former import PRESETS, CheckpointError, ModelConfig, build_model, get_preset, load_model
from mask2former.cli import main
from mask2former.config import to_dict
from mask2former.convert import convert_official_state_dict
from mask2former.presets import tiny
from mask2former.testing.official_layout import to_official
from mask2former.weights import _official_config, read_checkpoint
from mask2former.zoo import DOWNLOAD_ROOT, ZOO, presets_with_architecture, weights_for

CPU_PRESETS = {"tiny", "tiny_resnet", "demo"}  # README: the small CPU presets, not in the model zoo


def _write_pkl(path, state):
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"}, f)


def _same(a: ModelConfig, b: ModelConfig) -> bool:
    return json.dumps(to_dict(a), sort_keys=True) == json.dumps(to_dict(b), sort_keys=True)


@contextmanager
def _on_meta() -> Iterator[None]:
    """Build models without allocating or initialising weights (only shapes are read; this takes
    the 50 presets from ~20 s to ~6 s). Swin reads its drop-path rates back with ``.tolist()``,
    which a meta tensor cannot do, so ``linspace`` alone stays on the CPU."""
    linspace = torch.linspace
    with ExitStack() as stack:
        stack.enter_context(torch.device("meta"))
        stack.enter_context(mock.patch.object(torch, "linspace",
                                              lambda *a, **k: linspace(*a, **{**k, "device": "cpu"})))
        for name in (n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")):
            stack.enter_context(mock.patch.object(torch.nn.init, name, lambda tensor, *a, **k: tensor))
        yield


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, torch.Tensor]]:
    """Every preset's official weights (meta tensors), converted to our names as the loader does."""
    out = {}
    for name in PRESETS:
        with _on_meta():
            model = build_model(get_preset(name))
        out[name] = convert_official_state_dict(to_official(model))
    return out


@pytest.fixture(scope="module")
def groups(states) -> list[list[str]]:
    """Presets whose official files have the same keys and shapes (``PRESETS`` order)."""
    by_shapes = defaultdict(list)
    for name, state in states.items():
        by_shapes[frozenset((k, tuple(v.shape)) for k, v in state.items())].append(name)
    return list(by_shapes.values())


def _differ(group: list[str]) -> bool:
    return len(group) > 1 and not all(_same(get_preset(group[0]), get_preset(n)) for n in group[1:])


# ----------------------------------------------------------------------------- the table


def test_the_table_has_one_file_per_zoo_preset():
    assert sorted(w.preset for w in ZOO.values()) == sorted(set(PRESETS) - CPU_PRESETS)
    for file, w in ZOO.items():
        assert w.file == file and re.fullmatch(r"model_final_[0-9a-f]{6}\.pkl", file)
        assert re.fullmatch(r"[0-9a-f]{6}", w.md5_prefix)
        assert w.url is None or (w.url.startswith(DOWNLOAD_ROOT + "/") and w.url.endswith(f"/{w.config}/{file}"))
        assert w.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", w.sha256)
        assert weights_for(w.preset) is w
    assert weights_for("demo") is None
    assert ZOO["model_final_94dc52.pkl"].preset == "r50_coco_panoptic"  # the README's example file


def test_published_metrics_are_of_tasks_the_preset_evaluates():
    """Metrics (from MODEL_ZOO.md) and the presets' test flags (from the configs) are separate
    sources; a metric of a task its preset switches off is a row in the wrong place."""
    for w in ZOO.values():
        config = get_preset(w.preset)
        assert w.metrics, w.file
        for key, value in {**w.metrics, **w.metrics_tta}.items():
            task, metric = key.split(".")
            assert getattr(config.inference, f"{task}_on"), (w.file, key)
            assert metric in {"PQ", "AP", "AP50", "mIoU"} and 0 < value < 100, (w.file, key, value)
        assert set(w.metrics_tta) <= {"semantic.mIoU"}
        assert ("semantic.mIoU" in w.metrics_tta) == w.preset.endswith("_semantic"), w.file


# ----------------------------------------------------------------------------- matching (tensor shapes only)


def test_presets_with_architecture_are_those_with_the_same_shapes(groups):
    for group in groups:
        for name in group:
            assert list(presets_with_architecture(get_preset(name))) == group, name


def test_a_shared_architecture_is_refused_without_preset_listing_exactly_its_group(states, groups):
    refused = set()
    for group in groups:
        for name in group:
            if not _differ(group):  # one preset, or twins with identical settings: no guess to make
                config = _official_config(states[name], None, "weights/renamed.pkl", need_settings=True)
                assert _same(config, get_preset(name)), name
                continue
            with pytest.raises(CheckpointError) as caught:
                _official_config(states[name], None, "weights/renamed.pkl", need_settings=True)
            message = str(caught.value)
            assert message.startswith("weights/renamed.pkl: ") and "\n" not in message
            assert re.findall(r"--preset (\w+)", message) == group, message
            assert re.findall(r"preset='(\w+)'", message) == group, message
            refused.add(name)
    # the issue's cases: each panoptic R50 model was given its semantic twin's settings
    assert {"r50_ade20k_panoptic", "r50_cityscapes_panoptic", "r50_mapillary_panoptic"} <= refused


def test_with_preset_each_member_gets_its_own_settings(states, groups):
    for group in (g for g in groups if _differ(g)):
        for weights_of in group:  # any member's weights: the shapes are the same
            for name in group:
                config = _official_config(states[weights_of], name, "weights/renamed.pkl", need_settings=True)
                assert _same(config, get_preset(name)), (weights_of, name)


def test_a_zoo_file_name_picks_its_preset(states, caplog):
    with caplog.at_level(logging.INFO, logger="mask2former"):
        for w in ZOO.values():
            config = _official_config(states[w.preset], None, f"downloads/{w.file}", need_settings=True)
            assert _same(config, get_preset(w.preset)), w.file
    assert "the model zoo's file of preset 'r50_ade20k_panoptic'" in caplog.text


def test_a_zoo_file_name_with_other_weights_names_both(states):
    with pytest.raises(CheckpointError) as caught:
        _official_config(states["r50_coco_panoptic"], None, "model_final_5c90d4.pkl", need_settings=True)
    message = str(caught.value)
    assert "model_final_5c90d4.pkl is the model zoo's file of preset 'r50_ade20k_panoptic'" in message
    assert "num_classes: checkpoint 133, preset 150" in message


def test_weights_only_reading_takes_an_ambiguous_file_as_its_architecture(states, groups):
    """``train --init`` reads only the weights: an ambiguous file is not an error there, and no
    twin's settings are guessed either."""
    name = next(n for g in groups if _differ(g) for n in g)
    config = _official_config(states[name], None, "weights/renamed.pkl", need_settings=False)
    assert (config.dataset, config.categories) == ("", [])
    assert list(presets_with_architecture(config)) == next(g for g in groups if name in g)


# ----------------------------------------------------------------------------- every path, with real files


def _tiny_twin() -> ModelConfig:
    config = tiny()
    return replace(config, inference=replace(config.inference, min_size=96, max_size=160, panoptic_on=False),
                   dataset="tiny_twin")


@pytest.fixture
def twin_pkl(tmp_path, monkeypatch):
    """An official-layout file of the ``tiny`` architecture, which a second preset shares."""
    monkeypatch.setitem(PRESETS, "tiny_twin", _tiny_twin)
    model = build_model(get_preset("tiny"))
    path = tmp_path / "tiny.pkl"
    _write_pkl(path, to_official(model))
    return path, model


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_load_model_and_convert_refuse_the_ambiguous_file_and_take_preset(twin_pkl, tmp_path, capsys):
    path, model = twin_pkl
    with pytest.raises(CheckpointError, match="pass --preset tiny or --preset tiny_twin"):
        load_model(path)
    loaded = load_model(path, preset="tiny_twin")
    assert loaded.config.inference.min_size == 96 and loaded.config.dataset == "tiny_twin"
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())

    assert main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {path}: the weights fit 2 zoo settings") and "preset='tiny_twin'" in line
    assert not (tmp_path / "out.safetensors").exists()
    assert main(["convert", str(path), str(tmp_path / "out.safetensors"), "--preset", "tiny_twin"]) == 0
    assert load_model(tmp_path / "out.safetensors").config.inference.min_size == 96


def test_predict_and_eval_refuse_the_ambiguous_file_in_one_line(twin_pkl, tmp_path, capsys):
    from mask2former.data.synthetic import write_synthetic

    path, _ = twin_pkl
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "photo.png")
    assert main(["predict", "--checkpoint", str(path), "--input", str(tmp_path / "photo.png"),
                 "--output", str(tmp_path / "pred")]) == 1
    assert "--preset tiny or --preset tiny_twin" in _one_error_line(capsys)
    data = write_synthetic(tmp_path / "data", num_train=1, num_val=1, sizes=[(64, 64)])
    assert main(["eval", "--checkpoint", str(path), "--data", str(data)]) == 1
    assert "--preset tiny or --preset tiny_twin" in _one_error_line(capsys)


def test_init_reads_an_ambiguous_file_for_its_weights(twin_pkl, caplog):
    from mask2former.engine.train import initialise_from

    path, model = twin_pkl
    fresh = build_model(get_preset("tiny"))
    with caplog.at_level(logging.INFO, logger="mask2former"):
        report = initialise_from(fresh, path)
    assert report["reinitialised"] == [] and report["unused"] == []
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
    assert "fit the zoo settings tiny, tiny_twin; only the weights are used" in caplog.text


def test_the_issues_case_ade20k_panoptic_r50(tmp_path, capsys):
    """A real-size R50 trained on ADE20K panoptic: renamed, the CLI refuses it naming both ADE20K
    R50 settings; under its zoo name it gets the panoptic test size and tasks."""
    renamed = tmp_path / "ade20k_panoptic_r50.pkl"
    _write_pkl(renamed, to_official(build_model(get_preset("r50_ade20k_panoptic"))))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "photo.png")
    assert main(["predict", "--checkpoint", str(renamed), "--input", str(tmp_path / "photo.png"),
                 "--output", str(tmp_path / "pred")]) == 1
    line = _one_error_line(capsys)
    assert "pass --preset r50_ade20k_semantic or --preset r50_ade20k_panoptic (Python: " in line
    zoo_named = renamed.rename(tmp_path / "model_final_5c90d4.pkl")
    config, _ = read_checkpoint(zoo_named, need_settings=True)
    assert (config.dataset, config.inference.min_size, config.inference.max_size) == ("ade20k_panoptic", 640, 2560)
    assert config.inference.panoptic_on and config.inference.instance_on
