"""Outputs that keep a raster's georeference (rasterio, extra ``geo``).

A label GeoTIFF has the input raster's CRS, transform and size; it is written block by block
(tiled, DEFLATE-compressed, BigTIFF when needed) as the tiler finishes blocks, so the label map
of a huge raster never has to be in memory. Instances become GeoJSON polygons in the raster's
CRS: each mask crop is traced by ``rasterio.features.shapes`` with the raster's affine shifted to
the crop, so coordinates are map coordinates (metres for UTM), not pixels. RFC 7946 GeoJSON
assumes WGS 84; the raster's CRS is named in the legacy ``crs`` member, which GDAL/QGIS read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mask2former.data.geotiff import RasterInfo
from mask2former.data.tile_grid import Window
from mask2former.errors import ImageError
from mask2former.inference.tile_merge import MergedInstance

BLOCK = 256  # GeoTIFF internal tile size


def label_dtype(max_value: int) -> str:
    return "uint8" if max_value <= 255 else "uint16" if max_value <= 65535 else "uint32"


class LabelGeoTiff:
    """A one-band label GeoTIFF with ``info``'s CRS, transform and size, written window by
    window (``write``); use ``with``. A failed run removes the partial file."""

    def __init__(self, path: str | os.PathLike, info: RasterInfo, *, dtype: str = "uint8",
                 nodata: int | None = None) -> None:
        import rasterio

        self.path = Path(path)
        profile: dict[str, Any] = {
            "driver": "GTiff", "height": info.height, "width": info.width, "count": 1, "dtype": dtype,
            "crs": info.crs, "transform": info.affine(), "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        if info.height >= BLOCK and info.width >= BLOCK:
            profile.update(tiled=True, blockxsize=BLOCK, blockysize=BLOCK)
        if nodata is not None:
            profile["nodata"] = nodata
        try:
            self.dataset = rasterio.open(self.path, "w", **profile)
        except (rasterio.errors.RasterioError, OSError) as e:
            raise ImageError(f"{self.path}: cannot write the label GeoTIFF ({str(e)[:200]})") from None

    def write(self, window: Window, labels: np.ndarray) -> None:
        """``labels [h, w]`` at ``window`` of the raster."""
        from rasterio.windows import Window as RioWindow

        self.dataset.write(labels.astype(self.dataset.dtypes[0], copy=False)[None],
                           window=RioWindow(window.col, window.row, window.width, window.height))

    def close(self, *, keep: bool = True) -> None:
        self.dataset.close()
        if not keep:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> LabelGeoTiff:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is None)


def instance_features(instances: Sequence[MergedInstance], info: RasterInfo, class_names: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """GeoJSON features (Polygon or MultiPolygon in the raster's CRS) of merged instances."""
    from affine import Affine
    from rasterio.features import shapes

    transform = info.affine()
    features = []
    for k, inst in enumerate(instances):
        crop = inst.mask
        where = transform @ Affine.translation(crop.col, crop.row)
        polygons = [geom["coordinates"] for geom, value in
                    shapes(crop.mask.astype(np.uint8), mask=crop.mask, connectivity=8, transform=where) if value == 1]
        if not polygons:
            continue
        geometry = ({"type": "Polygon", "coordinates": polygons[0]} if len(polygons) == 1
                    else {"type": "MultiPolygon", "coordinates": polygons})
        features.append({"type": "Feature", "id": k + 1, "geometry": geometry,
                         "properties": {"class": class_names[inst.label], "class_id": inst.label,
                                        "score": round(float(inst.score), 6), "area_px": inst.area}})
    return features


def crs_member(info: RasterInfo) -> dict[str, Any] | None:
    """The legacy GeoJSON ``crs`` member naming the raster's CRS (``EPSG:n`` when it has a code)."""
    if info.crs is None:
        return None
    from rasterio.crs import CRS

    crs = CRS.from_wkt(info.crs)
    epsg = crs.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg is not None else crs.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def write_instances_geojson(path: str | os.PathLike, instances: Sequence[MergedInstance], info: RasterInfo,
                            class_names: Sequence[str]) -> Path:
    """A GeoJSON FeatureCollection of ``instances`` in the raster's CRS."""
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    crs = crs_member(info)
    if crs is not None:
        collection["crs"] = crs
    collection["features"] = instance_features(instances, info, class_names)
    path = Path(path)
    try:
        path.write_text(json.dumps(collection), encoding="utf-8")
    except OSError as e:
        raise ImageError(f"{path}: cannot write the GeoJSON ({e.strerror or e})") from None
    return path
