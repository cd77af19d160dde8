"""GeoTIFF rasters end to end on the CPU: a synthetic raster -> train a few iterations -> eval on
its grid windows -> predict tiled, with the georeference kept; and objects placed across tile
borders coming out of ``predict`` as one instance (one GeoJSON feature, one score) each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mask2former import save_model
from mask2former.cli import main
from mask2former.data.tile_grid import TileGrid, Window
from mask2former.inference.predict_files import predict_files

rasterio = pytest.importorskip("rasterio")

from mask2former.data.data_yaml import build_split  # noqa: E402
from mask2former.data.synthetic_raster import (  # noqa: E402
    COLOURS,
    EPSG,
    ORIGIN,
    RESOLUTION,
    write_synthetic_raster,
)
from tests.inference.test_tiling import oracle  # noqa: E402


def test_four_band_raster_trains_evaluates_and_predicts_tiled(tmp_path):
    """A 4-band 12-bit raster (RGB + near-infrared): every band feeds the model, training reads
    random windows, eval the grid windows (mIoU, PQ, AP: the classes mark things), predict runs
    tiled and writes label GeoTIFFs with the input's CRS, transform and size."""
    scene = write_synthetic_raster(tmp_path / "scene", height=300, width=360, tile=128, bands=4, dtype="uint16")
    run, out = tmp_path / "run", tmp_path / "pred"
    # augmentation "none": the training transforms' padding takes 3-channel images only
    assert main(["-q", "train", "--data", str(scene.data_yaml), "--preset", "tiny", "--output", str(run),
                 "--iters", "3", "--set", "num_workers=0", "input.augmentation=none", "eval_period=0"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["pixels"]["channels"] == 4
    assert main(["-q", "eval", "--checkpoint", str(run / "model_final.pt"), "--data", str(scene.data_yaml),
                 "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"semantic.mIoU", "panoptic.PQ", "instance.AP"} <= set(metrics)
    assert 0 <= metrics["semantic.mIoU"] <= 100
    assert main(["-q", "predict", "--checkpoint", str(run / "model_final.pt"), "--input", str(scene.image),
                 "--output", str(out), "--task", "all", "--tile", "128", "--overlap", "0.25"]) == 0
    with rasterio.open(scene.image) as src:
        for name in ("image_semantic.tif", "image_panoptic.tif"):
            with rasterio.open(out / "geo" / name) as ds:
                assert ds.crs == src.crs and ds.crs.to_epsg() == EPSG and ds.transform == src.transform
                assert (ds.height, ds.width, ds.count) == (src.height, src.width, 1)
                values = ds.read(1)
            if name == "image_semantic.tif":
                assert values.max() < 4
    features = json.loads((out / "geo" / "image_instances.geojson").read_text())
    assert features["crs"]["properties"]["name"] == f"urn:ogc:def:crs:EPSG::{EPSG}"
    assert (out / "overlays" / "image_semantic.png").exists()


def test_synth_kind_raster_writes_a_dataset_that_loads(tmp_path):
    assert main(["-q", "synth", "--kind", "raster", str(tmp_path / "raster")]) == 0
    data = tmp_path / "raster" / "DATA.yaml"
    train, val = build_split(data, "train"), build_split(data, "val")
    assert train.format == val.format == "geotiff" and len(train) == 64
    with rasterio.open(tmp_path / "raster" / "image.tif") as ds:
        assert ds.crs.to_epsg() == EPSG
    with rasterio.open(tmp_path / "raster" / "val_image.tif") as ds:  # the held-out scene, smaller
        assert ds.crs.to_epsg() == EPSG and ds.height < 1000 and ds.width < 1200
        covered = np.zeros((ds.height, ds.width), np.int32)
    for record in val.records:  # the evaluation windows cover the held-out raster exactly once
        covered[record.extra["window"].slices] += 1
    assert (covered == 1).all()
    image, target = train.load(0)
    assert image.shape[:2] == (train.records[0].height, train.records[0].width) and len(target) > 0


def test_objects_across_tile_borders_are_one_instance_each_in_the_written_files(tmp_path, tiny_model,
                                                                                monkeypatch):
    """``predict`` on a raster whose things straddle the borders of its tiles, with a tile
    "model" that sees the synthetic colours (so what is tested is the tiling, merging and
    writing): each object is one GeoJSON feature with one score, in map coordinates, and one
    panoptic segment."""
    import mask2former.inference.tiled_files as tiled_files

    scene = write_synthetic_raster(tmp_path / "scene", height=420, width=560, tile=128, overlap=0.25, seed=5)
    grid = TileGrid(scene.height, scene.width, 128, 0.25)
    crossing = [o for o in scene.objects
                if sum(grid.window(k).intersect(Window(o.row0, o.col0, o.row1 - o.row0, o.col1 - o.col0)) is not None
                       for k in range(len(grid))) > 1]
    assert len(crossing) == len(scene.objects) >= 8  # every object is cut by a tile border
    monkeypatch.setattr(tiled_files, "predictor_tile_fn", lambda predictor: oracle(COLOURS, (2, 3)))
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    report = predict_files(checkpoint, [scene.image], out, "all", tile=128, overlap=0.25, overlays=False,
                           score_threshold=0.3)
    assert report.ok
    features = json.loads((out / "geo" / "image_instances.geojson").read_text())["features"]
    assert len(features) == len(scene.objects)
    assert len(json.loads((out / "instances.json").read_text())) == len(scene.objects)
    boxes = []
    for feature in features:
        rings = ([feature["geometry"]["coordinates"][0]] if feature["geometry"]["type"] == "Polygon"
                 else [p[0] for p in feature["geometry"]["coordinates"]])
        points = np.concatenate([np.asarray(r) for r in rings])
        boxes.append((points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()))
        assert 0.5 <= feature["properties"]["score"] <= 1.0
    for obj in scene.objects:
        x = ORIGIN[0] + (obj.col0 + obj.col1) / 2 * RESOLUTION  # the object's centre, UTM metres
        y = ORIGIN[1] - (obj.row0 + obj.row1) / 2 * RESOLUTION
        hits = [k for k, (x0, y0, x1, y1) in enumerate(boxes) if x0 <= x <= x1 and y0 <= y <= y1]
        assert len(hits) == 1, obj
        feature = features[hits[0]]
        assert feature["properties"]["class_id"] == obj.label
        width = (boxes[hits[0]][2] - boxes[hits[0]][0]) / RESOLUTION
        assert abs(width - (obj.col1 - obj.col0)) <= 1  # the whole object, not the piece of one tile
    with rasterio.open(out / "geo" / "image_panoptic.tif") as ds:
        segments = ds.read(1)
    info = json.loads((out / "panoptic.json").read_text())["annotations"][0]["segments_info"]
    things = {s["id"] for s in info if s["category_id"] in (2, 3)}
    assert len(things) == len(scene.objects)
    rows, cols = np.arange(scene.height), np.arange(scene.width)
    for obj in scene.objects:
        values, counts = np.unique(segments[obj.mask(rows, cols)], return_counts=True)
        assert values[counts.argmax()] in things and counts.max() > 0.95 * counts.sum()
