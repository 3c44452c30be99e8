"""People inside areas, from the population raster: partial cells weighted by how much is covered.

Areas come in EPSG:4326 and are reprojected into the raster's own CRS (any CRS works); the sum
of each cell's count times the fraction of the cell inside the area is done by exactextract.
Buffers are drawn in metres in each geometry's own metric zone first (``metric.buffer_m``).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from exactextract import exact_extract
from numpy.typing import NDArray

from geo_service.metric import buffer_m


def population_in(raster: Path, areas: gpd.GeoSeries) -> NDArray[np.float64]:
    """Persons inside each area (EPSG:4326 polygons); 0 for empty or missing areas."""
    out = np.zeros(len(areas))
    values = np.asarray(areas.values, dtype=object)
    present = ~(shapely.is_missing(values) | shapely.is_empty(values))
    if not present.any():
        return out
    with rasterio.open(raster) as src:
        crs = src.crs
    polygons = gpd.GeoDataFrame(
        {"row": np.flatnonzero(present)},
        geometry=gpd.GeoSeries(values[present], crs=4326).to_crs(crs),
        crs=crs,
    )
    sums = exact_extract(str(raster), polygons, "sum", include_cols=["row"], output="pandas")
    out[sums["row"].to_numpy()] = np.nan_to_num(sums["sum"].to_numpy(dtype=float))
    return out


def population_within(
    raster: Path, geometries: gpd.GeoSeries, radius_m: float
) -> NDArray[np.float64]:
    """Persons within ``radius_m`` metres of each geometry (EPSG:4326)."""
    return population_in(raster, buffer_m(geometries, radius_m))
