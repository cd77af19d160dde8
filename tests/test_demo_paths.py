"""mask2former demo --kind: each real-world path end to end, and its options."""

from __future__ import annotations

import json

import pytest

from mask2former.cli import main
from mask2former.demo_paths import PATH_KINDS, path_recipe, path_results_table, run_path_demo
from mask2former.errors import ConfigError


def test_each_path_takes_the_demo_recipe_with_its_crop_and_iterations():
    for kind in PATH_KINDS:
        config = path_recipe(kind, iters=7)
        assert config.max_iter == 7 and config.batch_size == 8 and config.input.crop_size[0] <= 128
    with pytest.raises(ConfigError, match="expected one of volume, raster, multispectral"):
        path_recipe("coco")


def test_comparison_options_are_refused_for_a_path_demo(capsys, tmp_path):
    assert main(["demo", "--kind", "raster", "--no-compare", "--output", str(tmp_path / "x")]) == 1
    assert "--no-compare" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_the_multispectral_path_runs_end_to_end(tmp_path):
    summary = run_path_demo("multispectral", tmp_path / "demo", iters=2)
    assert summary["iterations"] == 2 and summary["predict"]["written"] == 4
    assert {"panoptic.PQ", "instance.AP", "semantic.mIoU"} <= set(summary["metrics"])
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["kind"] == "multispectral"
    table = path_results_table(summary)
    assert "synthetic multispectral data, 2 iterations" in table and "mIoU" in table
    config = (tmp_path / "demo" / "train" / "config.yaml").read_text()
    assert "channels: 4" in config  # the four bands reached the model's stem
