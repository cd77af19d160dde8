"""Volumes as slice-wise 2D samples: the model's intensity rule with per-volume ranges, slicing
along any axis, 2.5D stacking from the model's channels, DATA.yaml formats nifti / dicom, pairing
image and label volumes, and targets from label values."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("nibabel")
pytest.importorskip("pydicom")

from mask2former.config import CategoryInfo, PixelConfig  # noqa: E402
from mask2former.data.data_yaml import build_split, load_data_config  # noqa: E402
from mask2former.data.intensity import ZSCORE_CLIP  # noqa: E402
from mask2former.data.synthetic_volume import CLASSES, write_synthetic_volumes  # noqa: E402
from mask2former.data.volume_dataset import (  # noqa: E402
    context_for,
    plane_size,
    put_slice,
    read_volume_split,
    take_slice,
    volume_ranges,
)
from mask2former.data.volumes import read_volume  # noqa: E402
from mask2former.errors import ConfigError, DatasetError  # noqa: E402

CT = PixelConfig(intensity="window", window=(-1000.0, 400.0))
MRI = PixelConfig(intensity="zscore")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("volumes")
    write_synthetic_volumes(root, num_train=2, num_val=0, shape=(40, 36, 9), seed=1)
    return root


def _ct(values: np.ndarray) -> np.ndarray:
    """The CT window by hand: -1000 HU -> 0, 400 HU -> 255, clipped."""
    return np.clip((values.astype(np.float64) + 1000) * 255 / 1400, 0, 255)


def test_ranges_are_fixed_once_per_volume():
    values = np.array([-2000, -1000, -300, 400, 3000], np.float32).reshape(5, 1, 1)
    low, high = volume_ranges(values, CT)
    assert low.tolist() == [-1000] and high.tolist() == [400]
    rng = np.random.default_rng(0)
    mri = np.zeros((10, 10, 10), np.float32)
    mri[2:8, 2:8, 2:8] = rng.normal(500, 40, size=(6, 6, 6))
    low, high = volume_ranges(mri, MRI)
    region = mri[mri != 0].astype(np.float64)  # the nonzero region's mean and std, not the volume's
    assert low[0] == pytest.approx(region.mean() - ZSCORE_CLIP * region.std())
    assert high[0] == pytest.approx(region.mean() + ZSCORE_CLIP * region.std())
    assert volume_ranges(mri, PixelConfig(intensity="dataset", mean=(0.0,) * 3, std=(1.0,) * 3)) is None


def test_context_follows_the_models_channels():
    assert [context_for(c) for c in (1, 3, 5)] == [0, 1, 2]
    with pytest.raises(ConfigError, match="2 context \\+ 1"):
        context_for(4)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_take_and_put_slice_are_inverse_along_every_axis(axis):
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    out = np.zeros_like(volume)
    for k in range(volume.shape[axis]):
        plane = take_slice(volume, axis, k)
        assert plane.shape == plane_size(volume.shape, axis)
        put_slice(out, axis, k, plane)
    np.testing.assert_array_equal(out, volume)
    # the slice's rows run along the later remaining axis: a DICOM slice reads as in its file
    assert take_slice(volume, 2, 3)[1, 2] == volume[2, 1, 3]


def test_context_stacks_neighbours_as_channels_clamped_at_the_ends():
    volume = np.arange(3 * 2 * 5).reshape(3, 2, 5)
    for k, expected in ((0, [0, 0, 1]), (2, [1, 2, 3]), (4, [3, 4, 4])):
        stack = take_slice(volume, 2, k, context=1)
        assert stack.shape == (2, 3, 3)
        for c, source in enumerate(expected):
            np.testing.assert_array_equal(stack[:, :, c], take_slice(volume, 2, source))
    assert take_slice(volume, 0, 0, context=2).shape == (5, 2, 5)


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_data_yaml_split_gives_every_slice_with_its_labels(synthetic, kind):
    config = load_data_config(synthetic / f"{kind}.yaml")
    assert config.format == kind and config.context == 1 and config.pixels["window"] == [-1000, 400]
    split = build_split(config, "train")
    assert len(split) == 2 * 9  # the acquisition axis: the 3 mm one, the last
    assert [c.name for c in split.categories] == CLASSES and split.pixels.intensity == "window"
    case = split.cases[0]
    volume = read_volume(case.image)
    labels = read_volume(case.label, label=True).array
    for index in (0, 4, 8):
        raw, target = split.load(index)  # as read: HU, three neighbouring slices
        image = split.training_image(index)  # on the model's scale
        assert image.shape == raw.shape == (36, 40, 3) and image.dtype == np.float32
        for c, source in enumerate((max(index - 1, 0), index, min(index + 1, 8))):
            np.testing.assert_array_equal(raw[:, :, c], take_slice(volume.array, 2, source))
            np.testing.assert_allclose(image[:, :, c], _ct(take_slice(volume.array, 2, source)), atol=1e-3)
        np.testing.assert_array_equal(target.semantic_map().numpy(), take_slice(labels, 2, index))
        assert not target.is_thing.any()


def test_zscore_slices_share_the_volumes_ranges(synthetic):
    images, masks = synthetic / "nifti" / "images" / "train", synthetic / "nifti" / "labels" / "train"
    split = read_volume_split(images, masks, num_classes=4)
    split.pixels = replace(MRI, channels=1, mean=(0.0,), std=(1.0,))
    volume = read_volume(split.cases[0].image).array
    low, high = volume_ranges(volume, split.pixels)
    for index in (0, 4):
        image = split.training_image(index)
        assert image.shape == (36, 40, 1)
        expected = np.clip(take_slice(volume, 2, index), low[0], high[0])
        np.testing.assert_allclose(image[:, :, 0], (expected - low[0]) * 255 / (high[0] - low[0]), atol=1e-3)


def test_axis_choice_and_bad_options(synthetic, tmp_path):
    images, masks = synthetic / "nifti" / "images" / "train", synthetic / "nifti" / "labels" / "train"
    sagittal = read_volume_split(images, masks, num_classes=4, axis=0)
    assert len(sagittal) == 2 * 40 and sagittal.load(0)[0].shape == (9, 36, 3)
    with pytest.raises(ConfigError, match="slice axis"):
        read_volume_split(images, masks, num_classes=4, axis=3)
    base = yaml.safe_load((synthetic / "nifti.yaml").read_text())
    for change, message in (({"axis": 3}, "axis: expected auto, 0, 1 or 2"),
                            ({"context": -1}, "context: expected a whole number"),
                            ({"context": 2, "channels": 3}, "context 2 stacks 5 slices as channels but channels is 3"),
                            ({"classes": None, "num_classes": None}, "needs 'classes' or 'num_classes'")):
        data = {k: v for k, v in {**base, **change}.items() if v is not None}
        path = synthetic / "bad.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(DatasetError, match=message):
            load_data_config(path)
    path.unlink()


def test_thing_classes_become_one_instance_per_component(synthetic):
    images, masks = synthetic / "nifti" / "images" / "train", synthetic / "nifti" / "labels" / "train"
    classes = [CategoryInfo(i, n, n == "kidney") for i, n in enumerate(CLASSES)]
    split = read_volume_split(images, masks, classes=classes)
    _, target = split.load(4)  # a middle slice: both kidneys
    kidneys = target.labels == 2
    assert int(kidneys.sum()) == 2 and target.is_thing[kidneys].all()


def test_pairing_by_name_with_nnunet_channel_suffix(tmp_path, synthetic):
    images, masks = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(synthetic / "nifti" / "labels" / "train", masks)
    images.mkdir()
    for p in sorted((synthetic / "nifti" / "images" / "train").iterdir()):
        shutil.copy(p, images / p.name.replace(".nii.gz", "_0000.nii.gz"))
    split = read_volume_split(images, masks, num_classes=4)
    assert [c.name for c in split.cases] == ["case_train_000", "case_train_001"]


def test_missing_or_mismatched_labels_are_reported_or_skipped(tmp_path, synthetic):
    images, masks = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(synthetic / "nifti" / "images" / "train", images)
    shutil.copytree(synthetic / "nifti" / "labels" / "train", masks)
    (masks / "case_train_001.nii.gz").unlink()
    with pytest.raises(DatasetError, match="label volume not found") as info:
        read_volume_split(images, masks, num_classes=4)
    assert info.value.path == str(images / "case_train_001.nii.gz")
    split = read_volume_split(images, masks, num_classes=4, skip_bad=True)
    assert len(split.cases) == 1 and len(split.skipped) == 1


def test_label_values_outside_the_classes_name_the_label_file(synthetic):
    images, masks = synthetic / "nifti" / "images" / "train", synthetic / "nifti" / "labels" / "train"
    split = read_volume_split(images, masks, num_classes=3)  # the files hold 0..3
    with pytest.raises(DatasetError, match=r"values \[3\] that are not class indices") as info:
        split.load(4)
    assert info.value.path == str(split.cases[0].label)
