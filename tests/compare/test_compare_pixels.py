"""compare on images that are not 8-bit RGB: the baselines see what Mask2Former sees, or a clear refusal."""

from __future__ import annotations

import numpy as np
import pytest

from mask2former.compare.run import _Bench, compare
from mask2former.data.data_yaml import build_split
from mask2former.data.synthetic_multispectral import write_multispectral
from mask2former.errors import ConfigError
from mask2former.presets import training_recipe
from mask2former.structures import ImageResult


def test_baselines_are_fed_the_images_on_the_models_scale(tmp_path):
    data = write_multispectral(tmp_path, num_train=1, num_val=2, channels=3)  # 16-bit RGB tiles
    split = build_split(data, "val")
    raw = [split.load(i)[0] for i in range(len(split))]
    seen: list[np.ndarray] = []

    def predict(images):
        for image in images:
            seen.append(image)
            yield ImageResult(image.shape[0], image.shape[1])

    list(_Bench(split, 0, raw[0]).mapped(predict)(iter(raw)))
    assert len(seen) == len(raw)
    assert max(float(r.max()) for r in raw) > 255  # the files hold 16-bit counts ...
    for i, image in enumerate(seen):  # ... and the baselines get them mapped as Mask2Former's model does
        assert image.shape == raw[i].shape and float(image.max()) <= 255
        np.testing.assert_array_equal(image, split.training_image(i))


def test_compare_refuses_a_channel_count_the_baselines_cannot_take_before_training(tmp_path):
    data = write_multispectral(tmp_path / "data", num_train=1, num_val=1, channels=4)
    with pytest.raises(ConfigError, match="3-channel images, and this dataset has 4"):
        compare(data, tmp_path / "out", config=training_recipe("tiny"), progress=False)
    assert not (tmp_path / "out" / "mask2former").exists()
