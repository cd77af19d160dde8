"""GeoTIFF rasters on real files written by rasterio: metadata, windows, training windows, and
the writers that keep the georeference (label GeoTIFF, GeoJSON in the raster's CRS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mask2former.config import CategoryInfo, PixelConfig
from mask2former.data import intensity
from mask2former.data.tile_grid import Window
from mask2former.errors import DatasetError, ImageError
from mask2former.inference.tile_merge import MaskCrop, MergedInstance

rasterio = pytest.importorskip("rasterio")
from affine import Affine  # noqa: E402  (rasterio's dependency)

from mask2former.data import geotiff  # noqa: E402
from mask2former.data.synthetic_raster import (  # noqa: E402
    CLASSES,
    EPSG,
    ORIGIN,
    RESOLUTION,
    write_synthetic_raster,
)
from mask2former.inference.georef_writers import (  # noqa: E402
    LabelGeoTiff,
    write_instances_geojson,
)

CATEGORIES = [CategoryInfo(id=i, name=c["name"], isthing=c["isthing"]) for i, c in enumerate(CLASSES)]


@pytest.fixture
def scene(tmp_path):
    return write_synthetic_raster(tmp_path / "scene", height=300, width=420, tile=128, seed=2)


def test_metadata_is_read_without_pixels(scene):
    info = geotiff.read_raster_info(scene.image)
    assert (info.height, info.width, info.count, info.dtype) == (300, 420, 3, "uint8")
    assert rasterio.crs.CRS.from_wkt(info.crs).to_epsg() == EPSG
    assert info.affine() == Affine(RESOLUTION, 0, ORIGIN[0], 0, -RESOLUTION, ORIGIN[1])
    assert info.georeferenced and geotiff.is_georeferenced_raster(scene.image)
    assert not geotiff.is_georeferenced_raster(scene.data_yaml)


def test_a_window_is_the_same_pixels_as_the_full_read(scene):
    with rasterio.open(scene.image) as ds:
        full = ds.read()
        part = geotiff.read_window(ds, Window(37, 101, 64, 90))
    np.testing.assert_array_equal(part, full[:, 37:101, 101:191])
    with geotiff.RasterSource(scene.image) as source:
        rgb = source.read(Window(37, 101, 64, 90))
    assert rgb.shape == (64, 90, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, full[:, 37:101, 101:191].transpose(1, 2, 0))


def test_uint16_four_band_raster_maps_alike_in_every_window(tmp_path):
    scene = write_synthetic_raster(tmp_path / "ms", height=260, width=300, tile=128, bands=4, dtype="uint16")
    info = geotiff.read_raster_info(scene.image)
    assert (info.count, info.dtype) == (4, "uint16")
    pixels = PixelConfig(channels=4, mean=(0.0,) * 4, std=(1.0,) * 4)
    with geotiff.RasterSource(scene.image, pixels) as source:
        assert source.ranges is not None and len(source.ranges[0]) == 4  # every band, not the first three
        whole = source.read(Window(0, 0, 260, 300))
        part = source.read(Window(100, 120, 50, 60))
    assert whole.dtype == np.uint8 and whole.shape == (260, 300, 4)
    np.testing.assert_array_equal(part, whole[100:150, 120:180])  # one set of ranges per raster, not per tile
    assert whole.std() > 10  # the 12-bit counts are spread over 0..255, not crushed
    with rasterio.open(scene.image) as ds:
        raw = ds.read().transpose(1, 2, 0)
    # the project's percentile rule, applied by intensity.py to the whole raster (it is small enough
    # here that the decimated read is the whole raster): the same values, rounded
    expected = np.rint(intensity.apply_ranges(raw, intensity.rule_ranges(raw, pixels)))
    np.testing.assert_array_equal(whole, expected.astype(np.uint8))
    with pytest.raises(ImageError, match="4 channels but the model takes 3"):
        geotiff.RasterSource(scene.image)


def test_training_evaluation_and_tiles_give_the_model_the_same_input(tmp_path):
    """A uint16 window read for training, the same window as evaluation loads it and fed to a
    Predictor, and the tile the tiler reads are the same values: no path re-stretches a window."""
    scene = write_synthetic_raster(tmp_path / "ms", height=260, width=300, tile=128, bands=4, dtype="uint16")
    for rule in ("percentile", "zscore", "window"):
        pixels = PixelConfig(channels=4, mean=(0.0,) * 4, std=(1.0,) * 4, intensity=rule,
                             window=(400.0, 3000.0) if rule == "window" else ())
        split = geotiff.read_geotiff_split(scene.image, scene.label, classes=CATEGORIES, tile=96, tiles_per_raster=3)
        split.pixels = pixels
        with geotiff.RasterSource(scene.image, pixels) as source:
            for i, record in enumerate(split.records):
                trained = split.training_image(i)
                loaded, _ = split.load(i)
                tile = source.read(record.extra["window"])
                np.testing.assert_array_equal(trained, tile)
                np.testing.assert_array_equal(intensity.to_model_input(loaded, pixels), tile)  # a Predictor's mapping
                assert tile.dtype == np.uint8 and tile.shape[2] == 4 and tile.max() > 100, rule


def test_nodata_pixels_are_left_out_of_the_ranges(tmp_path):
    path = tmp_path / "nodata.tif"
    values = np.linspace(100, 200, 64 * 64, dtype=np.float32).reshape(1, 64, 64)
    values[0, :8] = -9999.0
    with rasterio.open(path, "w", driver="GTiff", height=64, width=64, count=1, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32633", transform=Affine(1, 0, 500_000, 0, -1, 5_200_000)) as ds:
        ds.write(values)
    with geotiff.RasterSource(path, PixelConfig(channels=1, mean=(0.0,), std=(1.0,))) as source:
        assert source.ranges is not None and source.ranges[0][0] > 100  # -9999 did not stretch the range
        window = source.read(Window(0, 0, 64, 64))
    assert (window[:8] == 0).all() and window[8:].max() == 255


def test_missing_or_broken_raster_is_an_image_error_naming_the_file(tmp_path):
    with pytest.raises(ImageError, match="nothing.tif: raster file not found"):
        geotiff.read_raster_info(tmp_path / "nothing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00 not a tiff")
    with pytest.raises(ImageError, match="bad.tif: cannot read the raster"):
        geotiff.read_raster_info(bad)
    assert not geotiff.is_georeferenced_raster(bad)


def test_training_windows_read_image_and_label_windows(scene):
    split = geotiff.read_geotiff_split(scene.image, scene.label, classes=CATEGORIES, tile=96, tiles_per_raster=5,
                                       seed=3, name="train")
    assert len(split) == 5 and split.format == "geotiff"
    with rasterio.open(scene.image) as ds, rasterio.open(scene.label) as lab:
        image, labels = ds.read(), lab.read(1)
    again = geotiff.read_geotiff_split(scene.image, scene.label, classes=CATEGORIES, tile=96, tiles_per_raster=5,
                                       seed=3)
    assert [r.extra["window"] for r in again.records] == [r.extra["window"] for r in split.records]  # fixed by seed
    for i, record in enumerate(split.records):
        win = record.extra["window"]
        assert (win.height, win.width) == (96, 96)
        pixels, target = split.load(i)
        np.testing.assert_array_equal(pixels, image[:, win.row:win.row + 96, win.col:win.col + 96].transpose(1, 2, 0))
        np.testing.assert_array_equal(target.semantic_map().numpy(), labels[win.slices])
        things = target.labels[target.is_thing]
        assert set(things.tolist()) <= {2, 3}


def test_grid_windows_cover_the_raster_for_evaluation(scene):
    split = geotiff.read_geotiff_split(scene.image, scene.label, classes=CATEGORIES, tile=128, sampling="grid")
    covered = np.zeros((300, 420), np.int32)
    for record in split.records:
        covered[record.extra["window"].slices] += 1
        assert max(record.height, record.width) <= 128 and min(record.height, record.width) >= 100
    assert (covered == 1).all() and len(split) == 3 * 4  # every pixel scored once
    with pytest.raises(DatasetError, match="sampling"):
        geotiff.read_geotiff_split(scene.image, scene.label, classes=CATEGORIES, sampling="tiles")


def test_training_window_refuses_a_label_raster_that_does_not_line_up(scene, tmp_path):
    with rasterio.open(scene.label) as lab:
        profile, values = lab.profile, lab.read()
    profile.update(transform=Affine.translation(10, 0) @ profile["transform"])
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(shifted, "w", **profile) as out:
        out.write(values)
    with pytest.raises(DatasetError, match="georeference"):
        geotiff.read_geotiff_split(scene.image, shifted, classes=CATEGORIES)
    values[0, 5, 5] = 7
    bad = tmp_path / "bad_values.tif"
    with rasterio.open(bad, "w", **{**profile, "transform": geotiff.read_raster_info(scene.label).affine()}) as out:
        out.write(values)
    split = geotiff.read_geotiff_split(scene.image, bad, classes=CATEGORIES, tile=500)
    with pytest.raises(DatasetError, match=r"bad_values.tif: label raster holds values \[7\]"):
        split.load(0)


def test_label_geotiff_keeps_crs_transform_and_size(scene, tmp_path):
    info = geotiff.read_raster_info(scene.image)
    labels = np.random.default_rng(0).integers(0, 4, size=(300, 420), dtype=np.uint8)
    path = tmp_path / "labels.tif"
    with LabelGeoTiff(path, info) as out:
        out.write(Window(0, 0, 300, 420), labels)
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == EPSG and ds.transform == info.affine()
        assert (ds.height, ds.width, ds.count, ds.dtypes[0]) == (300, 420, 1, "uint8")
        assert ds.compression is not None and ds.compression.value.lower() == "deflate"
        np.testing.assert_array_equal(ds.read(1), labels)


def test_label_geotiff_written_window_by_window_and_removed_when_interrupted(scene, tmp_path):
    info = geotiff.read_raster_info(scene.image)
    path = tmp_path / "blocks.tif"
    with LabelGeoTiff(path, info, dtype="uint16") as out:
        out.write(Window(0, 0, 150, 420), np.full((150, 420), 300, np.uint16))
        out.write(Window(150, 0, 150, 420), np.full((150, 420), 7, np.uint16))
    with rasterio.open(path) as ds:
        values = ds.read(1)
    assert (values[:150] == 300).all() and (values[150:] == 7).all()
    partial = tmp_path / "partial.tif"
    with pytest.raises(RuntimeError), LabelGeoTiff(partial, info) as out:
        out.write(Window(0, 0, 10, 10), np.ones((10, 10), np.uint8))
        raise RuntimeError("stopped")
    assert not partial.exists()


def test_geojson_polygons_are_in_the_raster_crs_at_the_objects_positions(scene, tmp_path):
    info = geotiff.read_raster_info(scene.image)
    rows, cols = np.arange(300), np.arange(420)
    instances = []
    for obj in scene.objects:
        crop = MaskCrop.from_mask(obj.mask(rows, cols))
        assert crop is not None
        instances.append(MergedInstance(label=obj.label, score=0.75, mask=crop))
    path = write_instances_geojson(tmp_path / "objects.geojson", instances, info, [c["name"] for c in CLASSES])
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    assert data["crs"]["properties"]["name"] == f"urn:ogc:def:crs:EPSG::{EPSG}"
    assert len(data["features"]) == len(scene.objects)
    for feature, obj in zip(data["features"], scene.objects):
        assert feature["properties"]["class"] == CLASSES[obj.label]["name"] and feature["properties"]["score"] == 0.75
        assert feature["geometry"]["type"] == "Polygon"
        ring = np.array(feature["geometry"]["coordinates"][0])
        x0, y1 = ORIGIN[0] + obj.col0 * RESOLUTION, ORIGIN[1] - obj.row0 * RESOLUTION  # UTM metres
        x1, y0 = ORIGIN[0] + obj.col1 * RESOLUTION, ORIGIN[1] - obj.row1 * RESOLUTION
        if obj.kind == "rect":
            np.testing.assert_allclose([ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()],
                                       [x0, y0, x1, y1])
        else:  # a disc: pixel-edged, inside its box, centred on it
            assert x0 - 1e-6 <= ring[:, 0].min() and ring[:, 0].max() <= x1 + 1e-6
            assert y0 - 1e-6 <= ring[:, 1].min() and ring[:, 1].max() <= y1 + 1e-6
            centre = ((ring[:, 0].min() + ring[:, 0].max()) / 2, (ring[:, 1].min() + ring[:, 1].max()) / 2)
            np.testing.assert_allclose(centre, ((x0 + x1) / 2, (y0 + y1) / 2), atol=RESOLUTION)


def test_data_yaml_geotiff_folders_and_window_options(tmp_path):
    from mask2former.data.data_yaml import build_split, load_data_config

    for name, seed in (("north", 1), ("south", 2)):
        scene = write_synthetic_raster(tmp_path / name, height=200, width=240, tile=96, seed=seed)
        for kind, path in (("images", scene.image), ("masks", scene.label)):
            (tmp_path / kind).mkdir(exist_ok=True)
            (tmp_path / kind / f"{name}.tif").write_bytes(path.read_bytes())
    classes = "".join(f"  - {{name: {c['name']}, isthing: {str(c['isthing']).lower()}}}\n" for c in CLASSES)
    data = tmp_path / "DATA.yaml"
    data.write_text(f"format: geotiff\ntrain: {{images: images, masks: masks}}\nval: {{images: images, masks: masks}}\n"
                    f"classes:\n{classes}ignore_label: 255\ntile: 96\ntiles_per_raster: 7\n")
    train, val = build_split(data, "train"), build_split(data, "val")
    assert len(train) == 2 * 7 and {r.image_path.name for r in train.records} == {"north.tif", "south.tif"}
    assert all((r.height, r.width) == (96, 96) for r in train.records)
    assert len(val) == 2 * 3 * 3 and sum(r.height * r.width for r in val.records) == 2 * 200 * 240
    assert [c.isthing for c in train.categories] == [c["isthing"] for c in CLASSES]
    for bad, match in (("tile: 8\n", "tile: expected a whole number >= 32"),
                       ("tiles_per_raster: 0\n", "tiles_per_raster: expected a whole number >= 1"),
                       ("window: 96\n", "window"), ("mask_values: {1: 1}\n", "not used by format 'geotiff'")):
        text = f"format: geotiff\ntrain: {{images: images, masks: masks}}\nclasses:\n{classes}{bad}"
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(DatasetError, match=match):
            build_split(load_data_config(tmp_path / "bad.yaml"), "train")
    (tmp_path / "bad.yaml").write_text("format: geotiff\ntrain: {images: images, masks: masks}\n")
    with pytest.raises(DatasetError, match="format 'geotiff' needs 'classes'"):
        load_data_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(f"format: geotiff\ntrain: {{images: images/north.tif, masks: masks}}\n"
                                       f"classes:\n{classes}")
    with pytest.raises(DatasetError, match="two raster files or two folders"):
        build_split(tmp_path / "bad.yaml", "train")
