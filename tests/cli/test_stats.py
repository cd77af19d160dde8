"""``mask2former stats DATA.yaml``: the train split's per-channel mean / std, computed once and written
into the file with every other line kept."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mask2former.cli import main
from mask2former.config import PixelConfig
from mask2former.data.data_yaml import build_split, load_data_config, pixel_config
from mask2former.data.image import read_image
from mask2former.data.intensity import apply_intensity
from mask2former.data.synthetic_multispectral import write_multispectral
from mask2former.errors import DatasetError


def _every_pixel(root, rule: str) -> np.ndarray:
    images = sorted((root / "images" / "train").iterdir())
    return np.concatenate([apply_intensity(read_image(p), rule).reshape(-1, 4).astype(np.float64) for p in images])


@pytest.fixture
def dataset(tmp_path):
    path = write_multispectral(tmp_path, num_train=3, num_val=1, size=48, channels=4, seed=3)
    text = path.read_text().replace("intensity: percentile\n", "# raw radiance, normalised per band\n"
                                                               "intensity: dataset\n")
    path.write_text("# my survey, flight 7\n" + text)
    return path


def test_stats_writes_the_train_split_mean_and_std_and_keeps_the_rest(dataset, capsys):
    before = yaml.safe_load(dataset.read_text())
    with pytest.raises(DatasetError, match="run `mask2former stats`"):  # training refuses the rule without them
        pixel_config(load_data_config(dataset), PixelConfig())
    assert main(["-q", "stats", str(dataset)]) == 0
    assert "train: 3 images" in capsys.readouterr().out
    text = dataset.read_text()
    assert text.startswith("# my survey, flight 7\n") and "# raw radiance, normalised per band\n" in text
    after = yaml.safe_load(text)
    assert {k: v for k, v in after.items() if k not in ("mean", "std")} == before
    every = _every_pixel(dataset.parent, "dataset")
    assert np.allclose(after["mean"], every.mean(0), rtol=1e-12)
    assert np.allclose(after["std"], every.std(0), rtol=1e-12)
    pixels = pixel_config(load_data_config(dataset), PixelConfig())
    assert pixels.channels == 4 and pixels.mean == tuple(after["mean"]) and pixels.intensity == "dataset"


def test_stats_again_replaces_its_numbers_whatever_their_layout(dataset):
    dataset.write_text(dataset.read_text() + "mean:\n  - 1\n  - 2\n  - 3\n  - 4\nstd: [1, 1, 1, 1]  # old\n")
    assert main(["-q", "stats", str(dataset)]) == 0
    data = yaml.safe_load(dataset.read_text())
    assert np.allclose(data["mean"], _every_pixel(dataset.parent, "dataset").mean(0), rtol=1e-12)
    assert dataset.read_text().count("mean:") == 1 and dataset.read_text().count("std:") == 1


def test_stats_follow_the_intensity_rule_and_dry_run_writes_nothing(dataset, capsys):
    dataset.write_text(dataset.read_text().replace("intensity: dataset", "intensity: percentile"))
    before = dataset.read_text()
    assert main(["-q", "stats", str(dataset), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert dataset.read_text() == before
    printed = [float(pair.split(" / ")[0]) for pair in out.split("per channel: ")[1].split(", ")]
    assert np.allclose(printed, _every_pixel(dataset.parent, "percentile").mean(0), rtol=1e-5)
    split = build_split(dataset, "train")
    assert split.pixels.intensity == "percentile" and split.training_image(0).max() == 255.0


def test_stats_of_a_missing_file_is_one_line(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nope.yaml'}: file not found")
