"""Steepest-descent (D8) flow paths on a DEM in its own CRS, through flats and pits.

From a start point the path steps to the neighbour cell with the largest drop per metre
(diagonals are √2 cells away, in metres on the spheroid when the DEM is geographic). Where no
neighbour is lower the path is on a flat or in a pit. On a flat it takes the shortest route
(in metres) over the flat to its nearest cell with a lower neighbour. A flat with no lower
cell around it is a pit: a window around it is filled (each cell raised to the lowest level at
which it spills to the window's edge, by morphological reconstruction; the window grows until
the spill is inside it), the fill is kept, and the path crosses the filled pit to its lowest
spill point. The path stops at DEM nodata (unknown ground: it does not guess across it), at the
DEM's edge, or when it has run ``max_length_m`` metres of path length.

Only windows around the path are read: a path of a few kilometres touches a few thousand cells,
never the whole raster.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyproj
import rasterio
from numpy.typing import ArrayLike, NDArray
from rasterio.windows import Window
from scipy import ndimage

from geo_service.metric import GEOD, WGS84

Stop = Literal["length", "nodata", "edge", "outside", "stuck"]
Cell = tuple[int, int]

# neighbour offsets (row, column), in a fixed order so ties resolve the same way every time
_D8: tuple[Cell, ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_FIRST_WINDOW_M = 3_000.0  # the first window read around a start: grown as the path needs
_LOCAL_FILL_CELLS = 8  # the first half-size of the window filled around a flat or pit
_MAX_WINDOW_CELLS = 64_000_000  # never read more (512 MB of float64): a flat this large stops


@dataclass(frozen=True)
class FlowPath:
    """A traced path: its vertices in the DEM's CRS and the path length run to each.

    The first vertex is the start point itself, the others are centres of the cells the path
    steps through (the last one cut at ``max_length_m`` when the path ran that far).
    """

    xy: NDArray[np.float64]  # (n, 2) in the DEM's CRS
    run_m: NDArray[np.float64]  # (n,) metres of path from the start to each vertex
    crs: pyproj.CRS
    stop: Stop  # why the path ends: its length run, nodata, the DEM's edge, or a bad start
    flats_crossed: int  # flats crossed to their nearest lower outlet
    pits_filled: int  # pits (closed depressions) filled and crossed to their spill point

    @property
    def length_m(self) -> float:
        """Path length in metres."""
        return float(self.run_m[-1])

    @property
    def steps(self) -> int:
        """Cell-to-cell steps taken."""
        return len(self.run_m) - 1

    def lonlat(self) -> NDArray[np.float64]:
        """The vertices in EPSG:4326 (lon, lat)."""
        lon, lat = transformer(self.crs, WGS84)(self.xy[:, 0], self.xy[:, 1])
        return np.column_stack([lon, lat])

    def cut(self, length_m: float) -> FlowPath:
        """The first ``length_m`` metres of the path (the last vertex interpolated)."""
        if length_m >= self.length_m:
            return self
        i = int(np.searchsorted(self.run_m, length_m, side="right"))
        t = (length_m - self.run_m[i - 1]) / (self.run_m[i] - self.run_m[i - 1])
        end = self.xy[i - 1] + t * (self.xy[i] - self.xy[i - 1])
        return FlowPath(
            np.vstack([self.xy[:i], end]),
            np.append(self.run_m[:i], length_m),
            self.crs,
            "length",
            self.flats_crossed,
            self.pits_filled,
        )


def trace_paths(
    dem: str | Path, starts: NDArray[np.float64], max_length_m: ArrayLike
) -> list[FlowPath]:
    """Trace a path from each start (lon, lat in EPSG:4326) for up to ``max_length_m`` metres."""
    lengths = np.broadcast_to(np.asarray(max_length_m, dtype=float), (len(starts),))
    with rasterio.open(dem) as src:
        crs = pyproj.CRS.from_user_input(src.crs)
        x, y = transformer(WGS84, crs)(starts[:, 0], starts[:, 1])
        return [
            _trace(_Terrain(src, crs), float(xi), float(yi), float(length))
            for xi, yi, length in zip(np.atleast_1d(x), np.atleast_1d(y), lengths, strict=True)
        ]


@lru_cache(maxsize=64)
def transformer(source: pyproj.CRS, target: pyproj.CRS) -> Callable[..., Any]:
    """A cached ``(x, y) -> (x, y)`` array transform, x/lon first on both sides.

    Building a transformer for a CRS read from a GeoTIFF costs ~0.1 s: build each once.
    """
    return pyproj.Transformer.from_crs(source, target, always_xy=True).transform


def _read(src: rasterio.DatasetReader, window: Window) -> NDArray[np.float64]:
    """A window of band 1 as float64 with nodata (and NaN) as NaN."""
    data = src.read(1, window=window, masked=True).astype(np.float64)
    return np.asarray(data.filled(np.nan))


class _Terrain:
    """The DEM around a path: a window read as needed, its cell sizes in metres, and fills."""

    def __init__(self, src: rasterio.DatasetReader, crs: pyproj.CRS) -> None:
        self.src = src
        self.crs = crs
        self.height, self.width = src.height, src.width
        self.transform = src.transform
        self.geographic = crs.is_geographic
        self.unit = 1.0 if self.geographic else float(crs.axis_info[0].unit_conversion_factor)
        self.row0 = self.col0 = 0
        self.z = np.zeros((0, 0))
        self._fills: list[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]] = []
        self._sizes: dict[int, tuple[float, float, float]] = {}

    # -- the window -------------------------------------------------------------------------

    def open_around(self, row: int, col: int, radius_m: float) -> None:
        """Read the window of ``radius_m`` metres around a cell (clipped to the raster)."""
        dx, dy, _ = self.sizes(row)
        k_rows, k_cols = int(radius_m / dy) + 2, int(radius_m / dx) + 2
        self._read_box(row - k_rows, row + k_rows + 1, col - k_cols, col + k_cols + 1)

    def ensure(self, row: int, col: int, k: int) -> bool:
        """Make the cells within ``k`` of a cell readable; False when that is too large."""
        r0, r1 = max(row - k, 0), min(row + k + 1, self.height)
        c0, c1 = max(col - k, 0), min(col + k + 1, self.width)
        rows, cols = self.z.shape
        if (
            r0 >= self.row0
            and c0 >= self.col0
            and r1 <= self.row0 + rows
            and c1 <= self.col0 + cols
        ):
            return True
        # grow by at least the window's own size, so a long path re-reads only a few times
        grow_r, grow_c = max(rows, k), max(cols, k)
        r0 = min(r0, self.row0 - (grow_r if r0 < self.row0 else 0))
        c0 = min(c0, self.col0 - (grow_c if c0 < self.col0 else 0))
        r1 = max(r1, self.row0 + rows + (grow_r if r1 > self.row0 + rows else 0))
        c1 = max(c1, self.col0 + cols + (grow_c if c1 > self.col0 + cols else 0))
        return self._read_box(r0, r1, c0, c1)

    def _read_box(self, r0: int, r1: int, c0: int, c1: int) -> bool:
        r0, r1 = max(r0, 0), min(r1, self.height)
        c0, c1 = max(c0, 0), min(c1, self.width)
        if (r1 - r0) * (c1 - c0) > _MAX_WINDOW_CELLS:
            return False
        self.z = _read(self.src, Window(c0, r0, c1 - c0, r1 - r0))
        self.row0, self.col0 = r0, c0
        for rows, cols, values in self._fills:  # the pits filled so far stay filled
            rr, cc = rows - r0, cols - c0
            keep = (rr >= 0) & (rr < r1 - r0) & (cc >= 0) & (cc < c1 - c0)
            self.z[rr[keep], cc[keep]] = values[keep]
        return True

    def at(self, row: int, col: int) -> float:
        """Elevation of a cell (NaN for nodata)."""
        return float(self.z[row - self.row0, col - self.col0])

    def inside(self, row: int, col: int) -> bool:
        """Whether a cell is on the raster."""
        return 0 <= row < self.height and 0 <= col < self.width

    def centre(self, row: int, col: int) -> tuple[float, float]:
        """A cell's centre in the DEM's CRS."""
        x, y = self.transform * (col + 0.5, row + 0.5)
        return float(x), float(y)

    # -- metres ---------------------------------------------------------------------------

    def sizes(self, row: int) -> tuple[float, float, float]:
        """Metres to the east–west, north–south and diagonal neighbours of a cell in ``row``."""
        if row not in self._sizes:
            a, e = abs(self.transform.a), abs(self.transform.e)
            if self.geographic:
                x, y = self.centre(row, 0)
                _, _, dx = GEOD.inv(x, y, x + a, y)
                _, _, dy = GEOD.inv(x, y + e / 2, x, y - e / 2)
                _, _, diag = GEOD.inv(x, y + e / 2, x + a, y - e / 2)
                self._sizes[row] = (float(dx), float(dy), float(diag))
            else:
                dx, dy = a * self.unit, e * self.unit
                self._sizes[row] = (dx, dy, float(np.hypot(dx, dy)))
        return self._sizes[row]

    def step_m(self, row: int, dr: int, dc: int) -> float:
        """Metres of one step from a cell in ``row`` to the neighbour at (dr, dc)."""
        dx, dy, diag = self.sizes(row)
        return diag if dr and dc else (dy if dr else dx)

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Metres between two points in the DEM's CRS."""
        if self.geographic:
            return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])
        return float(np.hypot(b[0] - a[0], b[1] - a[1]) * self.unit)

    # -- flow -----------------------------------------------------------------------------

    def steepest(self, row: int, col: int) -> Cell | None:
        """The neighbour with the largest drop per metre, or None when none is lower."""
        here = self.at(row, col)
        best, step = 0.0, None
        for dr, dc in _D8:
            r, c = row + dr, col + dc
            if not self.inside(r, c):
                continue
            drop = here - self.at(r, c)
            if drop > 0:  # NaN (nodata) compares false: never a step
                slope = drop / self.step_m(row, dr, dc)
                if slope > best:
                    best, step = slope, (r, c)
        return step

    def blocked(self, row: int, col: int) -> Stop | None:
        """Why water on this cell may leave where the DEM cannot follow: nodata or the edge."""
        for dr, dc in _D8:
            r, c = row + dr, col + dc
            if not self.inside(r, c):
                return "edge"
            if np.isnan(self.at(r, c)):
                return "nodata"
        return None

    def cross_flat(self, row: int, col: int) -> tuple[list[Cell], bool, Stop | None]:
        """Route from a cell with no lower neighbour to its flat's nearest lower outlet.

        First over the flat as it is; when the flat is closed (a pit), over the filled pit: a
        window around the cell is filled (grown until the route to the spill point is inside)
        and kept filled. Returns the cells after the start, whether a pit was filled, and a
        stop reason when the route ends at nodata or the DEM's edge instead.
        """
        route, stop, status = _route(self, self.at, (row, col), None)
        if status != "closed":
            return route, False, stop
        k = _LOCAL_FILL_CELLS
        while True:
            if not self.ensure(row, col, k):
                return [], True, "edge"
            r0, r1 = max(row - k, 0), min(row + k + 1, self.height)
            c0, c1 = max(col - k, 0), min(col + k + 1, self.width)
            local = self.z[r0 - self.row0 : r1 - self.row0, c0 - self.col0 : c1 - self.col0]
            filled = _fill(local)

            level = _Window(filled, r0, c0).at
            route, stop, status = _route(self, level, (row, col), (r0, r1, c0, c1))
            if status != "window":
                raised = filled > local
                rr, cc = np.nonzero(raised)
                rows, cols = rr + r0, cc + c0
                self._fills.append((rows, cols, filled[rr, cc]))
                self.z[rows - self.row0, cols - self.col0] = filled[rr, cc]
                return route, True, stop
            k *= 2


@dataclass(frozen=True)
class _Window:
    """Filled elevations of a window whose first cell is (row0, col0) of the raster."""

    z: NDArray[np.float64]
    row0: int
    col0: int

    def at(self, row: int, col: int) -> float:
        return float(self.z[row - self.row0, col - self.col0])


def _fill(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fill the depressions of a window: each cell rises to the lowest level that spills out.

    The window's edge and its nodata cells are the outlets (nodata is unknown ground: water
    may leave there). Morphological reconstruction by erosion, iterated to a fixed point.
    """
    nodata = np.isnan(z)
    ground = np.where(nodata, -np.inf, z)
    seed = np.zeros_like(nodata)
    seed[0, :] = seed[-1, :] = seed[:, 0] = seed[:, -1] = True
    seed |= nodata
    level = np.where(seed, ground, np.inf)
    while True:
        lower = np.maximum(ground, ndimage.grey_erosion(level, size=(3, 3), mode="nearest"))
        lower[seed] = ground[seed]
        if np.array_equal(lower, level):
            return np.where(nodata, np.nan, level)
        level = lower


Status = Literal["found", "stopped", "closed", "window"]


def _route(
    terrain: _Terrain,
    value: Callable[[int, int], float],
    start: Cell,
    window: tuple[int, int, int, int] | None,
) -> tuple[list[Cell], Stop | None, Status]:
    """Shortest route (metres) over the flat at the start's level to a cell with a lower neighbour.

    ``value`` gives the (possibly filled) elevation of a cell; ``window`` (rows, columns) bounds
    a filled window. Status: ``found`` an outlet, ``stopped`` at nodata or the DEM's edge
    (the reason is returned), ``closed`` (the flat is a pit's bottom: nothing lower around it),
    or ``window`` (the flat runs beyond the filled window: fill a larger one).
    """
    level = value(*start)
    counter = itertools.count()
    best = {start: 0.0}
    parent: dict[Cell, Cell] = {}
    heap = [(0.0, next(counter), start)]
    while heap:
        dist, _, cell = heapq.heappop(heap)
        if dist > best[cell]:
            continue
        row, col = cell
        if window is not None and _on_window_edge(terrain, cell, window):
            return [], None, "window"
        if not terrain.ensure(row, col, 1):
            return _unwind(parent, start, cell), "edge", "stopped"
        reason = terrain.blocked(row, col)
        if reason is not None:
            return _unwind(parent, start, cell), reason, "stopped"
        neighbours = [(row + dr, col + dc, dr, dc) for dr, dc in _D8]
        heights = [value(r, c) for r, c, _, _ in neighbours]
        if any(h < level for h in heights):
            return _unwind(parent, start, cell), None, "found"
        for (r, c, dr, dc), h in zip(neighbours, heights, strict=True):
            if h == level:
                step = dist + terrain.step_m(row, dr, dc)
                if step < best.get((r, c), np.inf):
                    best[(r, c)] = step
                    parent[(r, c)] = cell
                    heapq.heappush(heap, (step, next(counter), (r, c)))
    return [], None, "closed"


def _on_window_edge(terrain: _Terrain, cell: Cell, window: tuple[int, int, int, int]) -> bool:
    """Whether a cell is on a filled window's edge where the raster goes on."""
    top, bottom, left, right = window
    row, col = cell
    return (row in (top, bottom - 1) and 0 < row < terrain.height - 1) or (
        col in (left, right - 1) and 0 < col < terrain.width - 1
    )


def _unwind(parent: dict[Cell, Cell], start: Cell, end: Cell) -> list[Cell]:
    route = []
    cell = end
    while cell != start:
        route.append(cell)
        cell = parent[cell]
    return route[::-1]


def _trace(terrain: _Terrain, x: float, y: float, max_length_m: float) -> FlowPath:
    """One path from a point in the DEM's CRS."""
    row, col = (int(v) for v in rasterio.transform.rowcol(terrain.transform, x, y, op=np.floor))
    start = (x, y)
    if not terrain.inside(row, col):
        return _path(terrain, start, [], [], "outside", 0, 0)
    terrain.open_around(row, col, min(max_length_m, _FIRST_WINDOW_M))
    if np.isnan(terrain.at(row, col)):
        return _path(terrain, start, [], [], "outside", 0, 0)
    cells: list[Cell] = []
    runs: list[float] = []
    run, flats, pits = 0.0, 0, 0
    stop: Stop = "length"
    while run < max_length_m:
        if not terrain.ensure(row, col, 2):
            stop = "edge"
            break
        step = terrain.steepest(row, col)
        reason: Stop | None = None
        if step is not None:
            route = [step]
        else:
            reason = terrain.blocked(row, col)
            if reason is not None:
                stop = reason
                break
            route, pit, reason = terrain.cross_flat(row, col)
            pits, flats = pits + pit, flats + (not pit)
            if not route and reason is None:  # no way on (cannot happen on a filled window)
                reason = "stuck"
        for r, c in route:
            if not cells:  # the first segment runs from the start point itself
                run += terrain.distance_m(start, terrain.centre(r, c))
            else:
                run += terrain.step_m(row, r - row, c - col)
            row, col = r, c
            cells.append((r, c))
            runs.append(run)
        if reason is not None:
            stop = reason
            break
    path = _path(terrain, start, cells, runs, stop, flats, pits)
    return path.cut(max_length_m) if path.length_m > max_length_m else path


def _path(
    terrain: _Terrain,
    start: tuple[float, float],
    cells: list[Cell],
    runs: list[float],
    stop: Stop,
    flats: int,
    pits: int,
) -> FlowPath:
    xy = np.array([start] + [terrain.centre(r, c) for r, c in cells], dtype=float)
    return FlowPath(xy, np.array([0.0, *runs]), terrain.crs, stop, flats, pits)
