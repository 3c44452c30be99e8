"""Lines on the terrain: points every few metres along them, and the DEM's heights beneath.

Lines come in EPSG:4326 and are measured in metres, each part in the metric zone of its own
centre (``metric.to_metric_by_zone``), so lengths and offsets are right anywhere, also for data
spread over two zones. Heights come from the DEM in its own CRS (any CRS: points are transformed
into it) by bilinear interpolation between cell centres. A point off the DEM, or next to a
nodata cell that would weigh in its value, gets NaN: callers skip such samples.

Everything works on whole arrays: points along all lines are found at once (a binary search in
the vertices' running lengths: the linear interpolation of ``shapely.line_interpolate_point``
without its walk from the start of each line) and all heights come from one windowed read.
Below them, the small measures sections are made of: intervals along lines merged into maximal
sections, the largest value per section, the radius of the circle through three points.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import rasterio
import shapely
from numpy.typing import NDArray
from rasterio.windows import Window

from geo_service.metric import WGS84, to_metric_by_zone

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class MetricLines:
    """The single parts of some lines, in metres, each in its own metric zone.

    ``feature`` is the row of the input each part belongs to; ``offset`` the metres along that
    feature where the part starts (parts of a multi-line follow each other); ``zone`` indexes
    ``crs``.
    """

    parts: NDArray[np.object_]
    feature: IntArray
    offset: FloatArray
    length: FloatArray
    zone: IntArray
    crs: tuple[pyproj.CRS, ...]

    @classmethod
    def from_4326(cls, geoms: gpd.GeoSeries) -> MetricLines:
        """Split (multi-)lines in EPSG:4326 into parts and project each into its zone."""
        values = np.asarray(geoms.values, dtype=object)
        parts, feature = shapely.get_parts(values, return_index=True)
        keep = ~(shapely.is_missing(parts) | shapely.is_empty(parts))
        parts, feature = parts[keep], feature[keep].astype(np.intp)
        projected = np.empty(len(parts), dtype=object)
        zone = np.zeros(len(parts), dtype=np.intp)
        crs: list[pyproj.CRS] = []
        if len(parts):
            groups = to_metric_by_zone(gpd.GeoSeries(parts, crs=WGS84))
            for number, (zone_crs, group) in enumerate(groups.items()):
                index = group.index.to_numpy()
                projected[index] = group.values
                zone[index] = number
                crs.append(zone_crs)
        length = shapely.length(projected).astype(float) if len(parts) else np.zeros(0)
        # parts of one feature follow each other: each starts where the ones before it end
        before = np.cumsum(length) - length
        first = np.searchsorted(feature, feature)  # get_parts keeps features in order
        offset = before - before[first]
        return cls(projected, feature, offset, length, zone, tuple(crs))

    def __len__(self) -> int:
        return len(self.parts)

    def points(self, part: IntArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metric x, y of the points ``s`` metres along ``part`` (clipped to the part)."""
        segment, t = self._locate(part, s)
        xy = self._vertices.xy
        x = xy[segment, 0] + t * (xy[segment + 1, 0] - xy[segment, 0])
        y = xy[segment, 1] + t * (xy[segment + 1, 1] - xy[segment, 1])
        return x, y

    def _locate(self, part: IntArray, s: FloatArray) -> tuple[IntArray, FloatArray]:
        """The segment (its first vertex) holding each point, and how far along it (0–1)."""
        v = self._vertices
        if len(part) == 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        key = v.base[part] + np.clip(s, 0.0, self.length[part])
        segment = np.searchsorted(v.key, key, side="right") - 1
        segment = np.clip(segment, v.first[part], v.last[part] - 1)
        span = v.key[segment + 1] - v.key[segment]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(span > 0, (key - v.key[segment]) / span, 0.0)
        return segment, np.clip(t, 0.0, 1.0)

    @cached_property
    def _vertices(self) -> _Vertices:
        """Every vertex of every part, with one increasing key: metres along, part after part."""
        xy, owner = shapely.get_coordinates(self.parts, return_index=True)
        step = np.hypot(*np.diff(xy, axis=0, prepend=xy[:1]).T)
        starts = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, dtype=bool)
        step[starts] = 0.0  # each part starts at 0
        along = np.cumsum(step)
        first = np.searchsorted(owner, np.arange(len(self)), side="left")
        last = np.searchsorted(owner, np.arange(len(self)), side="right") - 1
        along -= along[first][owner]
        # each part in its own stretch of the key, a metre longer than the part
        base = np.cumsum(self.length + 1.0) - (self.length + 1.0)
        return _Vertices(xy, base[owner] + along, base, first, last)

    def heights(self, dem: Path, part: IntArray, x: FloatArray, y: FloatArray) -> FloatArray:
        """DEM heights at metric points ``x, y`` of ``part`` (NaN off the DEM or at nodata)."""
        with rasterio.open(dem) as src:
            dem_crs = pyproj.CRS.from_user_input(src.crs)
        dx, dy = np.empty(len(x)), np.empty(len(y))
        for number, zone_crs in enumerate(self.crs):
            index = np.flatnonzero(self.zone[part] == number)
            if len(index):
                dx[index], dy[index] = _transformer(zone_crs, dem_crs)(x[index], y[index])
        return bilinear(dem, dx, dy)

    def to_4326(self, geoms: NDArray[np.object_], part: IntArray) -> NDArray[np.object_]:
        """Metric geometries drawn on ``part`` back in EPSG:4326."""
        out = np.empty(len(geoms), dtype=object)
        for number, zone_crs in enumerate(self.crs):
            index = np.flatnonzero(self.zone[part] == number)
            if len(index):
                out[index] = shapely.transform(
                    geoms[index], _transformer(zone_crs, WGS84), interleaved=False
                )
        return out

    def project(self, geoms: NDArray[np.object_], zone: int) -> NDArray[np.object_]:
        """Geometries in EPSG:4326 in the metres of zone ``zone`` (an index into ``crs``)."""
        return np.asarray(
            shapely.transform(geoms, _transformer(WGS84, self.crs[zone]), interleaved=False),
            dtype=object,
        )

    def substrings(self, part: IntArray, start: FloatArray, end: FloatArray) -> NDArray[np.object_]:
        """The pieces of ``part`` from ``start`` to ``end`` metres along it (metric lines).

        Every vertex of the part between the two ends is kept, so a piece follows its curves.
        """
        if len(part) == 0:
            return np.empty(0, dtype=object)
        v = self._vertices
        base, key = v.base, v.key
        # vertices within a micrometre of an end are that end (lengths survive projections
        # only to ~1e-9 m)
        lo = np.searchsorted(key, base[part] + start + 1e-6, side="right")
        hi = np.searchsorted(key, base[part] + end - 1e-6, side="left")
        inner = np.maximum(hi - lo, 0)
        counts = inner + 2
        piece = np.repeat(np.arange(len(part)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        vertex = np.clip(lo[piece] + within - 1, 0, len(key) - 1)
        xy = v.xy[vertex].copy()
        sx, sy = self.points(part, start)
        ex, ey = self.points(part, end)
        is_start, is_end = within == 0, within == counts[piece] - 1
        xy[is_start] = np.column_stack([sx, sy])
        xy[is_end] = np.column_stack([ex, ey])
        return np.asarray(shapely.linestrings(xy, indices=piece), dtype=object)


@dataclass(frozen=True)
class _Vertices:
    xy: FloatArray  # (n, 2)
    key: FloatArray  # base of the part + metres along it
    base: FloatArray  # per part
    first: IntArray  # per part: index of its first vertex
    last: IntArray  # and of its last


@dataclass(frozen=True)
class Samples:
    """Points along line parts: which part, metres along it, and metric x, y."""

    part: IntArray
    s: FloatArray
    x: FloatArray
    y: FloatArray

    def __len__(self) -> int:
        return len(self.part)


def sample(lines: MetricLines, spacing_m: float) -> Samples:
    """Points every ``spacing_m`` metres along each part from its start, and its end point."""
    if spacing_m <= 0:
        raise ValueError(f"sample spacing must be positive, got {spacing_m}")
    inside = np.maximum(np.ceil(lines.length / spacing_m - 1e-9).astype(np.intp), 1)
    counts = inside + 1  # the points before the end, and the end
    part = np.repeat(np.arange(len(lines), dtype=np.intp), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    s = np.minimum(k * spacing_m, lines.length[part])
    x, y = lines.points(part, s)
    return Samples(part, s, x, y)


@dataclass(frozen=True)
class Merged:
    """Intervals merged into maximal sections: each interval's section, and each section."""

    member: IntArray
    group: IntArray
    start: FloatArray
    end: FloatArray


def merge_intervals(group: NDArray[Any], start: FloatArray, end: FloatArray) -> Merged:
    """Merge intervals of the same group that overlap or touch into maximal sections."""
    group = np.asarray(group, dtype=np.intp)
    if len(group) == 0:
        empty_i, empty_f = np.zeros(0, dtype=np.intp), np.zeros(0)
        return Merged(empty_i, empty_i, empty_f, empty_f)
    order = np.lexsort((start, group))
    g, a, b = group[order], start[order], end[order]
    # one increasing axis: each group sits in its own stretch, so a running maximum never
    # carries an end from one group into the next
    stretch = float(b.max() - a.min()) + 1.0
    offset = (g - g.min()) * stretch
    reach = np.maximum.accumulate(b + offset)
    new = np.r_[True, a[1:] + offset[1:] > reach[:-1]]
    section = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    member = np.empty(len(order), dtype=np.intp)
    member[order] = section
    return Merged(member, g[first], a[first], np.maximum.reduceat(b, first))


def argmax_by(member: IntArray, values: FloatArray, n: int) -> IntArray:
    """Index (into ``values``) of the largest value of each of ``n`` groups."""
    order = np.lexsort((-values, member))
    first = np.r_[True, member[order][1:] != member[order][:-1]] if len(order) else order
    out = np.zeros(n, dtype=np.intp)
    out[member[order][first]] = order[first]
    return out


def circumradius(
    ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray, cx: FloatArray, cy: FloatArray
) -> FloatArray:
    """Radius of the circle through three points (inf when they are in a line)."""
    ab, bc, ca = np.hypot(bx - ax, by - ay), np.hypot(cx - bx, cy - by), np.hypot(ax - cx, ay - cy)
    twice_area = np.abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = ab * bc * ca / (2 * twice_area)
    return np.where(twice_area > 0, radius, np.inf)


def bilinear(dem: Path, x: FloatArray, y: FloatArray) -> FloatArray:
    """Heights at points in the DEM's CRS, bilinear between cell centres; NaN off it or at nodata.

    Only the window of the DEM around the points is read.
    """
    out = np.full(len(x), np.nan)
    if len(x) == 0:
        return out
    with rasterio.open(dem) as src:
        # fractional row, column of each point, 0 at the centre of the first cell
        col, row = ~src.transform * (np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        col, row = np.asarray(col) - 0.5, np.asarray(row) - 0.5
        # within half a cell of the edge the edge cells are used as they are
        on = (
            np.isfinite(col)
            & np.isfinite(row)
            & (col >= -0.5)
            & (col <= src.width - 0.5)
            & (row >= -0.5)
            & (row <= src.height - 0.5)
        )
        if not on.any():
            return out
        col = np.clip(col[on], 0.0, src.width - 1.0)
        row = np.clip(row[on], 0.0, src.height - 1.0)
        c0 = np.minimum(np.floor(col).astype(np.intp), src.width - 2 if src.width > 1 else 0)
        r0 = np.minimum(np.floor(row).astype(np.intp), src.height - 2 if src.height > 1 else 0)
        top, left = int(r0.min()), int(c0.min())
        bottom = min(int(r0.max()) + 2, src.height)
        right = min(int(c0.max()) + 2, src.width)
        z = src.read(1, window=Window(left, top, right - left, bottom - top)).astype(float)
        nodata = src.nodata
    if nodata is not None:
        z[z == nodata] = np.nan
    z[~np.isfinite(z)] = np.nan
    fc, fr = col - c0, row - r0
    r, c = r0 - top, c0 - left
    r1 = np.minimum(r + 1, z.shape[0] - 1)
    c1 = np.minimum(c + 1, z.shape[1] - 1)
    corners = (
        (z[r, c], (1 - fr) * (1 - fc)),
        (z[r, c1], (1 - fr) * fc),
        (z[r1, c], fr * (1 - fc)),
        (z[r1, c1], fr * fc),
    )
    total = np.zeros(len(fc))
    missing = np.zeros(len(fc), dtype=bool)
    for value, weight in corners:
        counts = weight > 0
        missing |= counts & np.isnan(value)
        total += np.where(counts, weight * np.nan_to_num(value), 0.0)
    out[np.flatnonzero(on)] = np.where(missing, np.nan, total)
    return out


@lru_cache(maxsize=64)
def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> Any:
    """A cached ``(x, y) -> (x, y)`` array transform, x/easting/longitude first on both sides."""
    return pyproj.Transformer.from_crs(source, target, always_xy=True).transform
