"""Fire lanes beside the high-rises, protection targets, and fire stations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.strtree import STRtree

from geo_service.demo.landscape import DISTRICT_NAMES, admin_code_at
from geo_service.demo.names import CITY
from geo_service.demo.region import (
    across,
    core_centre,
    floor_half_width,
    point_at,
    river_half_width,
)
from geo_service.demo.scene import Scene

LANELESS_TOWERS = 5  # high-rises left with no fire lane near them
COMPOUND_TARGETS = 12  # the largest residential compounds of the core become protection targets
_FIRST_INSPECTION = dt.date(2020, 5, 1)

# category, names (the first ones in the core, the rest in the suburbs), how many in the core,
# occupants range
_TARGETS = (
    ("school", ("第一中学", "第二中学", "实验中学", "第一小学", "第二小学", "育才小学",
                "第三中学", "城南小学", "城西小学"), 6, (700, 2_600)),
    ("kindergarten", ("第一幼儿园", "实验幼儿园", "阳光幼儿园", "红星幼儿园", "蓝天幼儿园",
                      "育英幼儿园", "滨江幼儿园", "城西幼儿园"), 6, (120, 420)),
    ("hospital", ("人民医院", "中医院", "妇幼保健院", "第二人民医院"), 3, (400, 1_600)),
    ("elderly_home", ("社会福利院", "夕阳红养老院", "康乐养老院", "松鹤养老院", "颐和养老院"), 3,
     (60, 320)),
    ("government", ("人民政府", "区人民政府"), 2, (150, 800)),
)  # fmt: skip
_CROWDED = (
    ("清河农贸市场", 2_500),
    ("清河体育中心", 18_000),
    ("万达广场", 9_000),
    ("清河火车站", 6_000),
)
_STATIONS = (
    ("清河区消防救援站", "standard", 7, -900.0, 1_500.0),
    ("江南区消防救援站", "standard", 6, 300.0, -900.0),
    ("化工园区特勤消防站", "special", 11, 8_300.0, 900.0),
    ("西陵消防救援站", "small", 3, -8_000.0, -500.0),
    ("高新区消防救援站", "small", 4, 3_800.0, 600.0),
)


def build_fire_lanes(scene: Scene, high_rise_m: float) -> None:
    """A lane beside most buildings of ``high_rise_m`` or taller; a few are left without one."""
    rng = scene.rng("fire lanes")
    buildings = scene.layers["buildings"]
    towers = [b for b in buildings if (b.props.get("height_m") or 0) >= high_rise_m]
    laneless = {
        towers[int(i)].id for i in rng.choice(len(towers), size=LANELESS_TOWERS, replace=False)
    }
    bare = [b.geometry.buffer(60) for b in towers if b.id in laneless]
    for tower in towers:
        lane = _lane_beside(tower.geometry, rng)
        if tower.id in laneless or any(lane.intersects(z) for z in bare):
            continue
        width = _pick(rng, [(0.82, (4.0, 7.0)), (0.18, (3.0, 3.5))])
        height = _pick(rng, [(0.9, (4.0, 5.0)), (0.1, (3.5, 3.5))])
        days = int(rng.integers(0, (dt.date(2021, 11, 30) - _FIRST_INSPECTION).days))
        props = {
            "name": f"{tower.props.get('name') or '高层建筑'}消防车道",
            "width_m": round(width * 2) / 2,
            "clear_height_m": round(height * 2) / 2,
            "obstructed": bool(rng.random() < 0.1),
            "last_inspected": _FIRST_INSPECTION + dt.timedelta(days=days),
            "serves_building": tower.id,
        }
        scene.add("fire_lifelines", props, lane, "lane", 4)
    lanes = STRtree(scene.geometries("fire_lifelines"))
    scene.truth["high_rises_without_lane"] = [
        t.id for t in towers if not len(lanes.query(t.geometry, predicate="dwithin", distance=50.0))
    ]


def build_targets(scene: Scene) -> None:
    """Schools, kindergartens, hospitals, homes, compounds, crowded places, offices, intakes."""
    rng = scene.rng("targets")
    cu, cv = core_centre()
    placed: list[tuple[float, float]] = []
    for category, names, in_core, occupants in _TARGETS:
        for k, name in enumerate(names):
            radius = (300, 1_800) if k < in_core else (2_500, 4_500)
            u, v = _free_spot(scene, rng, (cu, cv), radius, placed)
            name = f"{CITY}{name}"
            if name.endswith("区人民政府"):  # the district office is named after its district
                name = f"{DISTRICT_NAMES[admin_code_at(scene, (u, v))]}人民政府"
            props = {"name": name, "category": category, "occupants": int(rng.integers(*occupants))}
            geometry: Point | Polygon = Point(u, v)
            if category == "school" and k < 2:  # two campuses drawn as their grounds
                geometry = Point(u, v).buffer(90, quad_segs=4)
            _add_target(scene, props, geometry)
    for name, crowd in _CROWDED:
        u, v = _free_spot(scene, rng, (cu, cv), (200, 1_600), placed)
        if name.endswith("火车站"):
            station = scene.lines["railway_station"]
            u, v = float(shapely.get_x(station)), float(shapely.get_y(station))
        geometry = Point(u, v).buffer(110, quad_segs=8) if "体育" in name else Point(u, v)
        _add_target(
            scene, {"name": name, "category": "crowded_place", "occupants": crowd}, geometry
        )
    _compounds(scene)
    for name, u, side in (
        ("清河市第一水厂取水口", -5_200.0, 1.0),
        ("江南水厂取水口", 1_800.0, -1.0),
    ):
        spot = point_at(u, side * (float(river_half_width(u)) - 8))
        _add_target(scene, {"name": name, "category": "water_intake", "occupants": 12}, Point(spot))


def build_stations(scene: Scene) -> None:
    """Five fire stations: two in the core, one in the chemical park, two in the suburbs."""
    for name, kind, appliances, u, d in _STATIONS:
        props = {"name": name, "station_class": kind, "appliances": appliances}
        scene.add("fire_stations", props, Point(point_at(u, d)), "station", 2)


def _compounds(scene: Scene) -> None:
    """A residential-compound target over each of the largest compounds of the core."""
    largest = sorted(scene.compounds.items(), key=lambda item: -item[1][1])[:COMPOUND_TARGETS]
    for name, (outline, residents) in sorted(largest):
        props = {"name": name, "category": "residential", "occupants": residents}
        _add_target(scene, props, outline)


def _add_target(scene: Scene, props: dict[str, Any], geometry: Point | Polygon) -> None:
    props = {**props, "admin_code": admin_code_at(scene, geometry.centroid)}
    scene.add("protection_targets", props, geometry, "target", 3)


def _free_spot(
    scene: Scene,
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: tuple[float, float],
    placed: list[tuple[float, float]],
) -> tuple[float, float]:
    """A spot on the valley floor in a ring around ``centre``, off the river, 150 m from others."""
    while True:
        r, a = rng.uniform(*radius), rng.uniform(0, 2 * np.pi)
        u, v = centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)
        d = abs(float(across(u, v)))
        if d < river_half_width(u) + 120 or d > floor_half_width(u) - 150:
            continue
        if not scene.keepout.free([Point(u, v).buffer(20)])[0]:
            continue
        if all(np.hypot(u - p, v - q) > 150 for p, q in placed):
            placed.append((float(u), float(v)))
            return float(u), float(v)


def _lane_beside(footprint: Polygon, rng: np.random.Generator) -> LineString:
    """A lane along the building's longest side, 7–9 m out from the wall and 10 m past each end."""
    ring = np.asarray(footprint.exterior.coords)[:-1]
    edges = np.roll(ring, -1, axis=0) - ring
    k = int(np.argmax(np.hypot(edges[:, 0], edges[:, 1]) + rng.uniform(0, 0.01, size=len(edges))))
    a, b = ring[k], ring[(k + 1) % len(ring)]
    along = (b - a) / np.hypot(*(b - a))
    outward = np.array([along[1], -along[0]])  # exterior rings run counter-clockwise
    if shapely.contains(footprint, Point(*(a + b) / 2 + outward)):
        outward = -outward
    offset = outward * rng.uniform(7, 9)
    return LineString(np.round([a - along * 10 + offset, b + along * 10 + offset], 2))


def _pick(rng: np.random.Generator, choices: list[tuple[float, tuple[float, float]]]) -> float:
    weights = np.array([w for w, _ in choices])
    lo, hi = choices[int(rng.choice(len(choices), p=weights / weights.sum()))][1]
    return float(rng.uniform(lo, hi))
