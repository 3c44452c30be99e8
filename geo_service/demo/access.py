"""Access roads: a road to each fire station and protection target that no road comes near.

Built last, when everything stands, so no other layer moves for them. Each road is the cheapest
way on a 10 m grid from the place (a station's door, or anywhere within ``TARGET_REACH_M`` of a
target) to the nearest road: around buildings, plant sites, water and the quarry, and never into
the no-road zone around a pond that is not head-top (the villages behind such ponds have no road,
on purpose). Railway track costs ten times its length, so a road crosses it only where it must,
and then on a bridge. The grid path is then pulled straight, so the road runs in straight legs
between the corners it has to turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from numpy.typing import NDArray
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from geo_service.demo.landscape import admin_code_at
from geo_service.demo.region import HALF_U, HALF_V
from geo_service.demo.scene import Scene
from geo_service.demo.transport import add_road_across_rail

STATION_GAP_M = 20.0  # a station farther than this from a road gets a road from its door
TARGET_GAP_M = 150.0  # a target farther than this from a road gets a road to within …
TARGET_REACH_M = 100.0  # … this distance of it
NO_ROAD_M = 2_500.0  # around a pond that is not head-top: its valley below, and the village behind

_CELL = 10.0
_RAIL_COST = 10.0  # one metre across railway track costs as much as this many elsewhere
_RAIL_BAND_M = 60.0  # … within this distance of the track
_APPROACH_COST = 2.0  # a metre between the road's end and the target costs this many of road
_WINDOW_M = 400.0  # the search reaches this far beyond the nearest road
# kept clear by this much (m): buildings, water (beyond the along-water distance), plant sites
# (a plant mapped as a point: its site around it), the quarry
_CLEAR = {"buildings": 6.0, "water_bodies": 25.0, "plant_site": 10.0, "plant_point": 90.0,
          "mines": 50.0}  # fmt: skip
# cells this close to a road join it: a diagonal step across a road starts or ends within half a
# diagonal of it, so a new road meets every road in its way and never steps over one
_JOIN_M = 0.75 * _CELL
_STEPS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2.0)), (1, -1, np.sqrt(2.0)))

Mask = NDArray[np.bool_]


def build_access_roads(scene: Scene) -> None:
    """A road to each fire station and protection target far from every road.

    Not to a water intake (it stands in the river) nor into a no-road zone.
    """
    grid = _Grid.of(scene)
    for station in scene.layers["fire_stations"]:
        if grid.gap(station.geometry) > STATION_GAP_M:
            line = grid.route(station.geometry, reach=0.0)
            if line is not None:
                grid.add(scene, line, f"{station.props['name']}进出道路", station.geometry)
    for target in scene.layers["protection_targets"]:
        geometry = target.geometry
        if target.props["category"] == "water_intake" or grid.no_road.intersects(geometry):
            continue
        if grid.gap(geometry) > TARGET_GAP_M:
            line = grid.route(geometry, reach=TARGET_REACH_M)
            if line is not None:
                name = str(target.props["name"])
                village = name.endswith("村居民点")
                label = name.removesuffix("居民点") + "村道" if village else f"{name}进出道路"
                grid.add(scene, line, label, geometry, village=village)


@dataclass
class _Grid:
    """The region on a 10 m grid: where a road may not go, where it costs more, and the roads."""

    transform: Affine
    blocked: Mask
    costly: Mask
    goal: Mask  # cells where a new road joins one (within ``_JOIN_M`` of it)
    obstacles: shapely.STRtree
    band: shapely.STRtree
    no_road: BaseGeometry
    roads: list[BaseGeometry]  # roads a new road may join (not bridges or tunnels)
    every_road: list[BaseGeometry]

    @classmethod
    def of(cls, scene: Scene) -> _Grid:
        """The grid of the scene as it stands."""
        shape = (round(2 * HALF_V / _CELL), round(2 * HALF_U / _CELL))
        transform = Affine(_CELL, 0.0, -HALF_U, 0.0, -_CELL, HALF_V)
        headtop = scene.truth["headtop_expected"]
        no_road = shapely.union_all(
            [
                p.geometry.buffer(NO_ROAD_M)
                for p in scene.layers["tailings_ponds"]
                if not headtop[p.id]
            ]
        )
        obstacles = [*_obstacles(scene), no_road]
        track = [
            r.geometry.buffer(_RAIL_BAND_M)
            for r in scene.layers["rail_corridors"]
            if r.props["structure"] == "track"
        ]
        roads = scene.layers["road_sections"]
        joinable = [r.geometry for r in roads if r.props["structure"] not in ("bridge", "tunnel")]
        return cls(
            transform,
            blocked=_burn(obstacles, shape, transform),
            costly=_burn(track, shape, transform),
            goal=_burn([r.buffer(_JOIN_M) for r in joinable], shape, transform),
            obstacles=shapely.STRtree(obstacles),
            band=shapely.STRtree(track),
            no_road=no_road,
            roads=joinable,
            every_road=[r.geometry for r in roads],
        )

    def gap(self, geometry: BaseGeometry) -> float:
        """Metres from ``geometry`` to the nearest road."""
        return float(shapely.distance(np.array(self.every_road, dtype=object), geometry).min())

    def route(self, place: BaseGeometry, *, reach: float) -> LineString | None:
        """The cheapest road from within ``reach`` of ``place`` to a road (None: no way)."""
        window = self._window(place)
        rows, cols = window
        blocked = self.blocked[window]
        h, w = blocked.shape
        centres = self._centres(rows, cols)
        away = shapely.distance(shapely.points(centres), place).reshape(h, w)
        start = ~blocked & (away <= max(reach, _CELL))
        goal = ~blocked & self.goal[window]
        if not start.any() or not goal.any():
            return None
        graph = self._graph(blocked, self.costly[window], start, away)
        source = h * w
        cost, previous = dijkstra(graph, indices=source, return_predecessors=True)
        ends = np.flatnonzero(goal.ravel())
        end = int(ends[np.argmin(cost[ends])])
        if not np.isfinite(cost[end]):
            return None
        path = [end]
        while previous[path[-1]] != source:
            path.append(int(previous[path[-1]]))
        points = centres[path[::-1]]
        if reach == 0.0:  # from the station's door
            points = np.vstack([shapely.get_coordinates(place)[:1], points])
        points = self._pulled(points)
        joined = self.roads[int(shapely.STRtree(self.roads).nearest(shapely.Point(points[-1])))]
        foot = shapely.get_coordinates(shapely.shortest_line(shapely.Point(points[-1]), joined))[1]
        return LineString(np.round(np.vstack([points, foot]), 2))

    def add(
        self,
        scene: Scene,
        line: LineString,
        name: str,
        place: BaseGeometry,
        *,
        village: bool = False,
    ) -> None:
        """Add the access road ``line`` to ``place`` to the scene; later roads may join it.

        A village road is class 4; another is an urban secondary road in an urban district.
        """
        urban = _urban(scene, place) and not village
        add_road_across_rail(scene, line, name, "urban_secondary" if urban else "class_4")
        self.roads.append(line)
        self.every_road.append(line)
        self.goal |= _burn([line.buffer(_JOIN_M)], self.goal.shape, self.transform)

    def _window(self, place: BaseGeometry) -> tuple[slice, slice]:
        half = self.gap(place) + _WINDOW_M
        minx, miny, maxx, maxy = place.bounds
        rows, cols = self.blocked.shape
        c0, r0 = ~self.transform * (minx - half, maxy + half)
        c1, r1 = ~self.transform * (maxx + half, miny - half)
        return (
            slice(max(int(r0), 0), min(int(np.ceil(r1)), rows)),
            slice(max(int(c0), 0), min(int(np.ceil(c1)), cols)),
        )

    def _centres(self, rows: slice, cols: slice) -> NDArray[np.float64]:
        r, c = np.mgrid[rows, cols]
        x, y = self.transform * (c.ravel() + 0.5, r.ravel() + 0.5)
        return np.column_stack([x, y])

    def _graph(
        self,
        blocked: Mask,
        costly: Mask,
        start: Mask,
        away: NDArray[np.float64],
    ) -> csr_array:
        """Steps between free neighbouring cells (8 ways), and from a virtual source to starts.

        A step costs its length, ``_RAIL_COST`` times over near track; a start costs
        ``_APPROACH_COST`` times its distance from the place.
        """
        h, w = blocked.shape
        index = np.arange(h * w).reshape(h, w)
        factor = np.where(costly, _RAIL_COST, 1.0)
        tails, heads, weights = [], [], []
        for dr, dc, length in _STEPS:
            a = index[: h - dr, max(-dc, 0) : w - max(dc, 0)]
            b = index[dr:, max(dc, 0) : w - max(-dc, 0) or None]
            free = ~blocked.ravel()[a] & ~blocked.ravel()[b]
            a, b = a[free], b[free]
            tails += [a, b]
            heads += [b, a]
            step = _CELL * length * (factor.ravel()[a] + factor.ravel()[b]) / 2
            weights += [step, step]
        first = np.flatnonzero(start.ravel())
        tails.append(np.full(len(first), h * w))
        heads.append(first)
        weights.append(_APPROACH_COST * away.ravel()[first] + 1e-6)
        n = h * w + 1
        return coo_array(
            (np.concatenate(weights), (np.concatenate(tails), np.concatenate(heads))), shape=(n, n)
        ).tocsr()

    def _pulled(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """The path in straight legs: from each corner, on to the farthest point in clear sight.

        A leg may cross the railway band only where the path does (from the last point before
        it to the first after it), so the road crosses the track where the grid path chose to.
        """
        inside = self.band.query(shapely.points(points), predicate="intersects")[0]
        in_band = np.zeros(len(points), dtype=bool)
        in_band[inside] = True
        outside_before = np.concatenate([[0], np.cumsum(~in_band)])  # points outside in [0, k)
        roads = shapely.STRtree(self.every_road)
        kept, i, n = [0], 0, len(points)
        while i < n - 1:
            later = np.arange(i + 1, n)
            starts = np.repeat(points[i : i + 1], len(later), axis=0)
            legs = shapely.linestrings(np.stack([starts, points[later]], axis=1))
            ok = ~_hits(self.obstacles, legs)
            across = _hits(self.band, legs)
            only_band_between = outside_before[later] - outside_before[i + 1] == 0
            ok &= ~across | only_band_between
            ok &= ~_hits(roads, legs) | (later == n - 1)
            ok[0] = True
            i = int(later[np.flatnonzero(ok)[-1]])
            kept.append(i)
        return points[kept]


def _urban(scene: Scene, place: BaseGeometry) -> bool:
    """Whether ``place`` lies in an urban district."""
    code = admin_code_at(scene, place.centroid)
    return any(
        d.props["urban"] for d in scene.layers["admin_areas"] if d.props["admin_code"] == code
    )


def _obstacles(scene: Scene) -> list[BaseGeometry]:
    """What a road keeps clear of, widened by its clearance."""
    buildings = np.array(scene.geometries("buildings"), dtype=object)
    shapes = list(shapely.buffer(buildings, _CLEAR["buildings"], quad_segs=2))
    shapes += [w.geometry.buffer(_CLEAR["water_bodies"]) for w in scene.layers["water_bodies"]]
    shapes += [m.geometry.buffer(_CLEAR["mines"]) for m in scene.layers["mines"]]
    for plant in scene.layers["chemical_plants"]:
        point = plant.geometry.geom_type == "Point"
        shapes.append(plant.geometry.buffer(_CLEAR["plant_point" if point else "plant_site"]))
    return shapes


def _burn(shapes: list[BaseGeometry], shape: tuple[int, int], transform: Affine) -> Mask:
    """Cells any of ``shapes`` touches."""
    if not shapes:
        return np.zeros(shape, dtype=bool)
    burnt = rasterio.features.rasterize(
        ((s, 1) for s in shapes), out_shape=shape, transform=transform, all_touched=True,
        dtype="uint8",
    )  # fmt: skip
    return np.asarray(burnt, dtype=bool)


def _hits(tree: shapely.STRtree, geoms: NDArray[np.object_]) -> Mask:
    """Which of ``geoms`` intersect something in ``tree``."""
    hit = np.zeros(len(geoms), dtype=bool)
    hit[tree.query(geoms, predicate="intersects")[0]] = True
    return hit
