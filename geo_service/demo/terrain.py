"""The terrain: a river valley between hills, with side valleys, as a 30 m DEM.

The valley floor rises gently from the river; beyond its edge the hills climb to a ridge 5 km
away. Each side valley is carved into the hills along a meandering thalweg that falls steadily
towards the main valley, so a steepest-descent (D8) path from any point on a thalweg runs down
that side valley to the floor and on to the river. Random relief (a smoothed noise field and a
train of spurs) is kept off the floor and off the thalwegs, where it could make pits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import Polygon, shape

from geo_service.demo.region import (
    DEM_CELL,
    HALF_U,
    HALF_V,
    RIDGE_DISTANCE,
    SIDE_VALLEYS,
    Array,
    Frame,
    SideValley,
    across,
    floor_half_width,
    ridge_relief,
    river_half_width,
    river_z,
    write_geotiff,
)

DEM_NODATA = -9999.0
_D8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass
class Dem:
    """Elevations (float32, metres) on the region's 30 m grid; row 0 is the northern edge."""

    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns."""
        return (int(self.z.shape[0]), int(self.z.shape[1]))

    def cell_centre(self, row: int, col: int) -> tuple[float, float]:
        """Local metres of a cell's centre."""
        return (-HALF_U + (col + 0.5) * DEM_CELL, HALF_V - (row + 0.5) * DEM_CELL)

    def cell_of(self, u: float, v: float) -> tuple[int, int]:
        """The cell holding a point."""
        return int((HALF_V - v) // DEM_CELL), int((u + HALF_U) // DEM_CELL)

    def sample(self, u: Array, v: Array) -> Array:
        """Elevation at points, interpolated bilinearly between cell centres."""
        cols = (np.asarray(u, dtype=float) + HALF_U) / DEM_CELL - 0.5
        rows = (HALF_V - np.asarray(v, dtype=float)) / DEM_CELL - 0.5
        return ndimage.map_coordinates(self.z, [rows, cols], order=1, mode="nearest").astype(float)

    def lowest_near(self, u: float, v: float, radius: float) -> tuple[float, float]:
        """Centre of the lowest cell within ``radius`` metres of a point."""
        row, col = self.cell_of(u, v)
        k = int(radius // DEM_CELL)
        window = self.z[row - k : row + k + 1, col - k : col + k + 1]
        i, j = np.unravel_index(int(np.argmin(window)), window.shape)
        return self.cell_centre(row - k + int(i), col - k + int(j))

    def trace(self, u: float, v: float, max_length: float) -> tuple[np.ndarray, np.ndarray]:
        """The D8 steepest-descent path from a point: cell centres and the length run to each.

        Each step goes to the neighbour with the largest drop per metre (diagonals are
        √2 cells away); the path stops at a pit, at the edge, or after ``max_length`` metres.
        """
        row, col = self.cell_of(u, v)
        points, lengths, run = [self.cell_centre(row, col)], [0.0], 0.0
        rows, cols = self.shape
        while run < max_length:
            best, step = 0.0, None
            for dr, dc in _D8:
                r, c = row + dr, col + dc
                if not (0 <= r < rows and 0 <= c < cols):
                    continue
                dist = DEM_CELL * (1.4142135623730951 if dr and dc else 1.0)
                slope = (float(self.z[row, col]) - float(self.z[r, c])) / dist
                if slope > best:
                    best, step = slope, (r, c, dist)
            if step is None:
                break
            row, col, dist = step
            run += dist
            points.append(self.cell_centre(row, col))
            lengths.append(run)
        return np.array(points), np.array(lengths)

    def transform(self, frame: Frame) -> Affine:
        """The grid's geotransform in the metric CRS."""
        return Affine(DEM_CELL, 0, frame.x0 - HALF_U, 0, -DEM_CELL, frame.y0 + HALF_V)

    def write(self, path: Path, frame: Frame) -> None:
        """Write the DEM as a tiled, compressed GeoTIFF in the metric CRS."""
        write_geotiff(
            path,
            self.z,
            crs=frame.crs,
            transform=self.transform(frame),
            nodata=DEM_NODATA,
            units="m",
            description="Terrain elevation (demo region, fictional)",
        )


def build_dem(rng: np.random.Generator) -> Dem:
    """The region's DEM; ``rng`` draws the random relief."""
    rows, cols = int(2 * HALF_V / DEM_CELL), int(2 * HALF_U / DEM_CELL)
    u = -HALF_U + (np.arange(cols) + 0.5) * DEM_CELL
    v = HALF_V - (np.arange(rows) + 0.5) * DEM_CELL
    uu, vv = np.meshgrid(u, v)
    d = across(uu, vv)
    a, width = np.abs(d), floor_half_width(uu)
    s = np.maximum(a - width, 0.0)
    floor = (
        river_z(uu)
        + 4 * (1 - np.exp(-((a / river_half_width(uu)) ** 2)))
        + 14 * np.minimum(a / width, 1.0) ** 1.5
    )
    hill, thalweg = _hill(s, ridge_relief(uu, d > 0)), _thalweg(s)
    carve = _carve(uu, s, d > 0)
    # relief grows with the hills, so the foothills stay clear of pits, and never fills more
    # than half a side valley's depth, so the valley stays a valley
    relief = _relief(rng, uu, d > 0) * np.clip(hill / 300, 0.0, 1.0) ** 1.5
    relief = np.maximum(relief, -0.5 * (hill - thalweg)) * (1 - carve)
    z = floor + hill - (hill - thalweg) * carve + relief
    return Dem(z.astype(np.float32))


def reservoir_polygon(dem: Dem, valley: SideValley, dam_s: float, depth: float) -> Polygon:
    """The lake behind a dam across ``valley`` at ``dam_s``: the valley's cells below the crest."""
    du, dv = valley.thalweg_point(dam_s)
    crest = float(dem.sample(np.array([du]), np.array([dv]))[0]) + depth
    uu, vv = np.meshgrid(
        -HALF_U + (np.arange(dem.shape[1]) + 0.5) * DEM_CELL,
        HALF_V - (np.arange(dem.shape[0]) + 0.5) * DEM_CELL,
    )
    north = across(uu, vv) > 0
    s = np.abs(across(uu, vv)) - floor_half_width(uu)
    in_valley = (north == (valley.side == "north")) & (np.abs(uu - valley.centre_u(s)) < 600)
    lake = in_valley & (s > dam_s) & (dem.z < crest)
    local = Affine(DEM_CELL, 0, -HALF_U, 0, -DEM_CELL, HALF_V)
    parts = [
        shape(geom)
        for geom, value in rasterio.features.shapes(lake.astype(np.uint8), transform=local)
        if value == 1
    ]
    largest = max(parts, key=lambda p: p.area)
    smooth = largest.buffer(20, quad_segs=4).buffer(-35, quad_segs=4).simplify(8)
    polygon = max(shapely.get_parts(smooth), key=lambda p: p.area)
    return Polygon(polygon.exterior)


def _hill(s: Array, relief: Array) -> Array:
    """Height of the hillside above the floor's edge: a 10 % foot, steeper, then the ridge."""
    x = np.minimum(s / RIDGE_DISTANCE, 1.0)
    rise = 0.10 * s + (relief - 0.10 * RIDGE_DISTANCE) * (1 - np.cos(np.pi * x)) / 2
    return np.asarray(rise - 0.08 * np.maximum(s - RIDGE_DISTANCE, 0.0))


def _thalweg(s: Array) -> Array:
    """Height of a side valley's bed above the floor's edge: 5.5 % at the mouth, steepening."""
    return np.asarray(0.055 * s + 0.025 * s**2 / RIDGE_DISTANCE)


def _carve(uu: Array, s: Array, north: NDArray[np.bool_]) -> Array:
    """How much of each cell is side-valley bottom (1 on a thalweg, fading up its sides)."""
    carve = np.zeros_like(uu)
    for valley in SIDE_VALLEYS.values():
        on_side = north if valley.side == "north" else ~north
        sigma = 180 + 0.04 * s
        lateral = np.exp(-(((uu - valley.centre_u(s)) / sigma) ** 2))
        fade = 1 - _smoothstep((s - (valley.length - 800)) / 800)
        carve = np.maximum(carve, np.where(on_side & (s > 0), lateral * fade, 0.0))
    return carve


def _relief(rng: np.random.Generator, uu: Array, north: NDArray[np.bool_]) -> Array:
    """Random hills and a train of spurs and gullies (m)."""
    white = rng.standard_normal((2, *uu.shape))
    fine = ndimage.gaussian_filter(white[0], sigma=10, mode="reflect")
    broad = ndimage.gaussian_filter(white[1], sigma=40, mode="reflect")
    spurs = np.sin(2 * np.pi * (uu / 2_300 + uu**2 / 4e8) + np.where(north, 0.8, 2.1))
    return np.asarray(22 * fine / fine.std() + 45 * broad / broad.std() + 35 * spurs)


def _smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x * x * (3 - 2 * x))
