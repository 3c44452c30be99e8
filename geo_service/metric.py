"""Metres done right: every distance and buffer goes through a local metric CRS or the spheroid.

Inside China the metric CRS is the CGCS2000 3-degree Gauss–Krüger zone (EPSG:4534–4554, central
meridians 75°E–135°E) whose central meridian is nearest the geometry; elsewhere the WGS 84 UTM
zone. A 3-degree zone keeps the scale error under 0.02 % up to its edge, so the 8–20 m rail
protection zones come out to the centimetre. Geometries far apart are handled zone by zone,
never in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

WGS84 = pyproj.CRS.from_epsg(4326)
GEOD = pyproj.Geod(ellps="WGS84")

# CGCS2000 3-degree Gauss-Krüger zones without zone prefix: EPSG:4534 is CM 75°E … 4554 is CM 135°E.
_GK_FIRST_EPSG, _GK_FIRST_CM, _GK_LAST_CM = 4534, 75, 135
_CHINA_BOUNDS = (73.0, 3.0, 136.5, 54.0)


def metric_crs(lon: float, lat: float) -> pyproj.CRS:
    """The metric CRS for a place: its CGCS2000 3-degree GK zone in China, else its UTM zone."""
    west, south, east, north = _CHINA_BOUNDS
    if west <= lon <= east and south <= lat <= north:
        return _gk_zone(_nearest_gk_meridian(lon))
    return _utm_zone(int((lon + 180) // 6) % 60 + 1, lat >= 0)


def metric_crs_for(geoms: gpd.GeoSeries) -> pyproj.CRS:
    """One metric CRS for a whole set of geometries (in EPSG:4326), from their centre.

    Right for a city or a county. For data spread over several zones use ``to_metric_by_zone``
    (as ``buffer_m`` does) or the spheroid.
    """
    minx, miny, maxx, maxy = geoms.total_bounds
    return metric_crs((minx + maxx) / 2, (miny + maxy) / 2)


def distance_m(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Shortest distance in metres between two aligned arrays of geometries in EPSG:4326.

    Points go straight to the spheroid (pyproj.Geod); other geometries are measured in the
    metric zone of each pair's midpoint.
    """
    ga, gb = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if ga.shape != gb.shape:
        raise ValueError(f"distance_m needs aligned arrays, got {ga.shape} and {gb.shape}")
    if ga.size == 0:
        return np.zeros(0)
    if np.all(shapely.get_type_id(ga) == 0) and np.all(shapely.get_type_id(gb) == 0):
        _, _, dist = GEOD.inv(
            shapely.get_x(ga), shapely.get_y(ga), shapely.get_x(gb), shapely.get_y(gb)
        )
        return np.asarray(dist, dtype=float)
    centres = shapely.centroid(shapely.union(shapely.centroid(ga), shapely.centroid(gb)))
    out = np.empty(ga.size, dtype=float)
    for crs, index in _group_by_zone(centres).items():
        to_metric = _transformer(WGS84, crs)
        out[index] = shapely.distance(
            shapely.transform(ga[index], to_metric, interleaved=False),
            shapely.transform(gb[index], to_metric, interleaved=False),
        )
    return out


def buffer_m(geoms: gpd.GeoSeries, distance: float | Sequence[float]) -> gpd.GeoSeries:
    """Buffer geometries in EPSG:4326 by ``distance`` metres; the result is in EPSG:4326.

    Each geometry is buffered in its own zone, with 32 segments a quarter circle so a circle's
    area is within 0.02 % of π r².
    """
    if geoms.crs is not None and not pyproj.CRS(geoms.crs).equals(WGS84):
        raise ValueError(f"buffer_m expects EPSG:4326 geometries, got {geoms.crs}")
    values = np.asarray(geoms.values, dtype=object)
    dist = np.broadcast_to(np.asarray(distance, dtype=float), values.shape)
    out = np.empty(values.size, dtype=object)
    for crs, index in _group_by_zone(shapely.centroid(values)).items():
        forward, back = _transformer(WGS84, crs), _transformer(crs, WGS84)
        projected = shapely.transform(values[index], forward, interleaved=False)
        buffered = shapely.buffer(projected, dist[index], quad_segs=32)
        out[index] = shapely.transform(buffered, back, interleaved=False)
    return gpd.GeoSeries(out, index=geoms.index, crs=WGS84)


def to_metric_by_zone(geoms: gpd.GeoSeries) -> dict[pyproj.CRS, gpd.GeoSeries]:
    """Split geometries in EPSG:4326 by metric zone and project each group into its zone."""
    values = np.asarray(geoms.values, dtype=object)
    groups = {}
    for crs, index in _group_by_zone(shapely.centroid(values)).items():
        part = geoms.iloc[index]
        groups[crs] = gpd.GeoSeries(
            shapely.transform(values[index], _transformer(WGS84, crs), interleaved=False),
            index=part.index,
            crs=crs,
        )
    return groups


def _group_by_zone(points: NDArray[np.object_]) -> dict[pyproj.CRS, NDArray[np.intp]]:
    """Indices of ``points`` grouped by the metric CRS of each point."""
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    lon, lat = np.nan_to_num(lon), np.nan_to_num(lat)  # empty geometries: any zone will do
    west, south, east, north = _CHINA_BOUNDS
    in_china = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
    keys = np.where(
        in_china,
        np.clip(np.round(lon / 3) * 3, _GK_FIRST_CM, _GK_LAST_CM),  # a GK central meridian
        -(((lon + 180) // 6) % 60 + 1) - np.where(lat >= 0, 0, 100),  # a UTM zone, negated
    ).astype(int)
    groups: dict[pyproj.CRS, NDArray[np.intp]] = {}
    for key in np.unique(keys):
        if key > 0:
            crs = _gk_zone(int(key))
        else:
            zone = -key
            crs = _utm_zone(zone if zone < 100 else zone - 100, zone < 100)
        groups[crs] = np.flatnonzero(keys == key)
    return groups


def _nearest_gk_meridian(lon: float) -> int:
    return int(min(max(round(lon / 3) * 3, _GK_FIRST_CM), _GK_LAST_CM))


@lru_cache(maxsize=64)
def _gk_zone(central_meridian: int) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(_GK_FIRST_EPSG + (central_meridian - _GK_FIRST_CM) // 3)


@lru_cache(maxsize=128)
def _utm_zone(zone: int, north: bool) -> pyproj.CRS:
    return pyproj.CRS.from_epsg((32600 if north else 32700) + zone)


@lru_cache(maxsize=256)
def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> Any:
    """A cached ``(x, y) -> (x, y)`` array transform, lon/lat order on both sides."""
    return pyproj.Transformer.from_crs(source, target, always_xy=True).transform
