"""Railway rule kinds on hand-built lines whose answers are worked out by hand.

The scenes are drawn in the CGCS2000 Gauss–Krüger zone of central meridian 114°E (EPSG:4547),
on the central meridian itself where the grid scale is 1 (grid metres are ground metres to
1e-8), then stored in EPSG:4326 like any imported data. The rail_corridors rules measure from
the line's edge, approximated as the centreline + ``edge_offset_m`` (5 m) each side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Point, box

import geo_service.risk.rules  # noqa: F401  (registers the rule kinds)
from geo_service.catalogue import default_catalogue_dir, load_catalogue
from geo_service.demo import build_demo
from geo_service.metric import metric_crs
from geo_service.risk.context import RuleContext
from geo_service.risk.model import FINDING_COLUMNS
from geo_service.risk.registry import RULE_KINDS
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore

CRS = metric_crs(114.0, 30.5)
X0, Y0 = 500_000.0, 3_375_000.0  # on the central meridian, about 30.5°N
EDGE = 5.0  # edge_offset_m of the shipped rules
RULES = (
    "rail_protection_zone",
    "rail_mining_approval",
    "rail_legacy_hazmat",
    "rail_parallel_roads",
    "rail_road_over",
)


def frame(rows: list[dict[str, Any]], crs: Any = CRS) -> gpd.GeoDataFrame:
    """Features from rows with a ``geometry`` in ``crs``, in EPSG:4326."""
    data = pd.DataFrame([{k: v for k, v in row.items() if k != "geometry"} for row in rows])
    geoms = gpd.GeoSeries([row["geometry"] for row in rows], crs=crs).to_crs(4326)
    return gpd.GeoDataFrame(data, geometry=geoms.values, crs=4326)


def rail(
    fid: str,
    coords: list[tuple[float, float]],
    *,
    rail_type: str = "conventional",
    area: str | None = "urban",
    structure: str = "track",
    gazetted: float | None = None,
    name: str = "测试铁路",
) -> dict[str, Any]:
    return {
        "id": fid,
        "line_name": name,
        "rail_type": rail_type,
        "area_class": area,
        "structure": structure,
        "gazetted_zone_width_m": gazetted,
        "geometry": LineString(coords),
    }


def house(fid: str, x: float, near_wall_y: float, *, north: bool = True) -> dict[str, Any]:
    """A 10 × 10 m building whose wall nearest the line y = Y0 runs at ``near_wall_y``."""
    far = near_wall_y + 10 if north else near_wall_y - 10
    return {
        "id": fid,
        "use": "residential",
        "geometry": box(x - 5, min(near_wall_y, far), x + 5, max(near_wall_y, far)),
    }


def put(store: Store, **layers: list[dict[str, Any]]) -> None:
    for layer_id, rows in layers.items():
        store.replace(layer_id, frame(rows))


def run(store: Store, rule_id: str, ctx: RuleContext | None = None) -> gpd.GeoDataFrame:
    layer = store.catalogue["rail_corridors"]
    rule = layer.rule(rule_id)
    return RULE_KINDS[rule.kind].run(ctx or RuleContext(store), layer, rule).findings


def by_target(findings: gpd.GeoDataFrame) -> dict[str, Any]:
    return {row.target_id: row for row in findings.itertuples()}


def evidence(row: Any) -> dict[str, Any]:
    return json.loads(row.evidence)


# -- protection zone ---------------------------------------------------------------------------


def test_a_building_at_the_zone_edge_is_inside_and_just_beyond_is_not(gpkg_store) -> None:
    # conventional line, urban district: 8 m from the edge, i.e. 5 + 8 = 13 m from the centreline
    line = rail("rail-1", [(X0 - 1_000, Y0), (X0 + 1_000, Y0)])
    buildings = [
        house("at-edge", X0, Y0 + 13.0),  # 8.00 m from the edge: inside (inclusive)
        house("beyond", X0 + 100, Y0 + 13.01),  # 8.01 m: outside
        house("south", X0 + 300, Y0 - 13.0, north=False),  # the other side, 8.00 m
        house("on-bed", X0 + 500, Y0 + 2.0),  # on the formation: 0 m from the edge
        house("straddle", X0 + 700, Y0 + 8.0),  # 8 → 18 m from the centreline: half inside
    ]
    put(gpkg_store, rail_corridors=[line], buildings=buildings)
    found = by_target(run(gpkg_store, "rail_protection_zone"))
    assert set(found) == {"at-edge", "south", "on-bed", "straddle"}
    assert found["at-edge"].value == pytest.approx(8.0, abs=1e-6)
    assert found["south"].value == pytest.approx(8.0, abs=1e-6)
    assert found["on-bed"].value == 0.0
    assert {r.threshold for r in found.values()} == {8.0}
    assert {r.risk_class for r in found.values()} == {"orange"}
    ev = evidence(found["on-bed"])
    assert ev["distance_from_centreline_m"] == pytest.approx(2.0, abs=1e-6)
    assert ev["zone_source"] == "Art. 27 table" and "approximation" in ev["edge"]
    assert found["straddle"].value == pytest.approx(3.0, abs=1e-6)
    # the geometry shows the part of the building inside the zone: 10 m × (8 → 13 m)
    inside = gpd.GeoSeries([found["straddle"].geometry], crs=4326).to_crs(CRS).iloc[0]
    assert inside.area == pytest.approx(10 * 5, rel=1e-6)


@pytest.mark.parametrize("rail_type", ["high_speed", "conventional"])
def test_zone_width_by_rail_type_and_area_class(gpkg_store, catalogue, rail_type) -> None:
    # Art. 27: high-speed 10/12/15/20 m, other lines 8/10/12/15 m; a missing class reads "other"
    widths = catalogue["rail_corridors"].rule("rail_protection_zone").params["widths_m"]
    expected = {
        "high_speed": {"urban": 10, "suburban": 12, "village": 15, "other": 20},
        "conventional": {"urban": 8, "suburban": 10, "village": 12, "other": 15},
    }
    assert widths == expected
    rails, buildings = [], []
    for i, area in enumerate(["urban", "suburban", "village", "other", None]):
        y = Y0 + i * 500
        width = expected[rail_type][area or "other"]
        rails.append(
            rail(
                f"rail-{i}",
                [(X0 - 500, y), (X0 + 500, y)],
                rail_type=rail_type,
                area=area,
                name=f"线{i}",
            )
        )
        buildings.append(house(f"in-{i}", X0, y + EDGE + width))
        buildings.append(house(f"out-{i}", X0 + 200, y + EDGE + width + 0.05))
    put(gpkg_store, rail_corridors=rails, buildings=buildings)
    found = by_target(run(gpkg_store, "rail_protection_zone"))
    assert set(found) == {f"in-{i}" for i in range(5)}
    for i, area in enumerate(["urban", "suburban", "village", "other", None]):
        row = found[f"in-{i}"]
        assert row.threshold == expected[rail_type][area or "other"]
        assert row.value == pytest.approx(row.threshold, abs=1e-6)
        ev = evidence(row)
        assert ev["area_class_used"] == (area or "other")
        assert (ev["assumed"] is None) == (area is not None)
    assert "area class missing" in evidence(found["in-4"])["assumed"]


def test_a_gazetted_width_wins_over_the_table(gpkg_store) -> None:
    # gazetted 30 m from the edge → 35 m from the centreline; the table would say 8 m
    put(
        gpkg_store,
        rail_corridors=[rail("rail-1", [(X0 - 500, Y0), (X0 + 500, Y0)], gazetted=30.0)],
        buildings=[house("at-35", X0, Y0 + 35.0), house("at-35.05", X0 + 100, Y0 + 35.05)],
    )
    found = by_target(run(gpkg_store, "rail_protection_zone"))
    assert set(found) == {"at-35"}
    assert found["at-35"].threshold == 30.0 and found["at-35"].value == pytest.approx(30.0)
    assert evidence(found["at-35"])["zone_source"] == "gazetted width"


def test_a_gazetted_polygon_wins_where_loaded(tmp_path: Path) -> None:
    # the optional layer, copied into a catalogue, is all it takes (no code)
    layers = tmp_path / "layers"
    shutil.copytree(default_catalogue_dir(), layers, ignore=shutil.ignore_patterns("optional"))
    shutil.copy(default_catalogue_dir() / "optional" / "rail_protection_zones.yaml", layers)
    store = GeoPackageStore(load_catalogue(layers), tmp_path / "data")
    # section A's gazetted zone: 40 m north, only 3 m south (a retaining wall); B has none
    put(
        store,
        rail_corridors=[
            rail("rail-a", [(X0 - 1_000, Y0), (X0, Y0)]),
            rail("rail-b", [(X0, Y0), (X0 + 1_000, Y0)]),
        ],
        rail_protection_zones=[
            {
                "id": "gz-1",
                "rail_id": "rail-a",
                "width_m": 35.0,
                "source": "铁路公告2021-7号",
                "geometry": box(X0 - 1_000, Y0 - 3, X0 - 100, Y0 + 40),
            },
        ],
        buildings=[
            house("north-35", X0 - 500, Y0 + 35),  # beyond the table's 13 m, inside the polygon
            house("south-10", X0 - 700, Y0 - 10, north=False),  # inside 13 m, outside the polygon
            house("b-13", X0 + 500, Y0 + 13),  # section B: the table, 8 m from the edge
        ],
    )
    ctx = RuleContext(store)
    found = by_target(run(store, "rail_protection_zone", ctx))
    assert set(found) == {"north-35", "b-13"}
    north = found["north-35"]
    assert north.hazard_id == "rail-a" and north.threshold == 35.0
    assert north.value == pytest.approx(35.0 - EDGE, abs=1e-6)
    ev = evidence(north)
    assert ev["zone_source"] == "gazetted polygon" and ev["gazette"] == "铁路公告2021-7号"
    assert found["b-13"].threshold == 8.0
    zones = ctx.shared["rail_protection_zone:rail_corridors"].set_index("id")
    assert list(zones["source"]) == ["gazetted polygon", "Art. 27 table"]
    polygon = gpd.GeoSeries([zones.geometry["rail-a"]], crs=4326).to_crs(CRS).iloc[0]
    assert polygon.area == pytest.approx(900 * 43, rel=1e-6)


def test_targets_by_layer_tunnels_and_one_finding_per_line(gpkg_store) -> None:
    put(
        gpkg_store,
        rail_corridors=[
            rail("rail-1", [(X0 - 1_000, Y0), (X0, Y0)]),
            rail("rail-2", [(X0, Y0), (X0 + 1_000, Y0)]),
            rail("rail-3", [(X0 + 1_000, Y0), (X0 + 2_000, Y0)], structure="tunnel"),
        ],
        buildings=[
            house("junction", X0, Y0 + 10),  # 10 m from both sections: one finding, on rail-1
            house("over-tunnel", X0 + 1_500, Y0 + 3),  # a tunnel has no surface zone
        ],
        chemical_plants=[{"id": "plant-1", "name": "化工厂", "geometry": Point(X0 - 500, Y0 + 12)}],
        protection_targets=[
            {
                "id": "school-1",
                "name": "小学",
                "category": "school",
                "geometry": Point(X0 + 500, Y0 - 6),
            },
        ],
    )
    ctx = RuleContext(gpkg_store)
    findings = run(gpkg_store, "rail_protection_zone", ctx)
    table = {
        (r.target_layer, r.target_id): (r.hazard_id, r.risk_class, r.value)
        for r in findings.itertuples()
    }
    assert table == {
        ("buildings", "junction"): ("rail-1", "orange", pytest.approx(5.0)),
        ("chemical_plants", "plant-1"): ("rail-1", "red", pytest.approx(7.0)),
        ("protection_targets", "school-1"): ("rail-2", "orange", pytest.approx(1.0)),
    }
    assert list(findings["hazard_id"]) == sorted(findings["hazard_id"])
    zones = ctx.shared["rail_protection_zone:rail_corridors"]
    assert list(zones["id"]) == ["rail-1", "rail-2"]  # no zone over the tunnel
    zone = gpd.GeoSeries(zones.geometry.values, crs=4326).to_crs(CRS)
    # 1000 m × 2 × 13 m plus the two round ends (π · 13²)
    assert zone.area.iloc[0] == pytest.approx(1_000 * 26 + np.pi * 13**2, rel=1e-3)


# -- mining ------------------------------------------------------------------------------------


def test_mines_within_1000_m_of_the_edge_or_a_tunnel_centreline(gpkg_store) -> None:
    mines = [
        # (id, type, blasting, where): distances from the edge (track) or centreline (tunnel)
        ("quarry-999", "quarry", True, Point(X0 - 1_000, Y0 + EDGE + 999)),  # in, orange
        ("quarry-1001", "quarry", True, Point(X0 - 1_500, Y0 - EDGE - 1_001)),  # out
        ("tunnel-1000", "quarry", True, Point(X0 + 1_000, Y0 + 1_000)),  # in: 1000 from the axis
        ("tunnel-1003", "open_pit", True, Point(X0 + 1_500, Y0 - 1_003)),  # out (no 5 m edge)
        ("underground", "underground", False, Point(X0 - 300, Y0 + 100)),  # not Art. 34
        ("open-pit", "open_pit", False, Point(X0 - 1_800, Y0 - EDGE - 500)),  # in, yellow
        ("unknown", None, None, Point(X0 - 600, Y0 + EDGE + 300)),  # in, yellow: check it
    ]
    put(
        gpkg_store,
        rail_corridors=[
            rail("rail-1", [(X0 - 2_000, Y0), (X0, Y0)], rail_type="high_speed"),
            rail(
                "rail-2", [(X0, Y0), (X0 + 2_000, Y0)], rail_type="high_speed", structure="tunnel"
            ),
        ],
        mines=[
            {"id": i, "name": i, "mine_type": t, "blasting": b, "geometry": g}
            for i, t, b, g in mines
        ],
    )
    found = by_target(run(gpkg_store, "rail_mining_approval"))
    # grid metres 1 km off the central meridian are 1.2e-8 longer than ground metres: to 0.1 mm
    assert {k: (r.hazard_id, r.risk_class, round(r.value, 4)) for k, r in found.items()} == {
        "quarry-999": ("rail-1", "orange", 999.0),
        "tunnel-1000": ("rail-2", "orange", 1_000.0),
        "open-pit": ("rail-1", "yellow", 500.0),
        "unknown": ("rail-1", "yellow", 300.0),
    }
    assert evidence(found["tunnel-1000"])["measured_from"] == "tunnel centreline"
    assert evidence(found["quarry-999"])["approval_required"] is True
    assert all("需经批准" in r.title for r in found.values())
    # the geometry is the shortest line from the line to the mine
    line = gpd.GeoSeries([found["quarry-999"].geometry], crs=4326).to_crs(CRS).iloc[0]
    assert line.length == pytest.approx(1_004.0, abs=1e-3)


# -- legacy hazardous-goods screen -------------------------------------------------------------


def test_the_legacy_200_m_screen_is_labelled_superseded(gpkg_store) -> None:
    put(
        gpkg_store,
        rail_corridors=[rail("rail-1", [(X0 - 1_000, Y0), (X0 + 1_000, Y0)])],
        chemical_plants=[
            {"id": "p-200", "name": "甲", "major_hazard_grade": 2, "geometry": Point(X0, Y0 + 200)},
            {"id": "p-200.5", "name": "乙", "geometry": Point(X0 + 300, Y0 - 200.5)},
            {"id": "p-150", "name": "丙", "geometry": Point(X0 - 300, Y0 - 150)},
        ],
    )
    found = by_target(run(gpkg_store, "rail_legacy_hazmat"))
    assert {k: (r.risk_class, round(r.value, 6)) for k, r in found.items()} == {
        "p-200": ("yellow", 200.0),  # inclusive; a major hazard source
        "p-150": ("blue", 150.0),
    }
    for row in found.values():
        assert "superseded" in row.title and row.threshold == 200.0
        assert evidence(row)["screening"] == "legacy (superseded)"


# -- parallel roads ----------------------------------------------------------------------------


def road(fid: str, coords: Any, **props: Any) -> dict[str, Any]:
    geometry = coords if isinstance(coords, LineString) else LineString(coords)
    return {"id": fid, "road_name": fid, "road_class": "class_2", **props, "geometry": geometry}


def test_parallel_roads_need_the_distance_the_length_and_the_angle(gpkg_store) -> None:
    # a bent line: east for 1000 m, then 20° to the north-east (the second line of the scene)
    bend = LineString(
        [
            (X0, Y0 + 5_000),
            (X0 + 1_000, Y0 + 5_000),
            (
                X0 + 1_000 + 1_000 * np.cos(np.radians(20)),
                Y0 + 5_000 + 1_000 * np.sin(np.radians(20)),
            ),
        ]
    )
    along_bend = shapely.ops.substring(bend.offset_curve(40.0), 650.0, 1_350.0)
    put(
        gpkg_store,
        rail_corridors=[
            rail("rail-1", [(X0 - 3_000, Y0), (X0 + 3_000, Y0)]),
            {**rail("rail-2", list(bend.coords), name="弯道线")},
        ],
        road_sections=[
            road("r600-at-40", [(X0 - 2_000, Y0 + 40), (X0 - 1_400, Y0 + 40)]),  # found, 600 m
            road("r400-at-40", [(X0 + 500, Y0 + 40), (X0 + 900, Y0 + 40)]),  # too short
            road("r45", [(X0 + 1_700, Y0 - 300), (X0 + 2_300, Y0 + 300)]),  # crosses at 45°
            road("r600-at-20", [(X0 - 500, Y0 - 20), (X0 + 100, Y0 - 20)]),  # found, orange
            road("r600-at-51", [(X0 - 2_900, Y0 - 51), (X0 - 2_300, Y0 - 51)]),  # too far
            road("r-bend", along_bend),  # follows the bend at 40 m for 700 m
        ],
    )
    found = by_target(run(gpkg_store, "rail_parallel_roads"))
    assert set(found) == {"r600-at-40", "r600-at-20", "r-bend"}
    assert found["r600-at-40"].value == pytest.approx(600.0, abs=1e-6)
    assert found["r600-at-40"].risk_class == "yellow"
    assert found["r600-at-20"].risk_class == "orange"
    assert found["r-bend"].hazard_id == "rail-2"
    assert found["r-bend"].value == pytest.approx(700.0, abs=1e-6)
    assert found["r600-at-40"].threshold == 500.0
    ev = evidence(found["r600-at-40"])
    assert ev["runs"] == [{"from_m": 0.0, "to_m": 600.0, "length_m": 600.0}]
    assert ev["nearest_m"] == pytest.approx(40.0)
    run_line = gpd.GeoSeries([found["r600-at-40"].geometry], crs=4326).to_crs(CRS).iloc[0]
    assert run_line.length == pytest.approx(600.0, abs=1e-3)


def test_a_road_that_leaves_the_line_midway_makes_two_short_runs(gpkg_store) -> None:
    # 300 m at 30 m, a detour to 120 m, 300 m at 30 m again: 2 × ~300 m, neither reaches 500 m
    put(
        gpkg_store,
        rail_corridors=[rail("rail-1", [(X0 - 3_000, Y0), (X0 + 3_000, Y0)])],
        road_sections=[
            road(
                "detour",
                [
                    (X0, Y0 + 30),
                    (X0 + 300, Y0 + 30),
                    (X0 + 400, Y0 + 120),
                    (X0 + 500, Y0 + 30),
                    (X0 + 800, Y0 + 30),
                ],
            ),
        ],
    )
    assert run(gpkg_store, "rail_parallel_roads").empty


# -- crossings ---------------------------------------------------------------------------------


def test_road_bridges_over_the_line_and_level_crossings(gpkg_store) -> None:
    def across(x: float, angle: float = 90.0) -> list[tuple[float, float]]:
        dx = 100 * np.cos(np.radians(angle))
        return [
            (x - dx, Y0 - 100 * np.sin(np.radians(angle))),
            (x + dx, Y0 + 100 * np.sin(np.radians(angle))),
        ]

    put(
        gpkg_store,
        rail_corridors=[
            rail("rail-1", [(X0 - 1_000, Y0), (X0 + 1_000, Y0)]),
            rail("rail-2", [(X0 + 1_000, Y0), (X0 + 2_000, Y0)], structure="bridge"),
        ],
        road_sections=[
            road("level", across(X0 - 800), structure="road"),
            road("bridge", across(X0 - 400), structure="bridge"),
            road("marked", across(X0, 60.0), hazard_types=["level_crossing"]),
            road("unknown", across(X0 + 400)),
            road("tunnel", across(X0 + 600), structure="tunnel"),
            road("under-rail-bridge", across(X0 + 1_500), structure="road"),
            road("short", [(X0 - 200, Y0 - 100), (X0 - 200, Y0 - 1)], structure="road"),
        ],
    )
    found = by_target(run(gpkg_store, "rail_road_over"))
    assert {k: (r.risk_class, round(r.value, 6)) for k, r in found.items()} == {
        "level": ("red", 90.0),
        "bridge": ("orange", 90.0),
        "marked": ("red", 60.0),
        "unknown": ("yellow", 90.0),
    }
    assert found["bridge"].title.startswith("公跨铁")
    assert found["level"].title == found["marked"].title == "道路与铁路平交道口"
    assert evidence(found["marked"])["level_crossing_from_hazard_types"] is True
    assert evidence(found["unknown"])["crossing"] == "unknown"
    assert all(r.unit == "deg" and np.isnan(r.threshold) for r in found.values())
    point = gpd.GeoSeries([found["level"].geometry], crs=4326).to_crs(CRS).iloc[0]
    assert point.distance(Point(X0 - 800, Y0)) < 1e-6


# -- across two Gauss–Krüger zones -------------------------------------------------------------


def test_a_line_across_two_gk_zones_is_measured_on_the_ground(gpkg_store) -> None:
    # a line along 30.5°N from 115.40°E to 115.60°E crosses 115.5°E, the edge between the zones
    # of 114°E (EPSG:4547) and 117°E (EPSG:4548). There the grid scale is 1 + 2.5e-4: 13 m on
    # the ground reads 13.0033 m on the grid; the rules bring it back to the ground.
    geod = pyproj.Geod(ellps="GRS80")
    lon = np.round(np.arange(115.40, 115.6001, 0.0005), 6)
    line = LineString(np.column_stack([lon, np.full(lon.size, 30.5)]))

    def north_of(lon0: float, metres: float) -> Point:
        x, y, _ = geod.fwd(lon0, 30.5, 0.0, metres)
        return Point(x, y)

    def wall_at(fid: str, lon0: float, metres: float) -> dict[str, Any]:
        # a 2 m wide building, its south wall's corners on the geodesic circle round a vertex
        (x1, y1, _), (x2, y2, _) = (
            geod.fwd(lon0, 30.5, az, np.hypot(metres, 1.0))
            for az in (-np.degrees(np.arctan2(1.0, metres)), np.degrees(np.arctan2(1.0, metres)))
        )
        far = north_of(lon0, metres + 10)
        return {"id": fid, "geometry": box(min(x1, x2), min(y1, y2), max(x1, x2), far.y)}

    rails = gpd.GeoDataFrame(
        [{k: v for k, v in rail("rail-1", []).items() if k != "geometry"}],
        geometry=[line],
        crs=4326,
    )
    wgs = "EPSG:4326"
    buildings = [
        wall_at("west-in", 115.4500, 12.999),  # 7.999 m from the edge, zone 114°E: inside
        wall_at("west-out", 115.4600, 13.002),  # 8.002 m: outside
        wall_at("east-in", 115.5500, 12.999),  # zone 117°E
        wall_at("east-out", 115.5400, 13.002),
    ]
    mines = [
        {
            "id": "m-west-in",
            "name": "a",
            "mine_type": "quarry",
            "blasting": True,
            "geometry": north_of(115.4900, EDGE + 999.9),
        },
        {
            "id": "m-west-out",
            "name": "b",
            "mine_type": "quarry",
            "blasting": True,
            "geometry": north_of(115.4800, EDGE + 1_000.1),
        },
        {
            "id": "m-east-in",
            "name": "c",
            "mine_type": "quarry",
            "blasting": True,
            "geometry": north_of(115.5100, EDGE + 999.9),
        },
        {
            "id": "m-east-out",
            "name": "d",
            "mine_type": "quarry",
            "blasting": True,
            "geometry": north_of(115.5200, EDGE + 1_000.1),
        },
    ]
    gpkg_store.replace("rail_corridors", rails)
    gpkg_store.replace("buildings", frame(buildings, wgs))
    gpkg_store.replace("mines", frame(mines, wgs))
    zones = {metric_crs(115.45, 30.5).to_epsg(), metric_crs(115.55, 30.5).to_epsg()}
    assert zones == {4547, 4548}
    found = by_target(run(gpkg_store, "rail_protection_zone"))
    assert set(found) == {"west-in", "east-in"}
    for row in found.values():
        assert row.value == pytest.approx(7.999, abs=2e-4)
    mined = by_target(run(gpkg_store, "rail_mining_approval"))
    assert set(mined) == {"m-west-in", "m-east-in"}
    for row in mined.values():
        assert row.value == pytest.approx(999.9, abs=0.01)


# -- empty layers ------------------------------------------------------------------------------


def test_empty_layers_give_empty_findings(gpkg_store) -> None:
    for rule_id in RULES:  # nothing at all
        assert list(run(gpkg_store, rule_id).columns) == [*FINDING_COLUMNS, "geometry"]
    put(gpkg_store, rail_corridors=[rail("rail-1", [(X0 - 500, Y0), (X0 + 500, Y0)])])
    ctx = RuleContext(gpkg_store)
    for rule_id in RULES:  # a line, nothing near it
        assert run(gpkg_store, rule_id, ctx).empty
    assert len(ctx.shared["rail_protection_zone:rail_corridors"]) == 1


# -- parity and the demo region ----------------------------------------------------------------


def _scene(store: Store) -> None:
    put(
        store,
        rail_corridors=[
            rail("rail-1", [(X0 - 2_000, Y0), (X0, Y0)], area=None),
            rail("rail-2", [(X0, Y0), (X0 + 2_000, Y0)], rail_type="high_speed", gazetted=14.0),
            rail("rail-3", [(X0 + 2_000, Y0), (X0 + 3_000, Y0)], structure="tunnel"),
        ],
        buildings=[
            house("b-1", X0 - 100, Y0 + 19),
            house("b-2", X0 + 900, Y0 - 19, north=False),
            house("b-3", X0 + 2_500, Y0 + 2),
        ],
        chemical_plants=[{"id": "p-1", "name": "甲", "geometry": Point(X0 + 300, Y0 + 150)}],
        mines=[
            {
                "id": "m-1",
                "name": "采石场",
                "mine_type": "quarry",
                "blasting": True,
                "geometry": box(X0 + 2_400, Y0 + 700, X0 + 2_600, Y0 + 900),
            }
        ],
        road_sections=[
            road("r-1", [(X0 - 1_900, Y0 + 30), (X0 - 1_100, Y0 + 30)]),
            road("r-2", [(X0 - 1_500, Y0 - 100), (X0 - 1_500, Y0 + 100)], structure="bridge"),
        ],
    )


def test_the_same_findings_on_geopackage_and_postgis(gpkg_store, postgis_store) -> None:
    _scene(gpkg_store)
    _scene(postgis_store)
    for rule_id in RULES:
        a, b = run(gpkg_store, rule_id), run(postgis_store, rule_id)
        assert len(a) >= 1, rule_id
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert all(x.equals_exact(y, 1e-9) for x, y in zip(a.geometry, b.geometry, strict=True))


def test_the_demo_region_reads_as_a_planner_expects(gpkg_store) -> None:
    summary = build_demo(gpkg_store)
    zone = run(gpkg_store, "rail_protection_zone")
    # the houses built inside the zone on purpose, and nothing else
    assert set(zone["target_layer"]) == {"buildings"}
    assert sorted(zone["target_id"]) == sorted(summary.rail_encroachments)
    mining = run(gpkg_store, "rail_mining_approval")
    assert set(mining["target_id"]) == {summary.quarry}
    assert set(mining["risk_class"]) == {"orange"}  # it blasts
    legacy = run(gpkg_store, "rail_legacy_hazmat")
    assert sorted(legacy["target_id"]) == sorted(summary.plants_near_rail)
    crossings = by_target(run(gpkg_store, "rail_road_over"))
    assert crossings[summary.road_over_rail].risk_class == "orange"
    assert crossings[summary.road_over_rail].title.startswith("公跨铁")
    assert crossings[summary.level_crossing_road].risk_class == "red"
    # every other crossing is settled by its road's structure too (over on a bridge, or a
    # level crossing): none is left to be surveyed
    structure = gpkg_store.read("road_sections").set_index("id")["structure"]
    kinds = {"bridge": "orange", "road": "red"}
    assert {k: r.risk_class for k, r in crossings.items()} == {
        k: kinds[structure[k]] for k in crossings
    }
    # the valley roads keep their distance from the railway
    assert run(gpkg_store, "rail_parallel_roads").empty
