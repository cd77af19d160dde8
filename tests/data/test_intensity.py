"""Intensity rules: each rule's numbers, 8-bit images bit-identical to before, channel counts
matched or refused by name, the view for people, and streamed dataset statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from mask2former.config import ModelConfig, PixelConfig, from_dict, imagenet_stats, to_dict
from mask2former.data.collate import pad_and_normalize
from mask2former.data.data_yaml import data_config_from_dict, pixel_config
from mask2former.data.intensity import (
    ChannelStats,
    OnModelScale,
    apply_intensity,
    apply_ranges,
    display_image,
    match_channels,
    resize_channels,
    rule_ranges,
    to_model_input,
)
from mask2former.data.transforms import resize_image
from mask2former.errors import ConfigError, DatasetError, ImageError
from mask2former.inference.predictor import Predictor
from tests.conftest import random_image

# --------------------------------------------------------------------------- each rule's numbers


def test_window_clips_and_scales_to_0_255():
    ct = np.array([[-1100, -1000, -300, 400, 500, 50]], dtype=np.int16)[..., None]
    out = apply_intensity(ct, "window", (-1000, 400))
    assert out.dtype == np.float32
    assert out[0, :, 0].tolist() == [0.0, 0.0, 127.5, 255.0, 255.0, pytest.approx(191.25)]  # (50+1000)/1400*255


def test_percentile_clips_each_channel_to_its_0_5_and_99_5_percentiles():
    values = np.arange(1000, dtype=np.uint16).reshape(10, 100)  # percentiles 4.995 and 994.005
    image = np.stack([values, values * 7 + 3000, np.full_like(values, 42)], axis=2)
    out = apply_intensity(image, "percentile")
    flat = out.reshape(-1, 3)
    for channel in (0, 1):  # the same numbers whatever the channel's own scale
        column = flat[:, channel]
        assert column[0] == 0.0 and column[4] == 0.0 and column[999] == 255.0 and column[995] == 255.0
        assert column[500] == pytest.approx(127.62891679558346, rel=1e-6)  # (500 - 4.995) * 255 / 989.01
        assert column[100] == pytest.approx(24.49548032881366, rel=1e-6)
    assert (flat[:, 2] == 0).all()  # a constant channel has no range


def test_dataset_rule_keeps_raw_values_for_the_dataset_mean_and_std():
    raw = np.array([[[1000.0, -2.0], [3000.0, 6.0]]], dtype=np.float32)  # [1, 2, 2]
    pixels = PixelConfig(channels=2, intensity="dataset", mean=(2000.0, 2.0), std=(1000.0, 4.0))
    mapped = to_model_input(raw, pixels)
    assert np.array_equal(mapped, raw)
    values, _ = pad_and_normalize([torch.from_numpy(mapped).permute(2, 0, 1)], pixels.mean, pixels.std, 1)
    assert values[0, :, 0, :].tolist() == [[-1.0, 1.0], [-1.0, 1.0]]


@pytest.mark.parametrize("rule", ["percentile", "window", "dataset"])
def test_eight_bit_images_pass_unchanged_under_every_rule(rule):
    rgb = random_image(30, 40, 3)
    window = (10.0, 20.0) if rule == "window" else ()
    out = to_model_input(rgb, PixelConfig(intensity=rule, window=window))
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)


def test_the_predictor_feeds_8_bit_images_bit_identically_to_before(tiny_model, tmp_path):
    rgb = random_image(50, 70, 4)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    predictor = Predictor(tiny_model)
    size = predictor.test_size(50, 70)
    before = torch.from_numpy(np.ascontiguousarray(resize_image(rgb, size))).permute(2, 0, 1)  # yesterday's path
    for item in (tmp_path / "photo.png", rgb, Image.fromarray(rgb)):
        prepared = predictor.prepare(item)
        assert prepared.tensor.dtype == torch.uint8 and torch.equal(prepared.tensor, before)


def test_non_finite_pixels_are_refused_by_name():
    image = np.ones((4, 4, 1), dtype=np.float32)
    image[1, 2] = np.nan
    with pytest.raises(ImageError, match=r"scan\.tif: 1 pixels are NaN or infinite"):
        apply_intensity(image, "percentile", source="scan.tif")


# --------------------------------------------------------------------------- channels


def test_one_channel_is_replicated_for_an_rgb_model_and_gray_rgb_kept_as_one():
    gray = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    three = match_channels(gray, 3)
    assert three.shape == (3, 4, 3) and all(np.array_equal(three[..., c], gray[..., 0]) for c in range(3))
    rgb_gray = np.repeat(random_image(5, 6)[..., :1], 3, axis=2)
    assert np.array_equal(match_channels(rgb_gray, 1), rgb_gray[..., :1])


def test_a_channel_count_the_model_does_not_take_names_the_file_and_both_counts(tiny_model, tmp_path):
    stack = np.random.default_rng(0).integers(0, 4000, (64, 64, 4)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgbn.tif", stack, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageError, match=r"rgbn\.tif: the image has 4 channels but the model takes 3"):
        Predictor(tiny_model).prepare(tmp_path / "rgbn.tif")
    with pytest.raises(ImageError, match="the image has 3 channels but the model takes 1"):
        match_channels(random_image(5, 6), 1)  # a colour image, not a gray one read as RGB


def test_16_bit_gray_png_reaches_an_rgb_model_replicated_and_percentile_mapped(tiny_model, tmp_path):
    values = np.random.default_rng(1).integers(0, 65535, (64, 80)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    prepared = Predictor(tiny_model).prepare(tmp_path / "deep.png")
    expected = apply_intensity(values[..., None], "percentile")[..., 0]
    assert prepared.tensor.dtype == torch.float32 and prepared.tensor.shape == (3, 64, 80)
    for c in range(3):
        assert np.allclose(prepared.tensor[c].numpy(), expected, atol=1e-4)


def test_an_image_already_on_the_model_scale_is_not_mapped_again(tiny_model):
    mapped = np.linspace(0, 255, 64 * 64 * 3, dtype=np.float32).reshape(64, 64, 3)
    prepared = Predictor(tiny_model).prepare(OnModelScale(mapped))
    assert np.array_equal(prepared.tensor.permute(1, 2, 0).numpy(), mapped)


def test_resize_channels_is_pillows_filter_channel_by_channel():
    rgb = random_image(37, 53, 7)
    assert np.array_equal(resize_channels(rgb, (20, 31)), resize_image(rgb, (20, 31)))
    floats = np.random.default_rng(0).random((37, 53, 5)).astype(np.float32)
    out = resize_channels(floats, (20, 31))
    reference = np.asarray(Image.fromarray(floats[..., 4], mode="F").resize((31, 20), Image.Resampling.BILINEAR))
    assert out.shape == (20, 31, 5) and out.dtype == np.float32 and np.array_equal(out[..., 4], reference)


# --------------------------------------------------------------------------- the view for people


def test_display_view_of_16_bit_and_n_channel_images():
    values = np.arange(1000, dtype=np.float32).reshape(10, 100, 1)
    view = display_image(values)
    assert view.shape == (10, 100, 3) and view.dtype == np.uint8
    assert view[0, 0].tolist() == [0, 0, 0] and view[-1, -1].tolist() == [255, 255, 255]
    stack = np.random.default_rng(0).integers(0, 256, (8, 9, 5), dtype=np.uint8)
    chosen = display_image(stack, PixelConfig(channels=5, mean=(0.0,) * 5, std=(1.0,) * 5, display_channels=(3, 2, 1)))
    assert np.array_equal(chosen, stack[..., [3, 2, 1]])
    assert np.array_equal(display_image(stack, PixelConfig(channels=5, mean=(0.0,) * 5, std=(1.0,) * 5)),
                          stack[..., :3])
    raw = PixelConfig(intensity="dataset", channels=1, mean=(5.0,), std=(2.0,))
    assert display_image(values, raw)[-1, -1].tolist() == [255, 255, 255]  # raw values shown stretched
    rgb = random_image(6, 7)
    assert display_image(rgb) is rgb  # 8-bit RGB as it always was


# --------------------------------------------------------------------------- dataset statistics


def test_channel_stats_streamed_equal_numpy_over_all_pixels():
    rng = np.random.default_rng(0)
    images = [rng.normal(1000 * (i + 1), 50 + 10 * i, size=(h, w, 3)).astype(np.float32)
              for i, (h, w) in enumerate([(10, 12), (31, 7), (5, 5), (64, 40)])]
    stats = ChannelStats()
    for image in images:
        stats.add(image)
    every = np.concatenate([im.reshape(-1, 3).astype(np.float64) for im in images])
    assert np.allclose(stats.mean, every.mean(0), rtol=1e-12)
    assert np.allclose(stats.std, every.std(0), rtol=1e-10)
    assert stats.count == len(every)


# --------------------------------------------------------------------------- config and DATA.yaml


def test_pixel_settings_are_checked_by_name():
    ok = PixelConfig(channels=4, mean=(1.0,) * 4, std=(2.0,) * 4, intensity="window", window=(-1000.0, 400.0))
    ok.check("pixels")
    cases = [
        (dict(channels=4), r"pixels\.mean must be a list of 4 numbers"),
        (dict(intensity="window"), r"pixels\.window must be a list of 2 numbers"),
        (dict(intensity="window", window=(400.0, -1000.0)), r"pixels\.window must be \(low, high\) with low < high"),
        (dict(window=(0.0, 1.0)), r"pixels\.window must be empty unless pixels\.intensity is 'window'"),
        (dict(intensity="minmax"), r"pixels\.intensity must be one of percentile, window, zscore, dataset"),
        (dict(display_channels=(3,)), r"pixels\.display_channels\[0\] must be an integer in \[0, 2\]"),
        (dict(display_channels=(0, 1)), r"pixels\.display_channels must be empty"),
    ]
    for fields, message in cases:
        with pytest.raises(ConfigError, match=message):
            PixelConfig(**fields).check("pixels")


def test_configs_stored_before_these_settings_load_unchanged():
    stored = to_dict(ModelConfig())
    for key in ("channels", "intensity", "window", "display_channels"):
        del stored["pixels"][key]
    stored["inference"]["pixel_mean"] = stored["pixels"].pop("mean")  # the layout before the pixels section
    loaded = from_dict(ModelConfig, stored).validate()
    assert loaded.pixels == PixelConfig()


def test_data_yaml_channels_and_rules_become_the_model_pixels(tmp_path):
    base = {"format": "semantic", "num_classes": 2, "train": {"images": "i", "masks": "m"}}
    where = tmp_path / "DATA.yaml"

    def parse(**keys):
        return data_config_from_dict({**base, **keys}, base_dir=tmp_path, source=where)

    four = pixel_config(parse(channels=4), PixelConfig())
    assert four.channels == 4 and (four.mean, four.std) == imagenet_stats(4)
    assert four.mean == (123.675, 116.28, 103.53, 123.675)  # the RGB statistics cycled, as the adapted filters
    assert pixel_config(parse(channels=1), PixelConfig()).mean == (pytest.approx(114.495),)
    window = pixel_config(parse(window=[-1000, 400]), PixelConfig())
    assert (window.intensity, window.window) == ("window", (-1000.0, 400.0))
    back = pixel_config(parse(intensity="percentile"), window)  # the model's window belongs to its window rule
    assert (back.intensity, back.window) == ("percentile", ())
    stats = pixel_config(parse(channels=2, intensity="dataset", mean=[10, 20], std=[1, 2]), PixelConfig())
    assert (stats.mean, stats.std, stats.intensity) == ((10.0, 20.0), (1.0, 2.0), "dataset")
    with pytest.raises(DatasetError, match=r"DATA\.yaml: intensity 'dataset' .* run `mask2former stats`"):
        pixel_config(parse(intensity="dataset"), PixelConfig())
    with pytest.raises(DatasetError, match=r"DATA\.yaml: window must be \(low, high\) with low < high"):
        parse(window=[5, 1])
    with pytest.raises(DatasetError, match=r"DATA\.yaml: mean must be a list of 4 numbers"):
        parse(channels=4, mean=[1, 2, 3], std=[1, 2, 3, 4])
    with pytest.raises(DatasetError, match="unknown key 'chanels'.*did you mean 'channels'"):
        parse(chanels=4)


def test_ranges_fixed_once_map_tiles_as_the_whole_image_is_mapped():
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 900.0, size=(60, 80, 2)).astype(np.float32)
    whole = apply_intensity(image, "percentile")
    ranges = rule_ranges(image, PixelConfig(channels=2, mean=(0.0, 0.0), std=(1.0, 1.0)))
    assert ranges is not None
    tile = apply_ranges(image[10:40, 25:70], ranges)
    assert np.array_equal(tile, whole[10:40, 25:70])
    window = PixelConfig(channels=2, mean=(0.0, 0.0), std=(1.0, 1.0), intensity="window", window=(0.0, 1000.0))
    assert np.array_equal(apply_ranges(image, rule_ranges(image[:5], window)), apply_intensity(image, "window",
                                                                                             (0.0, 1000.0)))
    assert rule_ranges(random_image(8, 8), PixelConfig()) is None  # 8-bit images pass as they are
