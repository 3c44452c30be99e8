"""Dangerous road sections from geometry and terrain (plan item (七) 道路运输安全整治).

Rule kinds on the ``road_sections`` layer, every threshold from the rule's ``params``:

- ``long_downgrade`` (连续长陡下坡): heights every ``sample_spacing_m`` along each road; for each
  ``[grade, length]`` of ``grade_length_pairs`` a window of that length starts at every sample,
  and its average grade is its height lost over its length (JTG's average longitudinal grade).
  Windows descending at ``≥ grade`` in either direction of travel are merged, per road and
  direction, into maximal sections. A section's geometry runs downhill.
- ``sharp_curve`` (急弯陡坡): at every sample the circumradius of the points ``window_m / 2``
  before, at, and after it (metres), and the grade between the two outer points; a curve is
  sharp and steep where the radius is below ``min_radius_m`` and the grade above ``max_grade``
  for the road's design speed (``default_design_speed_kmh`` when the road has none). A speed
  between two rows of the tables takes the slower row: a curve is flagged only when it falls
  short even of the slower road's standard.
- ``along_water_cliff`` (临水临崖): samples within ``max_water_distance_m`` of a feature of
  ``water_layer`` (samples *on* water are a bridge, not a road along water), or with the DEM
  ``side_offset_m`` to the left or right at least ``min_drop_m`` below the road. Runs of such
  samples shorter than ``min_length_m`` (a bridge approach, one DEM cell) are not sections.
- ``listed_road_hazard``: findings on sections the authorities list in ``hazard_types`` (fog,
  level crossings, bridges cannot be seen in geometry), and on listed sections the terrain rules
  did not confirm; none for sections already rectified or verified.

Detected sections are features of the result layer ``road_hazard_sections`` with their measured
values; each detected section is also one finding (hazard: the road; target: the section).

Risk classes, each from a rule param of bands checked red, orange, yellow (else blue):

- downgrade: ``class_by_exceedance``, the section's steepest window grade over the pair's grade,
  the pair with the largest such ratio governing (value ≥ band);
- sharp curve: ``class_by_severity``, ``(limit radius / radius) × (grade / max grade)`` at the
  worst sample of the section (value ≥ band);
- along water: ``class_by_water_distance_m``, the nearest distance (value ≤ band); along a cliff:
  ``class_by_drop_m``, the largest drop (value ≥ band);
- listed: ``hazard_types[type].risk_class``.

Comparisons are inclusive where the rule says "at least" (grade ≥, drop ≥, distance ≤) and strict
where it says "below"/"above" (radius <, grade >), to within a relative 1e-6 so a section exactly
at a threshold is not decided by float32 heights or a projection round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from geo_service.catalogue import RISK_CLASSES, Layer, Rule
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.registry import rule_kind
from geo_service.risk.terrain import (
    MetricLines,
    Samples,
    argmax_by,
    circumradius,
    merge_intervals,
    sample,
)
from geo_service.schema import conform, empty_frame

logger = logging.getLogger(__name__)

RESULT_LAYER = "road_hazard_sections"
# the road_sections hazard type each terrain rule kind detects
HAZARD_TYPES = {
    "long_downgrade": "long_steep_downgrade",
    "sharp_curve": "sharp_curve_steep_slope",
    "along_water_cliff": "along_water_cliff",
}
_DONE = ("rectified", "verified")  # rectification states that close a listed section
_TOL = 1e-6
_GAP_M = 1_000.0  # between roads on the one axis all profiles share

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@rule_kind("long_downgrade")
def long_downgrade(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Continuous long steep downgrades: rolling-window average grades along each road."""
    roads = _roads(ctx, layer, rule)
    if roads.empty:
        return _report(ctx, layer, rule, roads, None, [])
    dem = _dem(ctx, layer, rule)
    params = rule.params
    pairs = np.asarray(params["grade_length_pairs"], dtype=float).reshape(-1, 2)
    lines = MetricLines.from_4326(roads.geometry)
    points = sample(lines, float(params["sample_spacing_m"]))
    z = lines.heights(dem, points.part, points.x, points.y)
    # every road on one axis, each behind a gap, so one np.interp reads heights between samples
    base = np.cumsum(lines.length + _GAP_M) - (lines.length + _GAP_M)
    axis = base[points.part] + points.s
    parts, starts, ends, directions, pair_of, grades = [], [], [], [], [], []
    for k, (grade, length) in enumerate(pairs):
        fits = np.flatnonzero(points.s + length <= lines.length[points.part] * (1 + _TOL) + _TOL)
        drop = z[fits] - np.interp(axis[fits] + length, axis, z)
        for sign in (1, -1):
            steep = sign * drop / length
            hit = fits[steep >= grade * (1 - _TOL)]
            parts.append(points.part[hit])
            starts.append(points.s[hit])
            ends.append(points.s[hit] + length)
            directions.append(np.full(len(hit), sign))
            pair_of.append(np.full(len(hit), k))
            grades.append(steep[steep >= grade * (1 - _TOL)])
    part, direction = np.concatenate(parts), np.concatenate(directions)
    merged = merge_intervals(
        part * 2 + (direction < 0), np.concatenate(starts), np.concatenate(ends)
    )
    n = len(merged.start)
    sec_part, sec_dir = merged.group // 2, np.where(merged.group % 2 == 1, -1, 1)
    # the steepest window of each pair in each section, and the pair exceeded the most
    steepest = np.full((n, len(pairs)), np.nan)
    np.fmax.at(steepest, (merged.member, np.concatenate(pair_of)), np.concatenate(grades))
    ratio = np.nan_to_num(steepest / pairs[:, 0], nan=0.0)
    governing = np.argmax(ratio, axis=1) if n else np.zeros(0, dtype=np.intp)
    exceedance = ratio[np.arange(n), governing]
    height_a = np.interp(base[sec_part] + merged.start, axis, z)
    height_b = np.interp(base[sec_part] + merged.end, axis, z)
    lost = sec_dir * (height_a - height_b)
    span = merged.end - merged.start
    classes = _classify(exceedance, params["class_by_exceedance"], higher_is_worse=True)
    found = Found(
        part=sec_part,
        start=merged.start,
        end=merged.end,
        reverse=sec_dir < 0,
        cause="downgrade",
        value=steepest[np.arange(n), governing] * 100,
        threshold=pairs[governing, 0] * 100,
        unit="%",
        risk_class=classes,
        avg_grade=lost / span * 100,
        drop=lost,
        evidence=[
            {
                "descends": "along" if sec_dir[i] > 0 else "against",
                "height_lost_m": _round(lost[i]),
                "window_m": _round(pairs[governing[i], 1]),
                "exceedance": _round(exceedance[i], 3),
                "pairs": [
                    {
                        "grade_pct": _round(g * 100),
                        "length_m": _round(length),
                        "steepest_window_grade_pct": _round(steepest[i, k] * 100),
                    }
                    for k, (g, length) in enumerate(pairs)
                ],
            }
            for i in range(n)
        ],
    )
    return _report(ctx, layer, rule, roads, lines, [found])


@rule_kind("sharp_curve")
def sharp_curve(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Sharp curves on steep grades: three-point radius and grade against the design speed."""
    roads = _roads(ctx, layer, rule)
    if roads.empty:
        return _report(ctx, layer, rule, roads, None, [])
    dem = _dem(ctx, layer, rule)
    params = rule.params
    window = float(params["window_m"])
    half = window / 2
    lines = MetricLines.from_4326(roads.geometry)
    points = sample(lines, float(params["sample_spacing_m"]))
    length = lines.length[points.part]
    inside = np.flatnonzero((points.s >= half * (1 - _TOL)) & (points.s + half <= length + _TOL))
    part, s = points.part[inside], points.s[inside]
    ax, ay = lines.points(part, s - half)
    cx, cy = lines.points(part, s + half)
    radius = circumradius(ax, ay, points.x[inside], points.y[inside], cx, cy)
    heights = lines.heights(dem, np.r_[part, part], np.r_[ax, cx], np.r_[ay, cy])
    grade = np.abs(heights[len(part) :] - heights[: len(part)]) / window
    speeds = _design_speeds(roads, params)[lines.feature[part]]
    row, limit = _by_speed(params["min_radius_m"], speeds)
    _, max_grade = _by_speed(params["max_grade"], speeds)
    hit = (radius < limit * (1 - _TOL)) & (grade > max_grade * (1 + _TOL))
    severity = limit / radius * grade / max_grade
    merged = merge_intervals(part[hit], s[hit] - half, s[hit] + half)
    n = len(merged.start)
    sec_part = merged.group
    worst = np.flatnonzero(hit)[argmax_by(merged.member, severity[hit], n)]  # in the samples
    min_radius = np.full(n, np.inf)
    np.fmin.at(min_radius, merged.member, radius[hit])
    steepest = np.full(n, np.nan)
    np.fmax.at(steepest, merged.member, grade[hit])
    ends_z = lines.heights(dem, *_ends(lines, sec_part, merged.start, merged.end))
    span = merged.end - merged.start
    at_m = lines.offset[part[worst]] + s[worst]
    found = Found(
        part=sec_part,
        start=merged.start,
        end=merged.end,
        reverse=np.zeros(n, dtype=bool),
        cause="curve",
        value=min_radius,
        threshold=limit[worst],
        unit="m",
        risk_class=_classify(severity[worst], params["class_by_severity"], higher_is_worse=True),
        avg_grade=np.abs(ends_z[n:] - ends_z[:n]) / span * 100,
        min_radius=min_radius,
        evidence=[
            {
                "design_speed_kmh": int(speeds[w]),
                "table_speed_kmh": int(row[w]),
                "min_radius_limit_m": _round(limit[w]),
                "steepest_grade_pct": _round(steepest[i] * 100),
                "max_grade_pct": _round(max_grade[w] * 100),
                "worst": {
                    "at_m": _round(at_m[i]),
                    "radius_m": _round(radius[w]),
                    "grade_pct": _round(grade[w] * 100),
                    "severity": _round(severity[w], 3),
                },
                "window_m": _round(window),
            }
            for i, w in enumerate(worst)
        ],
    )
    return _report(ctx, layer, rule, roads, lines, [found])


@rule_kind("along_water_cliff")
def along_water_cliff(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Roads beside water (distance to water bodies) or above a drop (the DEM beside them)."""
    roads = _roads(ctx, layer, rule)
    if roads.empty:
        return _report(ctx, layer, rule, roads, None, [])
    params = rule.params
    spacing = float(params["sample_spacing_m"])
    max_distance = float(params["max_water_distance_m"])
    lines = MetricLines.from_4326(roads.geometry)
    points = sample(lines, spacing)
    distance = _water_distance(ctx, rule, lines, points, max_distance)
    drop = _side_drop(ctx, layer, rule, lines, points, float(params["side_offset_m"]))
    near = np.where(np.isfinite(distance), distance, np.nan)
    found = []
    for cause, hit in (
        ("water", (distance > 0) & (distance <= max_distance * (1 + _TOL))),
        ("cliff", drop >= float(params["min_drop_m"]) * (1 - _TOL)),
    ):
        part, s = points.part[hit], points.s[hit]
        end = lines.length[part]
        merged = merge_intervals(
            part, np.maximum(s - spacing / 2, 0), np.minimum(s + spacing / 2, end)
        )
        n = len(merged.start)
        nearest = np.full(n, np.nan)
        np.fmin.at(nearest, merged.member, near[hit])
        deepest = np.full(n, np.nan)
        np.fmax.at(deepest, merged.member, drop[hit])
        keep = merged.end - merged.start >= float(params["min_length_m"]) * (1 - _TOL)
        if cause == "water":
            value, threshold = nearest, max_distance
            classes = _classify(value, params["class_by_water_distance_m"], higher_is_worse=False)
        else:
            value, threshold = deepest, float(params["min_drop_m"])
            classes = _classify(value, params["class_by_drop_m"], higher_is_worse=True)
        found.append(
            Found(
                part=merged.group[keep],
                start=merged.start[keep],
                end=merged.end[keep],
                reverse=np.zeros(int(keep.sum()), dtype=bool),
                cause=cause,
                value=value[keep],
                threshold=np.full(int(keep.sum()), threshold),
                unit="m",
                risk_class=classes[keep],
                drop=deepest[keep],
                water_distance=nearest[keep],
                title=f"{rule.title.zh}（{'临水' if cause == 'water' else '临崖'}）",
                evidence=[
                    {
                        "nearest_water_m": _round(nearest[i]),
                        "largest_drop_m": _round(deepest[i]),
                        "side_offset_m": _round(float(params["side_offset_m"])),
                    }
                    for i in np.flatnonzero(keep)
                ],
            )
        )
    return _report(ctx, layer, rule, roads, lines, found)


@rule_kind("listed_road_hazard", after=tuple(HAZARD_TYPES))
def listed_road_hazard(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Sections the authorities list in ``hazard_types`` and not yet rectified: one finding each.

    A listed type that a terrain rule of this run checks is reported only where that rule found
    nothing on the road (its own finding carries the measurement otherwise).
    """
    roads = ctx.frame(layer.id)
    types: Mapping[str, Mapping[str, Any]] = rule.params["hazard_types"]
    if roads.empty:
        return RuleResult(no_findings())
    lines = MetricLines.from_4326(roads.geometry)
    road_length = np.bincount(lines.feature, weights=lines.length, minlength=len(roads))
    listed = roads.assign(_length=road_length, _row=np.arange(len(roads))).explode("hazard_types")
    listed = listed[
        listed["hazard_types"].isin(list(types)) & ~listed["rectification_status"].isin(_DONE)
    ]
    checked: dict[str, set[str]] = {
        hazard: ctx.shared[f"{kind}:{layer.id}"]
        for kind, hazard in HAZARD_TYPES.items()
        if f"{kind}:{layer.id}" in ctx.shared
    }
    confirmed = [
        road in checked.get(hazard, set())
        for road, hazard in zip(listed["id"], listed["hazard_types"], strict=True)
    ]
    listed = listed[~np.asarray(confirmed, dtype=np.bool_)].sort_values(
        ["id", "hazard_types"], kind="stable"
    )
    hazard = listed["hazard_types"].to_numpy(dtype=object)
    terrain = [
        ("not detected" if h in checked else "not checked")
        if h in HAZARD_TYPES.values()
        else "not detectable"
        for h in hazard
    ]
    frame = findings_frame(
        rule,
        layer,
        hazard_ids=listed["id"].to_numpy(dtype=object),
        hazard_names=listed["road_name"].to_numpy(dtype=object),
        geometries=listed.geometry.to_numpy(),
        values=listed["_length"].to_numpy(dtype=float),
        thresholds=None,
        unit="m",
        risk_classes=[str(types[h]["risk_class"]) for h in hazard],
        target_ids=hazard,
        target_names=[str(types[h]["title"]) for h in hazard],
        evidence=[
            {
                "listed_as": h,
                "source": "authority list (road_sections.hazard_types)",
                "rectification_status": status,
                "terrain_check": check,
                "length_m": _round(length),
            }
            for h, status, check, length in zip(
                hazard, listed["rectification_status"], terrain, listed["_length"], strict=True
            )
        ],
    )
    if len(frame):
        frame["title"] = [f"主管部门认定：{types[h]['title']}" for h in hazard]
    return RuleResult(frame)


# -- what a terrain rule found, and how it is reported ------------------------------------------


@dataclass
class Found:
    """Sections one rule found for one cause, on parts of ``MetricLines`` (metres along a part)."""

    part: IntArray
    start: FloatArray
    end: FloatArray
    reverse: NDArray[np.bool_]  # drawn against the digitised direction (a downgrade's downhill)
    cause: str
    value: FloatArray
    threshold: FloatArray
    unit: str
    risk_class: NDArray[np.object_]
    evidence: list[dict[str, Any]]
    avg_grade: FloatArray | None = None
    min_radius: FloatArray | None = None
    drop: FloatArray | None = None
    water_distance: FloatArray | None = None
    title: str | None = None


def _report(
    ctx: RuleContext,
    layer: Layer,
    rule: Rule,
    roads: gpd.GeoDataFrame,
    lines: MetricLines | None,
    found: list[Found],
) -> RuleResult:
    """Sections as features of the result layer, and one finding per section."""
    frames, findings = [], []
    hazard_type = HAZARD_TYPES[rule.kind]
    for f in found:
        if lines is None or len(f.part) == 0:
            continue
        n = len(f.part)
        row = lines.feature[f.part]
        road_id = roads["id"].to_numpy(dtype=object)[row]
        road_name = roads["road_name"].to_numpy(dtype=object)[row]
        status = roads["rectification_status"].to_numpy(dtype=object)[row]
        road_types = roads["hazard_types"].to_numpy(dtype=object)[row]
        start_m = lines.offset[f.part] + f.start
        end_m = lines.offset[f.part] + f.end
        geometry = lines.substrings(f.part, f.start, f.end)
        geometry[f.reverse] = shapely.reverse(geometry[f.reverse])
        geometry = lines.to_4326(geometry, f.part)
        first = np.where(f.reverse, end_m, start_m)
        last = np.where(f.reverse, start_m, end_m)
        ids = [
            f"{road}/{f.cause}/{a:.0f}-{b:.0f}"
            for road, a, b in zip(road_id, first, last, strict=True)
        ]
        names = [f"{_station(a)}–{_station(b)}" for a, b in zip(first, last, strict=True)]
        length = end_m - start_m
        frames.append(
            gpd.GeoDataFrame(
                {
                    "id": ids,
                    "road_id": road_id,
                    "road_name": road_name,
                    "hazard_type": hazard_type,
                    "cause": f.cause,
                    "rule": rule.id,
                    "length_m": length,
                    "avg_grade": _column(f.avg_grade, n),
                    "min_radius_m": _column(f.min_radius, n),
                    "drop_m": _column(f.drop, n),
                    "water_distance_m": _column(f.water_distance, n),
                    "start_m": start_m,
                    "end_m": end_m,
                    "risk_class": f.risk_class,
                },
                geometry=geometry,
                crs=4326,
            )
        )
        evidence = [
            {
                **e,
                "section": ids[i],
                "start_m": _round(start_m[i]),
                "end_m": _round(end_m[i]),
                "length_m": _round(length[i]),
                "listed": bool(road_types[i] is not None and hazard_type in list(road_types[i])),
                "rectification_status": status[i],
            }
            for i, e in enumerate(f.evidence)
        ]
        findings.append(
            findings_frame(
                rule,
                layer,
                hazard_ids=road_id,
                hazard_names=road_name,
                geometries=geometry,
                values=f.value,
                thresholds=f.threshold,
                unit=f.unit,
                risk_classes=f.risk_class,
                target_layer=RESULT_LAYER,
                target_ids=ids,
                target_names=names,
                evidence=evidence,
                title=f.title,
            )
        )
    sections = _publish(ctx, layer, rule, frames)
    if not findings:
        return RuleResult(no_findings(), features=sections)
    frame = gpd.GeoDataFrame(pd.concat(findings, ignore_index=True), crs=4326)
    frame = frame.sort_values(["hazard_id", "target_id"], kind="stable").reset_index(drop=True)
    return RuleResult(frame, features=sections)


def _publish(
    ctx: RuleContext, layer: Layer, rule: Rule, frames: list[gpd.GeoDataFrame]
) -> dict[str, gpd.GeoDataFrame]:
    """Add this rule's sections to the run's set of all detected sections, and return that set.

    The engine replaces a result layer with each rule's frame in turn, so every terrain rule
    returns the whole set: sections of earlier rules of this run, and the stored sections of
    terrain rules this run does not run (a run of one rule keeps the others' sections).
    """
    detected = ctx.shared.setdefault(f"{rule.kind}:{layer.id}", set())
    for frame in frames:
        detected.update(frame["road_id"])
    if RESULT_LAYER not in ctx.catalogue:
        return {}
    result_layer = ctx.catalogue[RESULT_LAYER]
    current = ctx.shared.get(RESULT_LAYER)
    if current is None:
        stored = ctx.frame(RESULT_LAYER)
        terrain_rules = [r.id for _, r in ctx.catalogue.rules if r.kind in HAZARD_TYPES]
        current = stored[stored["rule"].isin(terrain_rules)]
    kept = current[current["rule"] != rule.id]
    parts = [kept, *(conform(result_layer, f) for f in frames if len(f))]
    parts = [p for p in parts if len(p)]
    merged = (
        conform(result_layer, gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326))
        if parts
        else empty_frame(result_layer)
    )
    ctx.shared[RESULT_LAYER] = merged
    return {RESULT_LAYER: merged}


# -- measuring ---------------------------------------------------------------------------------


def _water_distance(
    ctx: RuleContext, rule: Rule, lines: MetricLines, points: Samples, max_distance: float
) -> FloatArray:
    """Metres from each sample to the nearest water within ``max_distance`` (inf when none)."""
    layer_id = str(rule.params["water_layer"])
    if layer_id not in ctx.catalogue:
        raise ValueError(
            f"rule {rule.id}: water_layer {layer_id!r} is not a layer of the catalogue"
        )
    water = ctx.frame(layer_id)
    out = np.full(len(points), np.inf)
    if water.empty or len(points) == 0:
        return out
    polygons = np.asarray(water.geometry.values, dtype=object)
    reach = max_distance * (1 + _TOL)
    for number in range(len(lines.crs)):
        # the water in this zone's metres: the road's zone, whatever the water's centre
        projected = lines.project(polygons, number)
        tree = shapely.STRtree(projected)
        in_zone = np.flatnonzero(lines.zone == number)
        close = in_zone[np.unique(tree.query(lines.parts[in_zone], "dwithin", reach)[0])]
        index = np.flatnonzero(np.isin(points.part, close))  # samples of roads near water
        spots = shapely.points(points.x[index], points.y[index])
        near, which = tree.query(spots, predicate="dwithin", distance=reach)
        metres = shapely.distance(spots[near], projected[which])
        best = np.full(len(index), np.inf)
        np.minimum.at(best, near, metres)
        out[index] = best
    return out


def _side_drop(
    ctx: RuleContext,
    layer: Layer,
    rule: Rule,
    lines: MetricLines,
    points: Samples,
    offset: float,
) -> FloatArray:
    """How far the ground ``offset`` metres to the left or right falls below the road (m)."""
    dem = ctx.raster_path("dem")
    if dem is None:
        logger.warning(
            "rule %s: no DEM (layer dem): drops beside %s not checked", rule.id, layer.id
        )
        return np.full(len(points), np.nan)
    ahead_x, ahead_y = lines.points(points.part, points.s + 1.0)
    back_x, back_y = lines.points(points.part, points.s - 1.0)
    dx, dy = ahead_x - back_x, ahead_y - back_y
    norm = np.hypot(dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        nx, ny = -dy / norm, dx / norm  # the left normal
    part = points.part
    heights = lines.heights(
        dem,
        np.r_[part, part, part],
        np.r_[points.x, points.x + offset * nx, points.x - offset * nx],
        np.r_[points.y, points.y + offset * ny, points.y - offset * ny],
    )
    n = len(points)
    road, left, right = heights[:n], heights[n : 2 * n], heights[2 * n :]
    return np.fmax(road - left, road - right)


def _ends(
    lines: MetricLines, part: IntArray, start: FloatArray, end: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """The start and end points of sections, as (part, x, y) for ``MetricLines.heights``."""
    sx, sy = lines.points(part, start)
    ex, ey = lines.points(part, end)
    return np.r_[part, part], np.r_[sx, ex], np.r_[sy, ey]


def _roads(ctx: RuleContext, layer: Layer, rule: Rule) -> gpd.GeoDataFrame:
    """The roads a terrain rule measures: not bridges or tunnels (the DEM is not their roadway)."""
    roads = ctx.frame(layer.id)
    skip = rule.params.get("skip_structures") or []
    if len(skip) and "structure" in roads:
        roads = roads[~roads["structure"].isin(skip)].reset_index(drop=True)
    return roads


def _dem(ctx: RuleContext, layer: Layer, rule: Rule) -> Path:
    path = ctx.raster_path("dem")
    if path is None:
        raise ValueError(
            f"rule {rule.id} measures grades of {layer.id} on the terrain and needs a DEM: "
            "import one into the raster layer 'dem'"
        )
    return path


def _design_speeds(roads: gpd.GeoDataFrame, params: Mapping[str, Any]) -> FloatArray:
    default = float(params["default_design_speed_kmh"])
    speeds = pd.to_numeric(roads["design_speed_kmh"], errors="coerce").astype(float)
    return speeds.fillna(default).to_numpy(dtype=float)


def _by_speed(table: Mapping[Any, Any], speeds: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The table row for each speed: the fastest row not faster than it (else the slowest)."""
    rows = np.array(sorted(float(k) for k in table))
    values = np.array([float(table[k]) for k in sorted(table, key=float)])
    index = np.clip(np.searchsorted(rows, speeds * (1 + _TOL), side="right") - 1, 0, len(rows) - 1)
    return rows[index], values[index]


def _classify(
    values: FloatArray, bands: Mapping[str, float], *, higher_is_worse: bool
) -> NDArray[np.object_]:
    """Four-colour class of each value: the worst band it reaches, else blue."""
    unknown = set(bands) - set(RISK_CLASSES)
    if unknown:
        raise ValueError(f"risk class bands name unknown classes: {sorted(unknown)}")
    out = np.full(len(values), "blue", dtype=object)
    for name in reversed(RISK_CLASSES):  # blue, yellow, orange, red: the worst band wins
        if name not in bands:
            continue
        bound = float(bands[name])
        reached = values >= bound * (1 - _TOL) if higher_is_worse else values <= bound * (1 + _TOL)
        out[reached] = name
    return out


def _column(values: FloatArray | None, n: int) -> FloatArray:
    return np.full(n, np.nan) if values is None else np.asarray(values, dtype=float)


def _station(metres: float) -> str:
    """Chainage as road engineers write it: 3,215 m → ``K3+215``."""
    whole = round(float(metres))
    return f"K{whole // 1000}+{whole % 1000:03d}"


def _round(value: float, digits: int = 2) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)
