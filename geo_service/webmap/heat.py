"""Points of the population heat layer, from the population raster, bounded in number.

The raster is read once at a coarser resolution (cells averaged: GDAL reads with no ``sum``,
and only relative weights are drawn) such that there are about ``max_points`` cells; if more of
them hold people, the most populated are kept. Weights are relative (the densest point is 1):
the heat layer shows where people live, the buffer query says how many.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling

from geo_service.metric import WGS84

POPULATION = "population"
DECIMALS = 5  # ≈ 1 m, far finer than a heat blob


HeatPoint = tuple[float, float, float]


def heat_points(path: Path, max_points: int) -> list[HeatPoint]:
    """``(lat, lon, weight)`` of at most ``max_points`` populated cells, weight in (0, 1].

    Kept per file version: every map page needs them, and a large raster is slow to read.
    """
    stat = path.stat()
    return list(_heat_points(str(path), stat.st_mtime_ns, stat.st_size, max_points))


@lru_cache(maxsize=8)
def _heat_points(path: str, _mtime_ns: int, _size: int, max_points: int) -> tuple[HeatPoint, ...]:
    with rasterio.open(path) as source:
        factor = max(1, math.ceil(math.sqrt(source.width * source.height / max(max_points, 1))))
        shape = (max(1, source.height // factor), max(1, source.width // factor))
        values = source.read(1, out_shape=shape, resampling=Resampling.average, masked=True)
        transform = source.transform * source.transform.scale(
            source.width / shape[1], source.height / shape[0]
        )
        crs = source.crs
    people = np.ma.filled(values.astype("float64"), 0.0)
    rows, cols = np.nonzero(people > 0)
    weights = people[rows, cols]
    if len(weights) > max_points:
        keep = np.argsort(weights, kind="stable")[-max_points:]
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    if not len(weights):
        return ()
    xs, ys = rasterio.transform.xy(transform, rows, cols)
    lons, lats = Transformer.from_crs(crs, WGS84, always_xy=True).transform(xs, ys)
    scale = float(weights.max())
    return tuple(
        (round(float(lat), DECIMALS), round(float(lon), DECIMALS), round(float(w) / scale, 3))
        for lat, lon, w in zip(lats, lons, weights, strict=True)
    )
