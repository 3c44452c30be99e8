"""Districts and water: six districts covering the region, the river, and a reservoir."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from geo_service.demo.region import (
    HALF_U,
    HALF_V,
    SIDE_VALLEYS,
    Array,
    core_centre,
    region_box,
    river_polygon,
    river_v,
)
from geo_service.demo.scene import Scene
from geo_service.demo.terrain import reservoir_polygon

# code, name, level, urban
DISTRICTS = (
    ("429001", "清河区", "county", True),
    ("429002", "江南区", "county", True),
    ("429003", "东港区", "county", False),
    ("429004", "西陵区", "county", False),
    ("429005", "北山镇", "township", False),
    ("429006", "南岭镇", "township", False),
)
DISTRICT_NAMES = {code: name for code, name, _, _ in DISTRICTS}


def build_districts(scene: Scene) -> None:
    """Two urban districts (the core, split by the river), east, west, and two hill towns."""
    region = region_box()
    cu, cv = core_centre()
    angles = np.linspace(0, 2 * np.pi, 181)[:-1]
    radius = 2_650 + 250 * np.sin(3 * angles + 0.4) + 120 * np.sin(7 * angles)
    core = Polygon(np.column_stack([cu + radius * np.cos(angles), cv + radius * np.sin(angles)]))
    north = _north_of_river()
    west = _west_of(lambda v: -6_200 + 300 * np.sin(v / 1_500))
    east = region.difference(_west_of(lambda v: 3_800 + 250 * np.sin(v / 1_300 + 1)))
    middle = region.difference(west).difference(east).difference(core)
    shapes = (
        core.intersection(north),
        core.difference(north),
        east.difference(core),
        west.difference(core),
        middle.intersection(north),
        middle.difference(north),
    )
    for (code, name, level, urban), shape in zip(DISTRICTS, shapes, strict=True):
        polygon = max(shapely.get_parts(shape), key=lambda p: p.area)
        props = {"admin_code": code, "name": name, "level": level, "urban": urban}
        scene.add("admin_areas", props, polygon, "admin", 2)


def admin_code_at(scene: Scene, point: tuple[float, float] | Point) -> str:
    """The code of the district holding a point (the nearest one for a point on a boundary)."""
    geom = point if isinstance(point, Point) else Point(point)
    districts = scene.layers["admin_areas"]
    distances = [d.geometry.distance(geom) for d in districts]
    return str(districts[int(np.argmin(distances))].props["admin_code"])


def build_water(scene: Scene) -> None:
    """The river 清河 and the 龙潭水库 reservoir up a northern side valley."""
    river = river_polygon()
    scene.add("water_bodies", {"name": "清河", "water_type": "river"}, river, "water", 2)
    lake = reservoir_polygon(scene.dem, SIDE_VALLEYS["龙潭沟"], dam_s=900.0, depth=55.0)
    scene.add("water_bodies", {"name": "龙潭水库", "water_type": "reservoir"}, lake, "water", 2)
    scene.keepout.add([river, lake], margin=25)


def _north_of_river() -> Polygon:
    u = np.linspace(-HALF_U - 10, HALF_U + 10, 481)
    edge = np.column_stack([u, river_v(u)])
    return Polygon([*edge, (HALF_U + 10, HALF_V + 10), (-HALF_U - 10, HALF_V + 10)])


def _west_of(boundary_u: Callable[[Array], Array]) -> Polygon:
    """The part of the region west of a wavy north–south line ``u = boundary_u(v)``."""
    v = np.linspace(-HALF_V - 10, HALF_V + 10, 181)
    edge = np.column_stack([boundary_u(v), v])
    return Polygon([*edge, (-HALF_U - 10, HALF_V + 10), (-HALF_U - 10, -HALF_V - 10)])
