"""Measuring for the railway rules: pairs within a distance, parallel runs, crossings.

Every pair is measured in the metric zone of the target (building, mine, road), with the railway
projected into that zone, so data across two Gauss–Krüger zones come out right. Distances that
decide a threshold are brought from the grid to the ground with the zone's point scale factor
(up to 3.4e-4 at a 3° zone's edge: 3 mm on a 10 m zone, 0.3 m on 1 km). Thresholds are inclusive
to ``TOLERANCE_M``: coordinates stored in EPSG:4326 round-trip to about 1e-8 m.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
import shapely.ops
from numpy.typing import NDArray

from geo_service.metric import to_metric_by_zone

TOLERANCE_M = 1e-3
# how far a grid distance can differ from the ground (a 3° GK zone's edge: 3.4e-4; UTM's: 1e-3)
_MAX_SCALE_ERROR = 2e-3
# half the stretch of line over which a bearing is taken at a crossing point (m)
_CROSSING_BEARING_SPAN_M = 10.0


# -- parallel roads and crossings --------------------------------------------------------------


RUN_COLUMNS = ["target", "line", "part", "rail", "start", "end", "length", "nearest", "angle"]


def parallel_runs(
    rails: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    *,
    spacing: float,
    max_distance: float,
    max_angle: float,
) -> pd.DataFrame:
    """Stretches of road alongside a line, one row per run (``RUN_COLUMNS`` and ``geometry``).

    Each road part is sampled every ``spacing`` m or a little less (both ends are samples); a
    sample counts when the nearest rail centreline is within ``max_distance`` and the bearings
    of road and rail there (each over one step) differ by at most ``max_angle`` degrees. A run is
    a stretch of consecutive counting samples nearest the same line; each sample stands for the
    road from half a step before it to half a step after. ``start``/``end`` are metres along the
    road part, ``nearest`` the closest approach, ``angle`` the widest bearing difference.
    Measured on the grid of the road's zone (within 0.03 % of the ground: 1.5 cm at 50 m).
    """
    parts = roads.geometry.explode(index_parts=False)
    parts = parts[~parts.is_empty]
    parts = parts.iloc[_maybe_near(rails.geometry, parts, max_distance)]
    owners = parts.index.to_numpy()
    parts = gpd.GeoSeries(parts.to_numpy(), crs=4326)
    keys = line_keys(rails)
    runs = []
    for crs, parts_m in to_metric_by_zone(parts).items():
        near, rails_m = _rails_in_zone(rails.geometry, parts.iloc[parts_m.index], max_distance, crs)
        if not len(near):
            continue
        tree = shapely.STRtree(rails_m)
        close = np.unique(
            tree.query(parts_m.to_numpy(), predicate="dwithin", distance=max_distance)[0]
        )
        geoms = parts_m.to_numpy()[close]
        samples = _samples(geoms, spacing)
        points = shapely.line_interpolate_point(geoms[samples["local"]], samples["pos"])
        (point, nearest), dist = tree.query_nearest(
            points, max_distance=max_distance + TOLERANCE_M, return_distance=True
        )
        order = np.lexsort((near[nearest], point))  # ties: the lowest rail position
        first = np.unique(point[order], return_index=True)[1]
        point, nearest, dist = point[order][first], nearest[order][first], dist[order][first]
        half = samples["half"].to_numpy()[point]
        turn = _angle_between(
            _bearing(
                geoms[samples["local"].to_numpy()[point]], samples["pos"].to_numpy()[point], half
            ),
            _bearing(
                rails_m[nearest], shapely.line_locate_point(rails_m[nearest], points[point]), half
            ),
        )
        counting = (dist <= max_distance + TOLERANCE_M) & (turn <= max_angle + 1e-9)
        samples = samples.iloc[point[counting]].assign(
            rail=near[nearest[counting]],
            line=keys[near[nearest[counting]]],
            distance=dist[counting],
            angle=turn[counting],
            part=parts_m.index.to_numpy()[close[samples["local"].to_numpy()[point[counting]]]],
        )
        runs.append(_runs(samples, geoms, crs))
    runs = [r for r in runs if len(r)]
    if not runs:
        return pd.DataFrame({name: [] for name in [*RUN_COLUMNS, "geometry"]})
    found = pd.concat(runs, ignore_index=True)
    found["target"] = owners[found["part"].to_numpy(dtype=int)]
    return found[[*RUN_COLUMNS, "geometry"]]


def _samples(geoms: NDArray[np.object_], spacing: float) -> pd.DataFrame:
    """Sample positions along lines: which line (``local``), where, half the step, its length."""
    lengths = shapely.length(geoms)
    count = np.ceil(lengths / spacing).astype(int) + 1  # both ends are samples
    local = np.repeat(np.arange(len(geoms)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    step = lengths / np.maximum(count - 1, 1)
    return pd.DataFrame(
        {"local": local, "pos": k * step[local], "half": step[local] / 2, "length": lengths[local]}
    )


def _runs(samples: pd.DataFrame, geoms: NDArray[np.object_], crs: pyproj.CRS) -> pd.DataFrame:
    """Counting samples (in order along each part) joined into runs, drawn in EPSG:4326."""
    if samples.empty:
        return samples
    index = samples.index.to_numpy()
    local, line = samples["local"].to_numpy(), samples["line"].to_numpy()
    # a run goes on while the samples are neighbours on the same part, nearest the same line
    same = np.zeros(len(samples), dtype=bool)
    same[1:] = (index[1:] == index[:-1] + 1) & (local[1:] == local[:-1]) & (line[1:] == line[:-1])
    samples = samples.assign(
        run=np.cumsum(~same),
        lo=np.maximum(samples["pos"] - samples["half"], 0.0),
        hi=np.minimum(samples["pos"] + samples["half"], samples["length"]),
    )
    grouped = samples.groupby("run", sort=True)
    out = grouped.agg(
        local=("local", "first"),
        part=("part", "first"),
        line=("line", "first"),
        start=("lo", "min"),
        end=("hi", "max"),
        nearest=("distance", "min"),
        angle=("angle", "max"),
    )
    out["rail"] = samples.loc[grouped["distance"].idxmin(), "rail"].to_numpy()
    out["length"] = out["end"] - out["start"]
    pieces = [
        shapely.ops.substring(geoms[i], s, e)
        for i, s, e in zip(out["local"], out["start"], out["end"], strict=True)
    ]
    out["geometry"] = gpd.GeoSeries(pieces, crs=crs).to_crs(4326).to_numpy()
    return out.drop(columns="local").reset_index(drop=True)


def crossings(rails: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> pd.DataFrame:
    """Every (rail, road) that cross: rail, target, line, angle (acute, degrees), geometry."""
    pairs = pairs_within(rails.geometry, roads.geometry, np.zeros(len(rails)), "intersection")
    if pairs.empty:
        return pairs
    crossing = shapely.intersects(pairs["rail_m"].to_numpy(), pairs["target_m"].to_numpy())
    pairs = pairs[crossing].reset_index(drop=True)
    if pairs.empty:
        return pairs
    meet = shapely.intersection(pairs["rail_m"].to_numpy(), pairs["target_m"].to_numpy())
    parts, owner = shapely.get_parts(meet, return_index=True)
    points = shapely.point_on_surface(parts)
    rail_m, road_m = pairs["rail_m"].to_numpy()[owner], pairs["target_m"].to_numpy()[owner]
    span = np.full(len(points), _CROSSING_BEARING_SPAN_M)
    angle = _angle_between(
        _bearing(rail_m, shapely.line_locate_point(rail_m, points), span),
        _bearing(road_m, shapely.line_locate_point(road_m, points), span),
    )
    pairs["angle"] = pd.Series(angle).groupby(owner).min().to_numpy()
    pairs["line"] = line_keys(rails)[pairs["rail"]]
    return pairs


def _bearing(lines: Any, at: Any, half: Any) -> NDArray[np.float64]:
    """Direction (radians) of each line over ``at ± half`` metres along it."""
    length = shapely.length(lines)
    a = shapely.line_interpolate_point(lines, np.clip(at - half, 0.0, length))
    b = shapely.line_interpolate_point(lines, np.clip(at + half, 0.0, length))
    return np.arctan2(shapely.get_y(b) - shapely.get_y(a), shapely.get_x(b) - shapely.get_x(a))


def _angle_between(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The acute angle (degrees, 0–90) between two undirected bearings."""
    turn = np.abs(np.degrees(a - b)) % 180.0
    return np.minimum(turn, 180.0 - turn)


# -- pairs within a distance, in metres --------------------------------------------------------


def pairs_within(
    hazards: gpd.GeoSeries, targets: gpd.GeoSeries, reach: Any, geometry: str
) -> pd.DataFrame:
    """Every (hazard, target) pair within ``reach`` metres of the hazard, inclusive.

    Targets that may be near a hazard are picked in degrees (a generous pre-filter, so only
    they are projected); each is then measured in its own metric zone with the hazards projected
    into it. Returns
    ``rail`` and ``target`` (the labels of ``hazards`` and ``targets``), ``distance`` (m), the
    pair's geometries in that zone (``rail_m``, ``target_m``) and ``geometry`` in EPSG:4326:
    ``"shortest_line"`` from hazard to target, ``"inside"`` the part of the target within reach
    of the hazard, ``"intersection"`` of the two (the target where they only touch).
    """
    reach = np.asarray(reach, dtype=float)
    targets = targets[~targets.is_empty & targets.notna()]
    if hazards.empty or targets.empty or not np.isfinite(reach).any():
        return no_pairs()
    farthest = float(np.nanmax(reach))
    targets = targets.iloc[_maybe_near(hazards, targets, farthest)]
    frames = []
    for crs, targets_m in to_metric_by_zone(targets).items():
        near, hazards_m = _rails_in_zone(hazards, targets.loc[targets_m.index], farthest, crs)
        if not len(near):
            continue
        tree = shapely.STRtree(hazards_m)
        slack = 1.0 + _MAX_SCALE_ERROR
        t, h = tree.query(
            targets_m.to_numpy(), predicate="dwithin", distance=farthest * slack + TOLERANCE_M
        )
        t_m, h_m = targets_m.to_numpy()[t], hazards_m[h]
        grid = shapely.distance(h_m, t_m)
        maybe = grid <= reach[near[h]] * slack + TOLERANCE_M
        t, h, t_m, h_m = t[maybe], h[maybe], t_m[maybe], h_m[maybe]
        dist = grid[maybe] / _point_scale(crs, shapely.shortest_line(h_m, t_m))
        keep = dist <= reach[near[h]] + TOLERANCE_M
        t, h, dist, t_m, h_m = t[keep], h[keep], dist[keep], t_m[keep], h_m[keep]
        if geometry == "shortest_line":
            shown = shapely.shortest_line(h_m, t_m)
        elif geometry == "inside":
            zone = shapely.buffer(h_m, reach[near[h]], quad_segs=32)
            shown = shapely.intersection(t_m, zone)
        else:
            shown = shapely.intersection(t_m, h_m)
        shown = np.where(shapely.is_empty(shown), t_m, shown)
        frames.append(
            pd.DataFrame(
                {
                    "rail": hazards.index.to_numpy()[near[h]],
                    "target": targets_m.index.to_numpy()[t],
                    "distance": dist,
                    "rail_m": h_m,
                    "target_m": t_m,
                    "geometry": gpd.GeoSeries(shown, crs=crs).to_crs(4326).to_numpy(),
                }
            )
        )
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else no_pairs()


def _point_scale(crs: pyproj.CRS, lines: NDArray[np.object_]) -> NDArray[np.float64]:
    """The projection's point scale factor at the middle of each line (grid m per ground m).

    Gauss–Krüger and UTM are conformal, so one factor holds in every direction: dividing a grid
    distance by it gives the distance on the ground (to about 1e-7 over a kilometre).
    """
    if not len(lines):
        return np.ones(0)
    middle = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    lon, lat = _to_lonlat(crs)(shapely.get_x(middle), shapely.get_y(middle))
    factors = pyproj.Proj(crs).get_factors(lon, lat)
    return np.asarray(factors.meridional_scale, dtype=float)


@lru_cache(maxsize=32)
def _to_lonlat(crs: pyproj.CRS) -> Any:
    return pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform


def _maybe_near(hazards: gpd.GeoSeries, things: gpd.GeoSeries, reach: float) -> NDArray[np.intp]:
    """Positions of ``things`` that may come within ``reach`` m of a hazard (pre-filter)."""
    if things.empty:
        return np.zeros(0, dtype=np.intp)
    margin = _degree_margin(reach, hazards.total_bounds, things.total_bounds)
    tree = shapely.STRtree(hazards.to_numpy())
    return np.unique(tree.query(things.to_numpy(), predicate="dwithin", distance=margin)[0])


def _degree_margin(reach: float, *bounds: NDArray[np.float64]) -> float:
    """Degrees that surely span ``reach`` metres (and then some) anywhere within ``bounds``.

    A degree of latitude is ≥ 110.57 km and one of longitude 111.32 km · cos(latitude); the
    extra 5 % + 100 m covers long segments, straight in degrees but not on the ground.
    """
    latitude = min(max(abs(float(b[i])) for b in bounds for i in (1, 3)) + 1.0, 89.0)
    return (reach * 1.05 + 100.0) / (110_000.0 * np.cos(np.radians(latitude)))


def _rails_in_zone(
    hazards: gpd.GeoSeries, targets: gpd.GeoSeries, reach: float, crs: pyproj.CRS
) -> tuple[NDArray[np.intp], NDArray[np.object_]]:
    """Positions of the hazards that may come within ``reach`` m of ``targets``, projected.

    A pre-filter in degrees only: the targets' bounds widened by more than ``reach`` at their
    latitude; the measuring is done in metres by the caller.
    """
    west, south, east, north = targets.total_bounds
    margin = _degree_margin(reach, targets.total_bounds)
    box = shapely.box(west - margin, south - margin, east + margin, north + margin)
    near = np.flatnonzero(shapely.intersects(hazards.to_numpy(), box))
    projected = hazards.iloc[near].to_crs(crs).to_numpy()
    return near, projected


def line_keys(rails: gpd.GeoDataFrame) -> NDArray[np.object_]:
    """Which line each section belongs to: its line name, else its own id."""
    return (
        rails["line_name"].astype(object).where(rails["line_name"].notna(), rails["id"]).to_numpy()
    )


def no_pairs() -> pd.DataFrame:
    """An empty result of ``pairs_within``."""
    return pd.DataFrame(
        {
            "rail": pd.Series([], dtype=int),
            "target": pd.Series([], dtype=int),
            "distance": pd.Series([], dtype=float),
            "rail_m": pd.Series([], dtype=object),
            "target_m": pd.Series([], dtype=object),
            "geometry": pd.Series([], dtype=object),
        }
    )
