"""Buildings: towers and slabs in the core, suburbs, villages, factories.

A few houses stand inside the railway's protection zone, on purpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from geo_service.demo.landscape import admin_code_at
from geo_service.demo.names import village_names
from geo_service.demo.region import (
    HALF_U,
    HALF_V,
    SUBURBS,
    core_centre,
    floor_half_width,
    point_at,
)
from geo_service.demo.scene import Scene, Village
from geo_service.demo.transport import GRID_RADIUS, GRID_SPACING, rail_offset

BLOCK_SETBACK = 28.0  # from a block's edge (a street's centreline) to the first building
COMPOUND_NAMES = (
    "阳光花园", "锦绣华庭", "滨江名都", "金色家园", "翡翠城", "书香苑", "康城", "龙湖苑",
    "世纪新城", "丽景湾", "幸福里", "和谐家园", "清河湾", "御景园", "紫荆苑", "东方明珠苑",
    "碧水蓝天", "学府佳园", "新华小区", "建设村小区", "铁路新村", "化工厂宿舍", "电力小区",
    "江畔人家", "桂花园", "春晖园", "香榭丽舍", "水岸名居", "中央公园", "荷塘月色", "华府天地",
    "长江明珠", "清华园", "凤凰城", "棕榈泉", "南湖花园", "北城家园", "百合苑", "金地城", "银河湾",
)  # fmt: skip

# villages on the valley floor: easting, and where across the floor (fraction of its half-width)
_FLOOR_VILLAGES = (
    (-11_000.0, -0.12), (-10_300.0, 0.45), (-7_000.0, -0.5), (-5_300.0, 0.85), (5_700.0, -0.45),
    (10_900.0, -0.45), (11_300.0, 0.85), (-2_900.0, -0.8),
)  # fmt: skip
# houses built inside the railway's protection zone: easting, distance of the near wall (m)
_ENCROACHMENTS = (
    (-9_900.0, 5.0),
    (-5_600.0, 7.0),
    (-3_300.0, 9.0),
    (300.0, 6.0),
    (3_300.0, 8.0),
    (10_600.0, 10.0),
)


def build_buildings(scene: Scene) -> None:
    """Every building not built with a pond or a plant: the core, suburbs, villages."""
    rng = scene.rng("buildings")
    _encroachments(scene, rng)
    _core(scene, rng)
    for u, d, radius, _ in SUBURBS:
        _suburb(scene, rng, point_at(u, d), radius)
    taken = {v.name for v in scene.villages}
    names = iter(n for n in village_names(scene.rng("village names"), 20) if n not in taken)
    for u, fraction in _FLOOR_VILLAGES:
        centre = point_at(u, fraction * float(floor_half_width(u)))
        village = Village(next(names), centre, "floor")
        place_village(scene, village, _cluster(rng, centre, 230.0, 70), rng)
    # a hamlet at the top of the mountain road, far from any fire station
    top = scene.lines["mountain_top"]
    centre = (float(shapely.get_x(top)), float(shapely.get_y(top)))
    village = Village(next(names), centre, "mountain", spread_m=100.0)
    place_village(scene, village, _cluster(rng, village.centre, 160.0, 40), rng)


def place_village(
    scene: Scene, village: Village, anchors: np.ndarray, rng: np.random.Generator
) -> None:
    """Houses at ``anchors`` (rows of u, v, angle) where free, and the village's target."""
    houses: list[Polygon] = []
    for u, v, angle in anchors:
        house = rectangle(u, v, rng.uniform(10, 15), rng.uniform(8, 11), angle)
        if not (abs(u) < HALF_U - 50 and abs(v) < HALF_V - 50):
            continue
        if not scene.keepout.free([house])[0] or any(house.distance(h) < 6 for h in houses):
            continue
        houses.append(house)
        floors = int(rng.integers(1, 4))
        props: dict[str, Any] = {
            "height_m": round(floors * 3.2 + 1.0, 1),
            "floors": floors,
            "use": "residential",
            "residents": int(rng.integers(2, 7)),
        }
        village.building_ids.append(scene.add("buildings", props, house, "bldg", 4))
        village.residents += int(props["residents"])
    scene.keepout.add(houses, margin=3)
    village.centre = _centroid(houses) if houses else village.centre
    village.admin_code = admin_code_at(scene, village.centre)
    scene.villages.append(village)
    target = {
        "name": f"{village.name}居民点",
        "category": "residential",
        "occupants": village.residents,
        "admin_code": village.admin_code,
    }
    scene.add("protection_targets", target, Point(village.centre), "target", 3)


def industrial_site(scene: Scene, site: Polygon, rng: np.random.Generator, count: int) -> None:
    """Factory buildings inside a plant's site."""
    minx, miny, maxx, maxy = site.bounds
    placed: list[Polygon] = []
    for _ in range(count * 6):
        if len(placed) == count:
            break
        u, v = rng.uniform(minx + 15, maxx - 15), rng.uniform(miny + 15, maxy - 15)
        shed = rectangle(u, v, rng.uniform(18, 40), rng.uniform(12, 25), 0.0)
        if site.contains(shed) and all(shed.distance(p) > 6 for p in placed):
            placed.append(shed)
            floors = int(rng.integers(1, 3))
            props = {
                "height_m": round(rng.uniform(6, 16), 1),
                "floors": floors,
                "use": "industrial",
                "residents": 0,
            }
            scene.add("buildings", props, shed, "bldg", 4)


def rectangle(u: float, v: float, length: float, width: float, angle: float) -> Polygon:
    """A ``length`` × ``width`` rectangle centred on (u, v), its long side at ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2, width / 2]
    corners = half @ np.array([[c, s], [-s, c]]) + [u, v]
    return Polygon(np.round(corners, 2))


def _core(scene: Scene, rng: np.random.Generator) -> None:
    cu, cv = core_centre()
    names = iter(rng.permutation(COMPOUND_NAMES).tolist())
    disc = Point(cu, cv).buffer(GRID_RADIUS - 30)
    blocks = [(i, j) for j in range(-6, 6) for i in range(-6, 6)]
    for i, j in blocks:
        u0, v0 = cu + i * GRID_SPACING, cv + j * GRID_SPACING
        middle = np.hypot(u0 + GRID_SPACING / 2 - cu, v0 + GRID_SPACING / 2 - cv)
        if middle > GRID_RADIUS + 250:
            continue
        kind = _block_kind(rng, middle)
        compound = next(names, None) if kind in ("highrise", "midrise") else None
        candidates = _block_buildings(rng, kind, u0, v0, compound)
        shapes = [c[0] for c in candidates]
        inside = shapely.contains(disc, np.array(shapes, dtype=object))
        free = scene.keepout.free(shapes)
        kept = [c for c, a, b in zip(candidates, inside, free, strict=True) if a and b]
        for number, (shape, props) in enumerate(kept, start=1):
            if props.get("name"):
                props["name"] = f"{props['name']}{number}号楼"
            scene.add("buildings", props, shape, "bldg", 4)
        if compound and kept:
            residents = sum(int(k[1].get("residents") or 0) for k in kept)
            scene.compounds[compound] = (
                shapely.MultiPolygon([k[0] for k in kept]).convex_hull,
                residents,
            )
        scene.keepout.add([k[0] for k in kept], margin=3)


def _block_kind(rng: np.random.Generator, distance: float) -> str:
    if distance < 1_000:
        kinds, weights = ("highrise", "commercial", "midrise"), (0.45, 0.25, 0.30)
    elif distance < 1_800:
        kinds, weights = ("highrise", "midrise", "public"), (0.3, 0.55, 0.15)
    else:
        kinds, weights = ("midrise", "lowrise", "highrise"), (0.55, 0.3, 0.15)
    return str(rng.choice(kinds, p=weights))


def _block_buildings(
    rng: np.random.Generator, kind: str, u0: float, v0: float, compound: str | None
) -> list[tuple[Polygon, dict[str, Any]]]:
    """Buildings filling one block on a jittered lattice."""
    spacing, size = {
        "highrise": ((72.0, 78.0), ((24, 34), (18, 26))),
        "midrise": ((82.0, 44.0), ((44, 60), (12, 15))),
        "lowrise": ((40.0, 36.0), ((14, 22), (10, 14))),
        "commercial": ((170.0, 120.0), ((60, 95), (40, 65))),
        "public": ((110.0, 90.0), ((50, 80), (16, 24))),
    }[kind]
    out = []
    lo, hi = BLOCK_SETBACK, GRID_SPACING - BLOCK_SETBACK
    for du in np.arange(lo + spacing[0] / 2, hi - spacing[0] / 2 + 1, spacing[0]):
        for dv in np.arange(lo + spacing[1] / 2, hi - spacing[1] / 2 + 1, spacing[1]):
            length, width = rng.uniform(*size[0]), rng.uniform(*size[1])
            jitter = rng.uniform(-4, 4, size=2)
            shape = rectangle(u0 + du + jitter[0], v0 + dv + jitter[1], length, width, 0.0)
            out.append((shape, _building_props(rng, kind, compound)))
    return out


def _building_props(rng: np.random.Generator, kind: str, compound: str | None) -> dict[str, Any]:
    if kind == "highrise":
        floors = int(rng.integers(11, 33))
        units = int(rng.integers(4, 7))
        return {
            "name": compound,
            "height_m": round(floors * 3.0 + rng.uniform(1, 4), 1),
            "floors": floors,
            "use": "residential",
            "residents": int(floors * units * 2.8 * rng.uniform(0.6, 0.9)),
        }
    if kind == "midrise":
        floors = int(rng.integers(5, 10))
        return {
            "name": compound,
            "height_m": round(floors * 2.9 + 1, 1),
            "floors": floors,
            "use": "residential",
            "residents": int(floors * rng.integers(8, 13) * 2.8 * rng.uniform(0.7, 0.95)),
        }
    if kind == "lowrise":
        floors = int(rng.integers(2, 5))
        use = str(rng.choice(["residential", "commercial"], p=[0.8, 0.2]))
        residents = int(floors * rng.integers(2, 5) * 2.8) if use == "residential" else 0
        return {
            "height_m": round(floors * 3.2, 1),
            "floors": floors,
            "use": use,
            "residents": residents,
        }
    if kind == "commercial":
        floors = int(rng.integers(5, 26))
        return {
            "height_m": round(floors * 4.0, 1),
            "floors": floors,
            "use": "commercial",
            "residents": 0,
        }
    use = str(rng.choice(["education", "health", "public"], p=[0.5, 0.2, 0.3]))
    floors = int(rng.integers(3, 7))
    return {"height_m": round(floors * 3.6, 1), "floors": floors, "use": use, "residents": 0}


def _suburb(
    scene: Scene, rng: np.random.Generator, centre: tuple[float, float], radius: float
) -> None:
    shapes, props = [], []
    for u, v, _ in _cluster(rng, centre, radius, 260, spacing=55.0):
        kind = str(rng.choice(["midrise", "lowrise", "industrial"], p=[0.35, 0.45, 0.2]))
        if kind == "industrial":
            shapes.append(rectangle(u, v, rng.uniform(30, 48), rng.uniform(20, 32), 0.0))
            props.append(
                {
                    "height_m": round(rng.uniform(8, 15), 1),
                    "floors": 1,
                    "use": "industrial",
                    "residents": 0,
                }
            )
        else:
            size = (
                (rng.uniform(40, 50), rng.uniform(12, 14))
                if kind == "midrise"
                else (rng.uniform(12, 20), rng.uniform(10, 13))
            )
            shapes.append(rectangle(u, v, size[0], size[1], 0.0))
            props.append(_building_props(rng, kind, None))
    free = scene.keepout.free(shapes)
    kept = [(s, p) for s, p, ok in zip(shapes, props, free, strict=True) if ok]
    for shape, prop in kept:
        scene.add("buildings", prop, shape, "bldg", 4)
    scene.keepout.add([k[0] for k in kept], margin=3)


def _encroachments(scene: Scene, rng: np.random.Generator) -> None:
    """Houses whose near wall stands a few metres from the conventional line's centreline."""
    ids = []
    rail = scene.lines["rail_conventional"]
    for u, gap in _ENCROACHMENTS:
        _, v = point_at(u, float(rail_offset(u)))
        ahead = point_at(u + 10, float(rail_offset(u + 10)))
        angle = float(np.arctan2(ahead[1] - v, 10.0))
        width = 9.0
        # the house stands on the side away from the river
        normal = np.array([-np.sin(angle), np.cos(angle)]) * (1 if rail_offset(u) > 0 else -1)
        centre = np.array([u, v]) + normal * (gap + width / 2)
        house = rectangle(centre[0], centre[1], 14.0, width, angle)
        props = {
            "height_m": 6.5,
            "floors": 2,
            "use": "residential",
            "residents": int(rng.integers(3, 7)),
        }
        ids.append(scene.add("buildings", props, house, "bldg", 4))
        scene.keepout.add(house, margin=3)
        assert 0.8 * gap < house.distance(rail) < gap + 1.5, "encroaching house misplaced"
    scene.truth["rail_encroachments"] = ids


def _cluster(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    count: int,
    spacing: float = 28.0,
) -> np.ndarray:
    """Rows of (u, v, angle) on a jittered lattice inside a disc, thinned to about ``count``."""
    offsets = np.arange(-radius, radius + 1, spacing)
    grid = np.array([(a, b) for a in offsets for b in offsets if a * a + b * b <= radius * radius])
    grid = grid + rng.uniform(-spacing / 5, spacing / 5, size=grid.shape)
    keep = rng.permutation(len(grid))[: min(count, len(grid))]
    points = grid[np.sort(keep)] + np.asarray(centre)
    angles = rng.normal(0.0, 0.15, size=len(points))
    return np.column_stack([points, angles])


def _centroid(shapes: list[Polygon]) -> tuple[float, float]:
    c = shapely.MultiPolygon(shapes).centroid
    return (float(c.x), float(c.y))
