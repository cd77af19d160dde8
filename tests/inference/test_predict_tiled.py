"""``predict`` with tiles: georeferenced rasters give a label GeoTIFF (same CRS, transform and
size) and GeoJSON beside the usual outputs; large images tile on request; one bad file does not
stop the folder; bad tiling options are refused before the model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former import save_model
from mask2former.errors import ConfigError
from mask2former.inference.predict_files import predict_files
from tests.conftest import random_image

rasterio = pytest.importorskip("rasterio")

from mask2former.data.synthetic_raster import EPSG, ORIGIN, write_synthetic_raster  # noqa: E402


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "tiny.safetensors")


@pytest.fixture
def raster(tmp_path):
    return write_synthetic_raster(tmp_path / "scene", height=200, width=260, tile=96, seed=4)


def test_raster_predicts_tiled_with_its_georeference_kept(tmp_path, checkpoint, raster):
    out = tmp_path / "out"
    report = predict_files(checkpoint, [raster.image], out, "all", tile=96, overlap=0.25, overlays=False,
                           score_threshold=0.0)
    assert report.ok and report.written == [raster.image]
    with rasterio.open(raster.image) as src, rasterio.open(out / "geo" / "image_semantic.tif") as sem, \
            rasterio.open(out / "geo" / "image_panoptic.tif") as pan:
        for ds in (sem, pan):
            assert ds.crs == src.crs and ds.crs.to_epsg() == EPSG
            assert ds.transform == src.transform and (ds.height, ds.width) == (src.height, src.width)
        semantic = sem.read(1)
        segments = pan.read(1)
    assert semantic.max() < 4
    png = np.asarray(Image.open(out / "semantic" / "image.png"))
    np.testing.assert_array_equal(png, semantic)  # the streamed GeoTIFF and the PNG agree
    index = json.loads((out / "panoptic.json").read_text())
    info = index["annotations"][0]["segments_info"]
    assert sorted(s["id"] for s in info) == sorted(set(np.unique(segments).tolist()) - {0})
    assert all(s["area"] == int((segments == s["id"]).sum()) for s in info)
    features = json.loads((out / "geo" / "image_instances.geojson").read_text())
    instances = json.loads((out / "instances.json").read_text())
    assert features["type"] == "FeatureCollection" and len(features["features"]) == len(instances)
    west, north = ORIGIN
    for feature in features["features"]:
        ring = np.array(feature["geometry"]["coordinates"][0] if feature["geometry"]["type"] == "Polygon"
                        else feature["geometry"]["coordinates"][0][0])
        assert (ring[:, 0] >= west).all() and (ring[:, 0] <= west + 260 * 0.5).all()
        assert (ring[:, 1] <= north).all() and (ring[:, 1] >= north - 200 * 0.5).all()


def test_a_raster_past_the_usual_outputs_limit_gets_the_same_panoptic_geotiff(tmp_path, tiny_model, raster,
                                                                             monkeypatch):
    """Past ``USUAL_OUTPUT_MAX_PIXELS`` no map is kept: the panoptic GeoTIFF is written core by
    core from the merge and equals the one written beside the usual outputs."""
    from mask2former.inference import tiled_files

    tiny_model.config.inference.object_mask_threshold = 0.0  # random weights: keep their segments
    checkpoint = save_model(tiny_model, tmp_path / "keeps_segments.safetensors")
    usual, streamed = tmp_path / "usual", tmp_path / "streamed"
    predict_files(checkpoint, [raster.image], usual, "panoptic", tile=96, overlays=False, score_threshold=0.0)
    monkeypatch.setattr(tiled_files, "USUAL_OUTPUT_MAX_PIXELS", 100 * 100)
    report = predict_files(checkpoint, [raster.image], streamed, "panoptic", tile=96, overlays=False,
                           score_threshold=0.0)
    assert report.ok and json.loads((streamed / "panoptic.json").read_text())["annotations"] == []
    with rasterio.open(usual / "geo" / "image_panoptic.tif") as a, \
            rasterio.open(streamed / "geo" / "image_panoptic.tif") as b:
        assert b.crs == a.crs and b.transform == a.transform and b.dtypes == a.dtypes
        np.testing.assert_array_equal(b.read(1), a.read(1))
        assert len(np.unique(a.read(1))) > 1


def test_one_bad_file_does_not_stop_the_folder(tmp_path, checkpoint, raster):
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "scene.tif").write_bytes(raster.image.read_bytes())
    Image.fromarray(random_image(300, 180, 1)).save(folder / "big.png")
    Image.fromarray(random_image(48, 56, 2)).save(folder / "small.png")
    (folder / "broken.tif").write_bytes(b"II*\x00 broken")
    out = tmp_path / "out"
    report = predict_files(checkpoint, [folder], out, "semantic", tile=96, overlays=True)
    assert sorted(p.name for p in report.written) == ["big.png", "scene.tif", "small.png"]
    assert [p.name for p, _ in report.failed] == ["broken.tif"]
    assert np.asarray(Image.open(out / "semantic" / "big.png")).shape == (300, 180)  # tiled at full size
    assert (out / "overlays" / "big_semantic.png").exists() and (out / "overlays" / "scene_semantic.png").exists()
    assert sorted(p.name for p in (out / "geo").iterdir()) == ["scene_semantic.tif"]  # only the raster has a CRS


def test_tile_zero_predicts_a_raster_in_one_pass(tmp_path, checkpoint, raster):
    out = tmp_path / "out"
    report = predict_files(checkpoint, [raster.image], out, "semantic", tile=0, overlays=False)
    assert report.ok and not (out / "geo").exists() and (out / "semantic" / "image.png").exists()


@pytest.mark.parametrize(("tile", "overlap", "match"), [(16, 0.25, "--tile"), (-1, 0.25, "--tile"),
                                                        (256, 0.75, "--overlap")])
def test_bad_tiling_options_fail_before_the_model_loads(tmp_path, raster, tile, overlap, match):
    with pytest.raises(ConfigError, match=match):
        predict_files(tmp_path / "missing.pt", [raster.image], tmp_path / "out", tile=tile, overlap=overlap)


def test_a_16_bit_image_is_mapped_once_whole_not_tile_by_tile(tmp_path, checkpoint, monkeypatch):
    """A large 16-bit PNG predicted tiled: every tile is the matching part of the whole image
    mapped by the model's rule (its percentiles), so a dark tile is not stretched to look bright."""
    import mask2former.inference.tiled_files as tiled_files
    from mask2former.config import PixelConfig
    from mask2former.data.image import read_image
    from mask2former.data.intensity import OnModelScale, to_model_input
    from mask2former.data.tile_grid import TileGrid

    values = np.tile(np.linspace(0, 60000, 240, dtype=np.float64), (200, 1)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    whole = to_model_input(read_image(tmp_path / "gray16.png"), PixelConfig())
    seen: list[np.ndarray] = []
    real = tiled_files.predictor_tile_fn

    def capture(predictor):
        run = real(predictor)

        def tile_fn(tile, tasks):
            seen.append(tile)
            return run(tile, tasks)

        return tile_fn

    monkeypatch.setattr(tiled_files, "predictor_tile_fn", capture)
    report = predict_files(checkpoint, [tmp_path / "gray16.png"], tmp_path / "out", "semantic", tile=96,
                           overlays=False)
    assert report.ok and len(seen) > 4
    for window, tile in zip(TileGrid(200, 240, 96, 0.25).windows(), seen):
        assert not isinstance(tile, OnModelScale) and tile.dtype == np.float32
        np.testing.assert_array_equal(tile, whole[window.slices][..., :tile.shape[2]])
    assert seen[0].max() < 128 < seen[-1].min()  # the dark left tile stays dark, the bright right one bright
