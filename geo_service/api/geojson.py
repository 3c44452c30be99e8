"""A layer's canonical frame as an RFC 7946 FeatureCollection (a plain dict, ready for JSON).

The feature id is the Feature's ``id``; the catalogue fields (and ``source_crs``) are its
properties: dates as ISO 8601 text, lists as arrays, missing values as ``null`` (or left out
with ``drop_nulls``). Polygons are wound as RFC 7946 asks (exterior rings counter-clockwise).
"""

from __future__ import annotations

import json
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.catalogue import Layer


def feature_collection(
    layer: Layer,
    frame: gpd.GeoDataFrame,
    *,
    decimals: int | None = None,
    drop_nulls: bool = False,
    system_columns: bool = True,
) -> dict[str, Any]:
    """The features of ``frame`` (a canonical frame of ``layer``) as a FeatureCollection.

    ``decimals`` rounds coordinates (6 decimals ≈ 0.1 m); ``system_columns`` keeps
    ``source_crs`` among the properties.
    """
    names = [f.name for f in layer.fields] + (["source_crs"] if system_columns else [])
    columns = {name: _json_values(layer, name, frame[name]) for name in names if name in frame}
    geometries = _geometries(frame.geometry.to_numpy(), decimals)
    features = []
    for row, (feature_id, geometry) in enumerate(zip(frame["id"], geometries, strict=True)):
        properties = {name: values[row] for name, values in columns.items()}
        if drop_nulls:
            properties = {k: v for k, v in properties.items() if v is not None}
        features.append(
            {
                "type": "Feature",
                "id": str(feature_id),
                "geometry": geometry,
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float] | None:
    """``(minlon, minlat, maxlon, maxlat)`` of the frame's geometries, None when it has none."""
    geometries = frame.geometry.to_numpy()
    present = geometries[~(shapely.is_missing(geometries) | shapely.is_empty(geometries))]
    if not len(present):
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(present)
    return float(minx), float(miny), float(maxx), float(maxy)


def _json_values(layer: Layer, name: str, series: pd.Series) -> list[Any]:
    spec = layer.field_map.get(name)
    if spec is not None and spec.type == "date":
        return [None if pd.isna(d) else _iso(d) for d in pd.to_datetime(series)]
    if spec is not None and spec.type == "geometry":
        return [None if v is None else shapely.geometry.mapping(v) for v in series]
    if spec is not None and spec.type == "list":
        return [None if v is None else [str(item) for item in v] for v in series]
    # masked dtypes (Int64, Float64, boolean) give Python scalars and None for <NA>
    return list(cast(Any, series).to_numpy(dtype=object, na_value=None))


def _iso(moment: pd.Timestamp) -> str:
    """``2022-12-31`` for a date, ``2022-12-31T08:30:00`` when it carries a time of day."""
    return moment.date().isoformat() if moment == moment.normalize() else moment.isoformat()


def _geometries(geometries: np.ndarray, decimals: int | None) -> list[dict[str, Any] | None]:
    geometries = geometries.copy()
    geometries[shapely.is_empty(geometries)] = None
    if decimals is not None:
        geometries = shapely.transform(geometries, lambda xy: np.round(xy, decimals))
    if hasattr(shapely, "orient_polygons"):  # shapely >= 2.1
        geometries = shapely.orient_polygons(geometries, exterior_cw=False)
    texts = shapely.to_geojson(geometries)
    return [None if text is None else json.loads(text) for text in texts]
