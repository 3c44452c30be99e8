"""Hazards: tailings ponds, chemical plants, industrial parks, and mines.

Three of the six ponds are head-top; nine small plants sit in the dense core, twelve in the
chemical park downstream; a quarry blasts within a kilometre of the high-speed line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo_service.demo.city import industrial_site, place_village, rectangle
from geo_service.demo.landscape import DISTRICT_NAMES, admin_code_at
from geo_service.demo.names import (
    CITY,
    STREETS_EW,
    STREETS_NS,
    company_names,
    credit_code,
    village_names,
)
from geo_service.demo.region import (
    CORE_RADIUS,
    HALF_U,
    SIDE_VALLEYS,
    across,
    core_centre,
    floor_half_width,
    point_at,
    point_up_hill,
    river_half_width,
    valley_line,
)
from geo_service.demo.scene import Scene, Village
from geo_service.demo.transport import HSR_ENDS, north_road_offset, rail_offset, valley_road

HEADTOP_PATH_M = 1_000.0


@dataclass(frozen=True)
class PondSpec:
    """A tailings pond: where its starter dam's toe is, and what lives below or above it."""

    id: str
    valley: str
    toe_s: float  # distance of the toe beyond the floor's edge, along the side valley
    setting: str  # headtop: a village 300–900 m downstream; upstream: a village behind; remote
    name: str
    mineral: str
    capacity_m3: float
    dam_height_m: float
    grade: int | None  # None: left for the catalogue's derivation
    status: str
    monitoring: bool


PONDS = (
    PondSpec(
        "pond-01",
        "黄家沟",
        3_200,
        "upstream",
        "清河磷化有限公司黄家沟尾矿库",
        "磷矿",
        2.6e7,
        72,
        3,
        "operating",
        True,
    ),
    PondSpec(
        "pond-02",
        "石门沟",
        1_600,
        "headtop",
        "清河市石门铜业有限公司石门沟尾矿库",
        "铜矿",
        4.5e6,
        42,
        None,
        "operating",
        False,
    ),
    PondSpec(
        "pond-03",
        "青龙沟",
        1_800,
        "headtop",
        "青龙矿业有限公司青龙沟尾矿库",
        "铁矿",
        1.25e8,
        105,
        2,
        "operating",
        True,
    ),
    PondSpec(
        "pond-04",
        "白岩沟",
        4_500,
        "remote",
        "白岩金矿尾矿库",
        "金矿",
        6.0e5,
        22,
        None,
        "closed",
        False,
    ),
    PondSpec(
        "pond-05",
        "杨柳沟",
        1_500,
        "headtop",
        "杨柳沟铅锌矿尾矿库",
        "铅锌矿",
        3.2e6,
        65,
        None,
        "idle",
        False,
    ),
    PondSpec(
        "pond-06",
        "桃树沟",
        2_800,
        "upstream",
        "清河磷化有限公司桃树沟尾矿库",
        "磷矿",
        8.0e6,
        48,
        4,
        "closing",
        True,
    ),
)

PARK_D = (150.0, 820.0)  # the chemical park: metres north of the river …
PARK_U = (7_200.0, 9_900.0)  # … and eastings


def build_ponds(scene: Scene) -> None:
    """The six ponds at their dam toes, with the villages that make three of them head-top."""
    rng = scene.rng("ponds")
    names = iter(village_names(scene.rng("pond villages"), 6))
    expected: dict[str, bool] = {}
    for spec in PONDS:
        valley = SIDE_VALLEYS[spec.valley]
        toe = scene.dem.lowest_near(*valley.thalweg_point(spec.toe_s), radius=45.0)
        props = {
            "name": spec.name,
            "total_capacity_m3": spec.capacity_m3,
            "dam_height_m": float(spec.dam_height_m),
            "grade": spec.grade,
            "status": spec.status,
            "online_monitoring": spec.monitoring,
            "mineral": spec.mineral,
            "admin_code": admin_code_at(scene, toe),
            "pond_area": _pond_outline(scene, spec),
        }
        scene.add("tailings_ponds", props, Point(toe), "pond", 2)
        expected[spec.id] = spec.setting == "headtop"
        if spec.setting == "headtop":
            _downstream_village(scene, rng, spec, toe, next(names))
        elif spec.setting == "upstream":
            _upstream_village(scene, rng, spec, next(names))
    scene.truth["headtop_expected"] = expected


def _pond_outline(scene: Scene, spec: PondSpec) -> BaseGeometry:
    """The pond behind the dam: the side valley's floor up from the toe, sized by capacity.

    Kept clear of new buildings; it ends well below any upstream village (950 m up).
    """
    valley = SIDE_VALLEYS[spec.valley]
    length = float(np.clip(120.0 * spec.capacity_m3 ** (1 / 3) / 100.0, 250.0, 650.0))
    s = np.linspace(spec.toe_s + 30.0, spec.toe_s + 30.0 + length, 24)
    thalweg = LineString([valley.thalweg_point(float(x)) for x in s])
    half_width = float(np.clip(length / 4.0, 70.0, 160.0))
    local = thalweg.buffer(half_width, cap_style="flat", quad_segs=8)
    scene.keepout.add(local, margin=10.0)
    return shapely.transform(local, lambda xy: np.column_stack(scene.frame.local_to_lonlat(*xy.T)))


def _downstream_village(
    scene: Scene, rng: np.random.Generator, spec: PondSpec, toe: tuple[float, float], name: str
) -> None:
    """Houses along the D8 path 300–900 m below the toe, and the road up to them."""
    valley = SIDE_VALLEYS[spec.valley]
    sign = 1.0 if valley.side == "north" else -1.0
    from_d = (
        float(north_road_offset(valley.u)) if sign > 0 else -0.7 * float(floor_half_width(valley.u))
    )
    road = valley_road(scene, valley, spec.toe_s - 260, f"{name}村道", from_d)
    scene.keepout.add(road, margin=8)
    path, run = scene.dem.trace(*toe, max_length=HEADTOP_PATH_M + 100)
    anchors = []
    for length in np.arange(300.0, 900.0, 22.0):
        i = int(np.searchsorted(run, length))
        (u0, v0), (u1, v1) = path[max(i - 1, 0)], path[min(i + 1, len(path) - 1)]
        angle = float(np.arctan2(v1 - v0, u1 - u0))
        across_dir = np.array([-np.sin(angle), np.cos(angle)])
        for offset in (rng.uniform(14, 30), -rng.uniform(14, 30), rng.uniform(45, 110)):
            u, v = np.array(path[i]) + across_dir * offset * rng.choice([-1, 1])
            anchors.append((u, v, angle))
    village = Village(name, tuple(path[int(np.searchsorted(run, 600.0))]), "headtop")
    place_village(scene, village, np.array(anchors), rng)
    scene.truth.setdefault("headtop_villages", {})[spec.id] = village.name
    if spec.id == "pond-03":  # the village school sits in the flow path too
        school = {
            "name": f"{name}小学",
            "category": "school",
            "occupants": 186,
            "admin_code": village.admin_code,
        }
        scene.add(
            "protection_targets", school, Point(path[int(np.searchsorted(run, 700.0))]), "target", 3
        )


def _upstream_village(scene: Scene, rng: np.random.Generator, spec: PondSpec, name: str) -> None:
    """Houses higher up the side valley, behind the pond; nothing below the dam."""
    valley = SIDE_VALLEYS[spec.valley]
    anchors = []
    for s in np.arange(spec.toe_s + 950, spec.toe_s + 1_500, 25.0):
        u, v = valley.thalweg_point(float(s))
        for _ in range(2):
            anchors.append((u + rng.uniform(-120, 120), v, rng.normal(np.pi / 2, 0.2)))
    centre = valley.thalweg_point(spec.toe_s + 1_225)
    place_village(scene, Village(name, centre, "upstream"), np.array(anchors), rng)


def build_parks(scene: Scene) -> None:
    """The chemical park downstream of the city, an economic zone, and a logistics park."""
    park = _band(PARK_U, PARK_D)
    props = {"name": "清河化工园区", "park_type": "chemical", "risk_assessed": True,
             "supervision_platform": False, "enclosed": True}  # fmt: skip
    scene.add("industrial_parks", props, park, "park", 2)
    scene.lines["chemical_park"] = park
    zone = _band((1_900.0, 3_000.0), (-1_500.0, -700.0))
    props = {"name": "清河经济开发区", "park_type": "general", "risk_assessed": False,
             "supervision_platform": False, "enclosed": False}  # fmt: skip
    scene.add("industrial_parks", props, zone, "park", 2)
    logistics = _band((-8_300.0, -7_500.0), (-900.0, -450.0))
    props = {"name": "西陵物流园", "park_type": "logistics", "risk_assessed": True,
             "supervision_platform": True, "enclosed": True}  # fmt: skip
    scene.add("industrial_parks", props, logistics, "park", 2)


def build_plants(scene: Scene) -> None:
    """About forty plants: small ones in the dense core, others in suburbs and in the park."""
    rng = scene.rng("plants")
    sites: list[tuple[str, tuple[float, float], bool]] = []  # setting, point, polygon?
    sites += [("core", p, i in (2, 6)) for i, p in enumerate(_core_sites(scene, rng))]
    sites += [("park", p, i % 3 == 0) for i, p in enumerate(_park_sites(rng))]
    sites += [("near_rail", p, False) for p in _near_rail_sites()]
    sites += [("suburb", p, i % 6 == 5) for i, p in enumerate(_suburb_sites(scene, rng, sites))]
    prefixes = [CITY if rng.random() < 0.6 else "清河" for _ in sites]
    names = company_names(scene.rng("plant names"), prefixes)
    for (setting, point, as_polygon), name in zip(sites, names, strict=True):
        site = rectangle(point[0], point[1], rng.uniform(110, 170), rng.uniform(80, 120), 0.0)
        industrial_site(scene, site, rng, 3 if setting in ("park", "suburb") else 2)
        scene.keepout.add(site, margin=10)
        geometry = site if as_polygon else Point(point)
        props = _plant_props(scene, rng, setting, point, name)
        fid = scene.add("chemical_plants", props, geometry, "plant", 3)
        scene.truth.setdefault(f"plants_{setting}", []).append(fid)


def build_mines(scene: Scene) -> None:
    """A blasting quarry within 1 km of the high-speed line, and three mines in the hills."""
    (x0, y0), (x1, y1) = HSR_ENDS
    u, v = point_up_hill(5_600.0, "north", 260.0)
    hsr_u = x0 + (x1 - x0) * (v - y0) / (y1 - y0)
    u, v = point_up_hill(hsr_u - 650.0, "north", 260.0)
    angles = np.linspace(0, 2 * np.pi, 25)[:-1]
    pit = Polygon(np.column_stack([u + 130 * np.cos(angles), v + 85 * np.sin(angles)]))
    phosphate = Point(point_up_hill(-3_700, "north", 3_800))
    lead_zinc = Point(point_up_hill(-5_200, "south", 2_600))
    iron = Point(point_up_hill(11_500, "north", 3_000))
    mines: list[tuple[str, str, str, bool, str, Any]] = [
        ("清河市金山采石场", "quarry", "建筑用石灰岩", True, "2023-06-30", pit),
        ("清河磷化有限公司黄家沟磷矿", "underground", "磷矿", True, "2024-12-31", phosphate),
        ("杨柳沟铅锌矿", "open_pit", "铅锌矿", True, "2022-09-30", lead_zinc),
        ("青龙矿业有限公司青龙铁矿", "underground", "铁矿", False, "2026-03-31", iron),
    ]
    for name, kind, mineral, blasting, expiry, geometry in mines:
        props = {"name": name, "mine_type": kind, "mineral": mineral, "blasting": blasting,
                 "licence_expiry": dt.date.fromisoformat(expiry)}  # fmt: skip
        fid = scene.add("mines", props, geometry, "mine", 2)
        if kind == "quarry":
            scene.truth["quarry"] = fid


def _plant_props(
    scene: Scene, rng: np.random.Generator, setting: str, point: tuple[float, float], name: str
) -> dict[str, Any]:
    code = admin_code_at(scene, point)
    severe = ["nitration", "chlorination", "fluorination", "diazotization", "peroxidation"]
    other = ["hydrogenation", "oxidation", "sulfonation", "polymerization", "ammoniation"]
    processes: list[str] | None = sorted(
        {str(p) for p in rng.choice(other, size=int(rng.integers(1, 3)))}
    )
    if rng.random() < (0.55 if setting == "core" else 0.35):
        processes = sorted({*(processes or []), str(rng.choice(severe))})
    if rng.random() < 0.08:
        processes = None
    grade = int(rng.choice([1, 2, 3, 4])) if rng.random() < 0.6 else None
    props: dict[str, Any] = {
        "name": name,
        "credit_code": credit_code(rng, code),
        "processes": processes,
        "major_hazard_grade": grade,
        "admin_code": code,
        "in_chemical_park": setting == "park",
    }
    if setting == "core":
        size = str(rng.choice(["small", "medium"], p=[0.6, 0.4]))
        props |= {
            "relocation_status": str(rng.choice(["pending", "in_progress"])),
            "relocation_deadline": dt.date(2022, 12, 31),
        }
    elif setting == "park":
        size = str(rng.choice(["medium", "large"], p=[0.6, 0.4]))
        props |= {"relocation_status": "relocated" if rng.random() < 0.4 else None}
    else:
        size = str(rng.choice(["small", "medium", "large"], p=[0.4, 0.4, 0.2]))
        status = str(
            rng.choice(
                ["pending", "converted_in_place", "closed", "none"], p=[0.3, 0.3, 0.15, 0.25]
            )
        )
        deadline = dt.date(2025, 12, 31) if size == "large" else dt.date(2022, 12, 31)
        props |= {"relocation_status": None if status == "none" else status,
                  "relocation_deadline": deadline if status == "pending" else None}  # fmt: skip
    employees = {"small": (40, 290), "medium": (300, 950), "large": (1_000, 3_200)}[size]
    props |= {
        "size": size,
        "employees": int(rng.integers(*employees)),
        "address": _address(rng, setting, code),
    }
    return props


def _address(rng: np.random.Generator, setting: str, code: str) -> str:
    district = DISTRICT_NAMES[code]
    number = int(rng.integers(1, 400))
    if setting == "park":
        return f"{CITY}{district}清河化工园区纬{int(rng.integers(1, 6))}路{number}号"
    street = str(rng.choice(STREETS_NS + STREETS_EW))
    return f"{CITY}{district}{street}{number}号"


def _core_sites(scene: Scene, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Nine sites in the dense core, off the streets and the river, at least 300 m apart."""
    cu, cv = core_centre()
    roads = shapely.union_all(scene.geometries("road_sections"))
    rails = shapely.union_all(scene.geometries("rail_corridors"))
    sites: list[tuple[float, float]] = []
    while len(sites) < 9:
        r, a = 1_450 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        u, v = cu + r * np.cos(a), cv + r * np.sin(a)
        if abs(across(u, v)) < river_half_width(u) + 150 or roads.distance(Point(u, v)) < 90:
            continue
        if rails.distance(Point(u, v)) < 320:
            continue
        if all(np.hypot(u - a_, v - b_) > 300 for a_, b_ in sites):
            sites.append((float(u), float(v)))
    return sites


def _park_sites(rng: np.random.Generator) -> list[tuple[float, float]]:
    """Twelve sites in the chemical park: three rows of four, clear of its road."""
    sites = []
    for u in np.linspace(PARK_U[0] + 260, PARK_U[1] - 260, 4):
        road = float(north_road_offset(u))
        for d in (250.0, road - 150.0, road + 125.0):
            sites.append(point_at(float(u + rng.uniform(-50, 50)), d))
    return sites


def _near_rail_sites() -> list[tuple[float, float]]:
    """Two suburban plants 120 m and 165 m south of the conventional line."""
    return [
        point_at(u, float(rail_offset(u)) - gap) for u, gap in ((2_950.0, 120.0), (4_650.0, 165.0))
    ]


def _suburb_sites(
    scene: Scene, rng: np.random.Generator, taken: list[Any]
) -> list[tuple[float, float]]:
    """Seventeen sites on the valley floor outside the core and the park, clear of the railway."""
    cu, cv = core_centre()
    rails = shapely.union_all(scene.geometries("rail_corridors"))
    roads = shapely.union_all(scene.geometries("road_sections"))
    park = scene.lines["chemical_park"]
    points = [t[1] for t in taken]
    sites: list[tuple[float, float]] = []
    while len(sites) < 17:
        u = rng.uniform(-HALF_U + 400, HALF_U - 400)
        width = float(floor_half_width(u))
        d = rng.uniform(-0.85, 0.85) * width
        u, v = point_at(u, d)
        here = Point(u, v)
        if abs(d) < river_half_width(u) + 200 or np.hypot(u - cu, v - cv) < CORE_RADIUS + 600:
            continue
        if park.distance(here) < 400 or rails.distance(here) < 320 or roads.distance(here) < 90:
            continue
        if all(np.hypot(u - a, v - b) > 450 for a, b in points + sites):
            sites.append((u, v))
    return sites


def _band(us: tuple[float, float], ds: tuple[float, float]) -> Polygon:
    """A polygon between two eastings and two distances from the river (following its bends)."""
    south = valley_line(lambda u: np.full_like(u, ds[0]), us[0], us[1], step=100)
    north = valley_line(lambda u: np.full_like(u, ds[1]), us[0], us[1], step=100)
    return Polygon([*south.coords, *north.coords[::-1]])
