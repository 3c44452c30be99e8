"""The population raster: persons per 0.001° cell in EPSG:4326 (deliberately not the DEM's CRS).

Density (persons/km²) is a dense core (about 19,000 at its centre, still over 10,000 at 2 km),
suburbs of 2,000–5,000 around it and around two satellite towns, a thin rural population on the
valley floor, nothing on the hillsides, and each village's residents spread around its centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from scipy import ndimage

from geo_service.demo.region import (
    HALF_U,
    HALF_V,
    SUBURBS,
    Array,
    across,
    core_centre,
    floor_half_width,
    point_at,
    river_half_width,
    write_geotiff,
)
from geo_service.demo.scene import Scene

CELL_DEG = 0.001
POPULATION_NODATA = -9999.0


def write_population(scene: Scene, path: Path) -> np.ndarray:
    """Write the population GeoTIFF; returns the persons-per-cell array."""
    west, south, east, north = _extent(scene)
    cols, rows = round((east - west) / CELL_DEG), round((north - south) / CELL_DEG)
    lon = west + (np.arange(cols) + 0.5) * CELL_DEG
    lat = north - (np.arange(rows) + 0.5) * CELL_DEG
    lon2, lat2 = np.meshgrid(lon, lat)
    u, v = scene.frame.lonlat_to_local(lon2.ravel(), lat2.ravel())
    u, v = u.reshape(lon2.shape), v.reshape(lon2.shape)
    cell_km2 = (CELL_DEG * 111.32 * np.cos(np.radians(lat2))) * (CELL_DEG * 110.574)
    persons = _density(scene, u, v) * cell_km2 + _villages(scene, u, v)
    persons = persons.astype(np.float32)
    write_geotiff(
        path,
        persons,
        crs="EPSG:4326",
        transform=Affine(CELL_DEG, 0, west, 0, -CELL_DEG, north),
        nodata=POPULATION_NODATA,
        units="persons per cell",
        description="Resident population (demo region, fictional)",
    )
    return persons


def _density(scene: Scene, u: Array, v: Array) -> Array:
    """Persons per km² of the city, its suburbs and the rural floor (villages come separately)."""
    cu, cv = core_centre()
    r = np.hypot(u - cu, v - cv)
    core = 19_000 * np.exp(-((r / 2_300) ** 4)) + 3_800 * np.exp(-((r / 4_800) ** 2))
    towns = np.zeros_like(u)
    for tu, td, _, peak in SUBURBS:
        tu, tv = point_at(tu, td)
        towns += peak * np.exp(-((np.hypot(u - tu, v - tv) / 800) ** 2))
    d, width = np.abs(across(u, v)), floor_half_width(u)
    on_floor = np.clip((width + 150 - d) / 300, 0.0, 1.0)
    noise = ndimage.gaussian_filter(scene.rng("population").standard_normal(u.shape), sigma=4)
    texture = 1 + 0.12 * noise / noise.std()
    density = (core + towns + 30.0) * on_floor * np.clip(texture, 0.6, 1.4)
    density[d < river_half_width(u)] = 0.0  # nobody lives on the river
    density[shapely.contains_xy(scene.lines["chemical_park"], u, v)] *= 0.1  # works, not homes
    return np.asarray(density)


def _villages(scene: Scene, u: Array, v: Array) -> Array:
    """Each village's residents spread (normal, cut off at 3σ) around its centre."""
    persons = np.zeros_like(u)
    for village in scene.villages:
        cu, cv = village.centre
        dist = np.hypot(u - cu, v - cv)
        weight = np.where(
            dist <= 3 * village.spread_m, np.exp(-0.5 * (dist / village.spread_m) ** 2), 0.0
        )
        if weight.sum() > 0:
            persons += village.residents * weight / weight.sum()
    return persons


def _extent(scene: Scene) -> tuple[float, float, float, float]:
    """The region's bounds in lon/lat, widened to whole cells."""
    edge = np.linspace(-1, 1, 41)
    us = np.concatenate([edge * HALF_U, np.full(41, HALF_U), edge * HALF_U, np.full(41, -HALF_U)])
    vs = np.concatenate([np.full(41, -HALF_V), edge * HALF_V, np.full(41, HALF_V), edge * HALF_V])
    lon, lat = scene.frame.local_to_lonlat(us, vs)
    west, east = np.floor(lon.min() / CELL_DEG) * CELL_DEG, np.ceil(lon.max() / CELL_DEG) * CELL_DEG
    south, north = (
        np.floor(lat.min() / CELL_DEG) * CELL_DEG,
        np.ceil(lat.max() / CELL_DEG) * CELL_DEG,
    )
    return round(west, 6), round(south, 6), round(east, 6), round(north, 6)
