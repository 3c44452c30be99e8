"""Population inside buffers and corridors against the analytic value on uniform rasters."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from geo_service.metric import metric_crs
from geo_service.risk.exposure import population_in, population_within

DENSITY_PER_KM2 = 10_000.0


def _uniform(
    path: Path, crs: str, transform: rasterio.Affine, shape: tuple[int, int], per_cell: float
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=shape[1],
        height=shape[0],
        count=1,
        dtype="float64",
        crs=crs,
        transform=transform,
        nodata=-1,
    ) as dst:
        dst.write(np.full(shape, per_cell), 1)
    return path


@pytest.mark.parametrize("lat", [22.5, 30.55, 45.7])
def test_circle_in_a_projected_raster_matches_pi_r2(tmp_path: Path, lat: float) -> None:
    lon = 110.6
    crs = metric_crs(lon, lat)
    x, y = gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326).to_crs(crs).iloc[0].coords[0]
    cell = 100.0
    raster = _uniform(
        tmp_path / "pop.tif",
        crs.to_wkt(),
        from_origin(x - 5000, y + 5000, cell, cell),
        (100, 100),
        DENSITY_PER_KM2 * (cell / 1000) ** 2,
    )
    for radius in (500.0, 1000.0, 3000.0):
        got = population_within(raster, gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326), radius)[
            0
        ]
        expected = DENSITY_PER_KM2 * np.pi * (radius / 1000) ** 2
        assert got == pytest.approx(expected, rel=0.01)


def test_circle_in_a_geographic_raster_matches_pi_r2(tmp_path: Path) -> None:
    # 0.001° cells hold different areas by latitude: a uniform density puts area × density in each
    lon0, lat0, step, n = 110.5, 30.65, 0.001, 200
    rows = np.arange(n)
    lat_centres = lat0 - (rows + 0.5) * step
    cell_km2 = (step * 111.32 * np.cos(np.radians(lat_centres))) * (step * 110.574)
    data = np.repeat((DENSITY_PER_KM2 * cell_km2)[:, None], n, axis=1)
    path = tmp_path / "pop4326.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=1,
        dtype="float64",
        crs="EPSG:4326",
        transform=from_origin(lon0, lat0, step, step),
        nodata=-1,
    ) as dst:
        dst.write(data, 1)
    got = population_within(path, gpd.GeoSeries([shapely.Point(110.6, 30.55)], crs=4326), 2000.0)[0]
    assert got == pytest.approx(DENSITY_PER_KM2 * np.pi * 4.0, rel=0.01)


def test_partial_cells_nodata_and_empty_areas(tmp_path: Path) -> None:
    crs = metric_crs(110.6, 30.55)
    raster = _uniform(
        tmp_path / "pop.tif", crs.to_wkt(), from_origin(500000, 3380000, 100, 100), (10, 10), 100.0
    )
    with rasterio.open(raster, "r+") as dst:
        data = dst.read(1)
        data[:, 5:] = -1  # the east half is nodata
        dst.write(data, 1)
    # a 150 m × 100 m box straddling cells: 1.5 cells of 100 people
    box = gpd.GeoSeries([shapely.box(500000, 3379900, 500150, 3380000)], crs=crs).to_crs(4326)
    over_nodata = gpd.GeoSeries([shapely.box(500600, 3379500, 500900, 3379800)], crs=crs).to_crs(
        4326
    )
    areas = gpd.GeoSeries([box.iloc[0], over_nodata.iloc[0], None, shapely.Polygon()], crs=4326)
    got = population_in(raster, areas)
    assert got[0] == pytest.approx(150.0, rel=0.01)
    assert got[1:].tolist() == [0.0, 0.0, 0.0]
