"""Railways and roads.

A conventional line along the valley and a high-speed line across it; the city's street grid,
an expressway, a river-bank road, and a mountain road climbing in hairpins. The roads make one
network: the provincial road enters the grid, a stretch of ring road joins the streets the
railway cut off, and two interchanges join the expressway to the grid. A road over railway track
crosses on a bridge section of its own, or at grade (a level crossing) where a village road
meets the line in open country.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from geo_service.demo.names import STREETS_EW, STREETS_NS
from geo_service.demo.region import (
    CORE_RADIUS,
    HALF_U,
    HALF_V,
    Array,
    SideValley,
    across,
    beyond_floor,
    core_centre,
    floor_half_width,
    point_at,
    point_up_hill,
    river_half_width,
    river_polygon,
    valley_line,
)
from geo_service.demo.scene import Scene
from geo_service.demo.terrain import Dem

CONVENTIONAL = "清宜铁路"
HIGH_SPEED = "沿江高速铁路"
GRID_RADIUS = CORE_RADIUS + 200
GRID_SPACING = 400.0
HSR_ENDS = ((5_900.0, HALF_V), (6_900.0, -HALF_V))
BRIDGE_HALF_SPAN = 60.0  # a road bridge over railway track reaches this far each side of it (m)
# the expressway's interchanges: the link road from each climbs to the south end of the k-th
# north–south street of the grid east of the core's centre (west when negative)
_INTERCHANGES = ((-4, "清河西互通连接线"), (2, "清河东互通连接线"))

# area class of the conventional line by easting: (up to this u, class)
_CONVENTIONAL_AREAS = (
    (-10_500, "other"), (-4_000, "village"), (-2_700, "suburban"), (1_700, "urban"),
    (5_500, "suburban"), (9_000, "other"), (HALF_U + 1, "village"),
)  # fmt: skip
_SPEEDS = {"expressway": 100, "class_2": 60, "class_3": 40, "class_4": 20, "rural": 30,
           "urban_primary": 60, "urban_secondary": 40}  # fmt: skip


def rail_offset(u: ArrayLike) -> Array:
    """Where the conventional line runs: metres north of the river (it crosses it in the west)."""
    u = np.asarray(u, dtype=float)
    x = np.clip((u + 9_500) / 4_000, 0.0, 1.0)
    return np.asarray((-0.35 + 1.07 * (1 - np.cos(np.pi * x)) / 2) * floor_half_width(u))


def expressway_offset(u: ArrayLike) -> Array:
    """Where the expressway runs: on the southern floor."""
    return np.asarray(-0.7 * floor_half_width(u))


def north_road_offset(u: ArrayLike) -> Array:
    """Where the provincial road runs: on the northern floor."""
    return np.asarray(0.4 * floor_half_width(u))


def build_rail(scene: Scene) -> None:
    """Both railway lines, split into sections by structure and area class."""
    conventional = valley_line(rail_offset, -HALF_U, HALF_U, step=25)
    scene.lines["rail_conventional"] = conventional
    coords = np.asarray(conventional.coords)
    d = across(coords[:, 0], coords[:, 1])
    bridge = np.abs(d) <= river_half_width(coords[:, 0]) + 60
    labels = [
        ("bridge" if b else "track", _conventional_area(u))
        for u, b in zip(coords[:, 0], bridge, strict=True)
    ]
    for (structure, area), part in split_runs(coords, labels):
        gazetted = 12.0 if area == "suburban" and part[0, 0] < -2_700 else None
        _add_rail(scene, part, CONVENTIONAL, "conventional", area, structure, gazetted)

    start, end = HSR_ENDS
    n = round(np.hypot(end[0] - start[0], end[1] - start[1]) / 25)
    coords = np.column_stack(
        [np.linspace(start[0], end[0], n + 1), np.linspace(start[1], end[1], n + 1)]
    )
    scene.lines["rail_high_speed"] = LineString(coords)
    s = beyond_floor(coords[:, 0], coords[:, 1])
    north = across(coords[:, 0], coords[:, 1]) > 0
    labels = [_high_speed_label(si, ni) for si, ni in zip(s, north, strict=True)]
    for (structure, area), part in split_runs(coords, labels):
        _add_rail(scene, part, HIGH_SPEED, "high_speed", area, structure, None)


def build_roads(scene: Scene) -> None:
    """The road network (the side-valley roads come with the villages they serve)."""
    _expressway(scene)
    north_road = _north_road(scene)
    grid = _urban_grid(scene)
    _station_road(scene)
    _river_road(scene)
    _level_crossing_road(scene)
    _mountain_road(scene)
    _into_grid(scene, north_road, grid)
    _ring_road(scene, grid)
    _interchanges(scene, grid)


def add_road(
    scene: Scene,
    geometry: LineString,
    name: str,
    road_class: str,
    *,
    hazards: list[str] | None = None,
    status: str = "none",
    speed: int | None = None,
    structure: str | None = None,
) -> str:
    """Add one road section; returns its id."""
    props = {
        "road_name": name,
        "road_class": road_class,
        "design_speed_kmh": speed or _SPEEDS[road_class],
        "structure": structure,
        "hazard_types": hazards,
        "rectification_status": status,
    }
    return scene.add("road_sections", props, geometry, "road", 3)


def add_road_across_rail(
    scene: Scene,
    geometry: LineString,
    name: str,
    road_class: str,
    *,
    level_crossing: bool = False,
    **props: Any,
) -> list[str]:
    """Add a road that may cross railway track; returns the ids of its sections.

    Over track the road crosses on a bridge: the stretch within ``BRIDGE_HALF_SPAN`` of each
    crossing is a section of its own with ``structure: bridge``. With ``level_crossing`` it
    crosses at grade instead: one section, ``structure: road``, listed as a level crossing. A
    railway bridge or tunnel needs neither (the road passes under or over it as it is).
    """
    track = shapely.union_all(
        [r.geometry for r in scene.layers["rail_corridors"] if r.props["structure"] == "track"]
    )
    hits = geometry.intersection(track)
    at = [] if hits.is_empty else sorted(geometry.project(p) for p in shapely.get_parts(hits))
    if not at:
        return [add_road(scene, geometry, name, road_class, **props)]
    if level_crossing:
        hazards = sorted({*(props.pop("hazards", None) or []), "level_crossing"})
        return [
            add_road(
                scene, geometry, name, road_class,
                hazards=hazards, status="identified", structure="road", **props,
            )
        ]  # fmt: skip
    spans: list[list[float]] = []
    for s in at:
        lo, hi = max(s - BRIDGE_HALF_SPAN, 0.0), min(s + BRIDGE_HALF_SPAN, geometry.length)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = hi
        else:
            spans.append([lo, hi])
    cuts = [0.0, *(x for span in spans for x in span), geometry.length]
    ids = []
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        if b - a > 1e-6:
            structure = "bridge" if k % 2 else None
            piece = substring(geometry, a, b)
            ids.append(add_road(scene, piece, name, road_class, structure=structure, **props))
    return ids


def valley_road(
    scene: Scene, valley: SideValley, s_to: float, name: str, from_d: float
) -> LineString:
    """A village road from the valley floor (``from_d`` north of the river) up a side valley.

    Where it crosses the conventional line in open country (a village or other area) it crosses
    at grade, nearer the town on a bridge. Returns the whole road.
    """
    s = np.arange(0.0, s_to + 1, 40.0)
    sign = 1.0 if valley.side == "north" else -1.0
    u_mouth = float(valley.centre_u(0.0))
    floor = [
        point_at(u_mouth + 40, from_d),
        point_at(u_mouth + 40, sign * float(floor_half_width(u_mouth + 40))),
    ]
    up = [point_up_hill(float(valley.centre_u(si)) + 40, valley.side, float(si)) for si in s[1:]]
    road = LineString(floor + up)
    rural = _conventional_area(u_mouth + 40) in ("village", "other")
    add_road_across_rail(scene, road, name, "class_4", level_crossing=rural)
    return road


def split_runs(coords: np.ndarray, labels: Sequence[Hashable]) -> list[tuple[Any, np.ndarray]]:
    """Split a polyline into runs of equal label; neighbouring runs share their boundary vertex."""
    runs: list[tuple[Any, np.ndarray]] = []
    start = 0
    for i in range(1, len(coords) + 1):
        if i == len(coords) or labels[i] != labels[start]:
            end = min(i + 1, len(coords))
            if end - start >= 2:
                runs.append((labels[start], coords[start:end]))
            start = i
    return runs


def _conventional_area(u: float) -> str:
    return next(area for bound, area in _CONVENTIONAL_AREAS if u < bound)


def _high_speed_label(s: float, north: bool) -> tuple[str, str]:
    portal = 450.0 if north else 600.0
    if s > portal:
        return ("tunnel", "other")
    if s > -60:
        return ("track", "other")
    return ("bridge", "suburban")


def _add_rail(
    scene: Scene,
    coords: np.ndarray,
    name: str,
    kind: str,
    area: str,
    structure: str,
    gazetted: float | None,
) -> None:
    props = {
        "line_name": name,
        "rail_type": kind,
        "area_class": area,
        "structure": structure,
        "gazetted_zone_width_m": gazetted,
    }
    scene.add("rail_corridors", props, LineString(coords), "rail", 2)


def _expressway(scene: Scene) -> None:
    bounds = np.linspace(-HALF_U, HALF_U, 7)
    for i, (u0, u1) in enumerate(itertools.pairwise(bounds)):
        line = valley_line(expressway_offset, u0, u1)
        fog = i == 3  # the section by the river's bend below the city fogs up in winter
        add_road(
            scene,
            line,
            "S58清宜高速",
            "expressway",
            hazards=["fog_prone"] if fog else None,
            status="verified" if fog else "none",
        )
    scene.lines["expressway"] = valley_line(expressway_offset, -HALF_U, HALF_U)


def _north_road(scene: Scene) -> list[str]:
    line = valley_line(north_road_offset, -HALF_U, HALF_U)
    outside = line.difference(_core_disc(GRID_RADIUS - 5))
    ids = []
    for part in shapely.get_parts(outside):
        pieces = [part] if part.length < 9_000 else _cut_at_u(part, 6_000.0)
        for piece in pieces:
            ids += add_road_across_rail(scene, piece, "S255省道", "class_2")
    return ids


def _urban_grid(scene: Scene) -> list[str]:
    cu, cv = core_centre()
    south = _south_of_rail(80)
    # the railway splits the grid: only the station road crosses it
    area = (
        _core_disc(GRID_RADIUS)
        .intersection(south)
        .union(_core_disc(GRID_RADIUS).difference(_south_of_rail(-80)))
    )
    river = river_polygon()
    ids = []
    for k in range(-5, 6):
        primary = k % 2 == 0
        road_class = "urban_primary" if primary else "urban_secondary"
        ns = LineString(
            [(cu + k * GRID_SPACING, cv - GRID_RADIUS), (cu + k * GRID_SPACING, cv + GRID_RADIUS)]
        )
        ns = ns.intersection(area)
        if not primary:
            ns = ns.difference(river.buffer(15))
        ew = LineString(
            [(cu - GRID_RADIUS, cv + k * GRID_SPACING), (cu + GRID_RADIUS, cv + k * GRID_SPACING)]
        )
        ew = ew.intersection(area).difference(river.buffer(60))
        for geom, name in ((ns, STREETS_NS[k + 5]), (ew, STREETS_EW[k + 5])):
            for part in shapely.get_parts(
                shapely.line_merge(geom) if geom.geom_type == "MultiLineString" else geom
            ):
                if part.length > 150:
                    ids.append(add_road(scene, part, name, road_class))
    return ids


def _station_road(scene: Scene) -> None:
    cu, _ = core_centre()
    rail_v = float(point_at(cu, float(rail_offset(cu)))[1])
    road = LineString([(cu, rail_v - 80), (cu, rail_v + 80)])
    scene.truth["road_over_rail"] = add_road(
        scene, road, "站前路跨线桥", "urban_primary", speed=50, structure="bridge"
    )
    scene.lines["railway_station"] = shapely.Point(cu + 150, rail_v + 70)


def _river_road(scene: Scene) -> None:
    line = valley_line(lambda u: river_half_width(u) + 15, -2_300, 1_300, step=20)
    scene.truth["river_road"] = add_road(
        scene, line, "滨江路", "urban_secondary", hazards=["along_water_cliff"], status="identified"
    )


def _level_crossing_road(scene: Scene) -> None:
    u = -11_000.0
    width = float(floor_half_width(u))
    road = LineString([point_at(u, -0.7 * width), point_at(u, -0.1 * width)])
    scene.truth["level_crossing_road"] = add_road(
        scene,
        road,
        "Y015乡道",
        "rural",
        hazards=["level_crossing"],
        status="identified",
        structure="road",
    )


def _mountain_road(scene: Scene) -> None:
    """A county road from the expressway up the southern hills in hairpinned legs."""
    u0 = 7_300.0
    start = point_at(u0, float(expressway_offset(u0)))
    foot = point_up_hill(u0, "south", 100)
    add_road(scene, LineString([start, foot]), "X012清岭公路", "class_3")
    climb = switchbacks(scene.dem, foot, uphill=-1.0, grade=0.07, legs=7, span=560.0)
    scene.truth["mountain_road"] = add_road(
        scene,
        LineString(climb),
        "X012清岭公路",
        "class_3",
        hazards=["long_steep_downgrade", "sharp_curve_steep_slope"],
        status="rectifying",
    )
    top = _grade_leg(scene.dem, climb[-1], 1.0, -1.0, 0.03, 200.0)
    add_road(scene, LineString(top), "X012清岭公路", "class_3")
    scene.lines["mountain_top"] = shapely.Point(top[-1])


def _into_grid(scene: Scene, north_road: list[str], grid: list[str]) -> None:
    """The provincial road stops at the grid's edge: it carries on to the nearest street's end."""
    cu, cv = core_centre()
    streets = _ends(scene, grid)
    for end in _ends(scene, north_road):
        if np.hypot(end[0] - cu, end[1] - cv) < GRID_RADIUS:
            street = streets[np.argmin(np.hypot(*(streets - end).T))]
            add_road(scene, LineString([end, street]), "S255省道", "class_2")


def _ring_road(scene: Scene, grid: list[str]) -> None:
    """Streets the railway cut off from the rest of the grid join it along the grid's edge.

    Each street that meets no other road runs on, along the circle where the grid ends, to the
    nearest end of another street there.
    """
    cu, cv = core_centre()
    roads = scene.geometries("road_sections")
    tree = shapely.STRtree(roads)
    by_id = {f.id: f.geometry for f in scene.layers["road_sections"]}
    for fid in grid:
        if len(tree.query(by_id[fid], predicate="dwithin", distance=1.0)) > 1:
            continue  # it meets another road
        mine = _ring_ends(scene, [fid])
        theirs = _ring_ends(scene, [g for g in grid if g != fid])
        if not len(mine) or not len(theirs):
            continue
        turns = _wrap(_ring_angle(theirs)[None, :] - _ring_angle(mine)[:, None])
        i, j = np.unravel_index(np.argmin(np.abs(turns)), turns.shape)
        turn = float(turns[i, j])
        steps = max(2, int(np.ceil(abs(turn) * GRID_RADIUS / 25.0)))
        phis = _ring_angle(mine[i : i + 1])[0] + np.linspace(0.0, turn, steps + 1)
        arc = np.column_stack([cu + GRID_RADIUS * np.cos(phis), cv + GRID_RADIUS * np.sin(phis)])
        arc[0], arc[-1] = mine[i], theirs[j]
        add_road(scene, LineString(arc), "环城路", "urban_secondary")


def _interchanges(scene: Scene, grid: list[str]) -> None:
    """Link roads from the expressway's interchanges north to the south ends of grid streets."""
    cu, _ = core_centre()
    expressway = np.vstack(
        [
            np.asarray(f.geometry.coords)
            for f in scene.layers["road_sections"]
            if f.props["road_class"] == "expressway"
        ]
    )
    streets = _ends(scene, grid)
    for k, name in _INTERCHANGES:
        u = cu + k * GRID_SPACING
        on_street = streets[np.abs(streets[:, 0] - u) < 1e-6]
        south = on_street[np.argmin(on_street[:, 1])]
        junction = expressway[np.argmin(np.abs(expressway[:, 0] - u))]
        add_road(scene, LineString([junction, south]), name, "class_2")


def _ends(scene: Scene, ids: list[str]) -> np.ndarray:
    """Both ends of each of the roads ``ids``, as rows of (u, v)."""
    wanted = set(ids)
    lines = [f.geometry for f in scene.layers["road_sections"] if f.id in wanted]
    ends = [xy for line in lines for xy in (line.coords[0], line.coords[-1])]
    return np.array(ends, dtype=float).reshape(-1, 2)


def _ring_ends(scene: Scene, ids: list[str]) -> np.ndarray:
    """The ends of the roads ``ids`` that lie on the circle where the grid ends."""
    cu, cv = core_centre()
    ends = _ends(scene, ids)
    return ends[np.abs(np.hypot(ends[:, 0] - cu, ends[:, 1] - cv) - GRID_RADIUS) < 2.0]


def _ring_angle(points: np.ndarray) -> np.ndarray:
    cu, cv = core_centre()
    return np.arctan2(points[:, 1] - cv, points[:, 0] - cu)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles into (-π, π]."""
    return np.asarray(np.pi - np.mod(np.pi - angle, 2 * np.pi))


def switchbacks(
    dem: Dem,
    start: tuple[float, float],
    *,
    uphill: float,
    grade: float,
    legs: int,
    span: float,
    radius: float = 28.0,
) -> np.ndarray:
    """A road climbing a hillside (uphill towards ``uphill`` · north) in legs across the slope.

    Each leg runs ``span`` metres east or west keeping the climb at ``grade`` (the line a road
    engineer pegs out); between legs the road turns back uphill along a half circle of
    ``radius``. Legs never cross: each runs higher than the one before at every easting.
    """
    points = np.array([start], dtype=float)
    heading = 1.0
    for leg in range(legs):
        points = np.vstack([points, _grade_leg(dem, points[-1], heading, uphill, grade, span)[1:]])
        if leg < legs - 1:
            points = np.vstack([points, _hairpin(points[-1], heading, uphill, radius)])
            heading = -heading
    return points


def _grade_leg(
    dem: Dem,
    start: np.ndarray,
    heading: float,
    uphill: float,
    grade: float,
    span: float,
    step: float = 15.0,
) -> np.ndarray:
    """Walk ``span`` metres along u, at each step finding the v where the road keeps its grade."""
    points = [np.asarray(start, dtype=float)]
    z = float(dem.sample(points[0][:1], points[0][1:])[0])
    offsets = uphill * np.arange(-150.0, 300.0, 2.0)
    for _ in range(round(span / step)):
        u, v = points[-1][0] + heading * step, points[-1][1]
        profile = dem.sample(np.full(offsets.shape, u), v + offsets)
        target = z + grade * np.hypot(step, 10.0)  # a first guess of the step's length
        above = np.flatnonzero((profile[1:] >= target) & (profile[:-1] < target))
        index = (
            int(above[np.argmin(np.abs(offsets[above]))])
            if len(above)
            else int(np.argmin(np.abs(profile - target)))
        )
        points.append(np.array([u, v + offsets[index]]))
        z = float(profile[index])
    return np.array(points)


def _hairpin(here: np.ndarray, heading: float, uphill: float, radius: float) -> np.ndarray:
    """The half circle turning a road back on itself, ``2 * radius`` further uphill."""
    centre = here + np.array([0.0, uphill * radius])
    phi0 = np.arctan2(here[1] - centre[1], here[0] - centre[0])
    # the turn starts heading along ``heading`` and bends towards uphill
    turn = 1.0 if heading * uphill > 0 else -1.0
    phis = phi0 + turn * np.linspace(0, np.pi, 13)[1:]
    return centre + radius * np.column_stack([np.cos(phis), np.sin(phis)])


def _core_disc(radius: float) -> Polygon:
    return shapely.Point(core_centre()).buffer(radius, quad_segs=32)


def _south_of_rail(margin: float) -> Polygon:
    edge = valley_line(lambda u: rail_offset(u) - margin, -HALF_U - 100, HALF_U + 100)
    return Polygon(
        [*edge.coords, (HALF_U + 100, -HALF_V - 1_000), (-HALF_U - 100, -HALF_V - 1_000)]
    )


def _cut_at_u(line: BaseGeometry, u: float) -> list[BaseGeometry]:
    west = line.intersection(shapely.box(-HALF_U - 10, -HALF_V - 10, u, HALF_V + 10))
    east = line.intersection(shapely.box(u, -HALF_V - 10, HALF_U + 10, HALF_V + 10))
    return [g for g in (west, east) if not g.is_empty]
