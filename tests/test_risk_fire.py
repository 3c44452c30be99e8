"""Fire-access lifelines: lane standard, lane coverage, and fire-station reach on a road network.

Scenarios are drawn in metres in the CGCS2000 GK zone of 114°E (EPSG:4547) near its central
meridian, where the map scale is 1 to better than 1e-7, so lengths on the map are lengths on the
ground and the answers can be worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from geo_service.catalogue import Catalogue, Rule
from geo_service.demo import DemoSummary, build_demo
from geo_service.metric import GEOD
from geo_service.risk.context import RuleContext
from geo_service.risk.model import FINDING_COLUMNS
from geo_service.risk.network import build_network
from geo_service.risk.rules.fire import lane_coverage, lane_standard, station_isochrone
from geo_service.schema import empty_frame
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore

X0, Y0 = 500_000.0, 3_320_000.0  # on the central meridian of EPSG:4547, about 30°N
_TO_LONLAT = pyproj.Transformer.from_crs(4547, 4326, always_xy=True).transform


def at(geom: Any) -> Any:
    """A geometry drawn in local metres (origin on the central meridian) → EPSG:4326."""
    return shapely.transform(
        shapely.affinity.translate(geom, X0, Y0), _TO_LONLAT, interleaved=False
    )


def frame(rows: list[dict[str, Any]], geoms: list[Any]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=[at(g) for g in geoms], crs=4326)


def rule_with(catalogue: Catalogue, rule_id: str, **params: Any) -> Rule:
    rule = catalogue["fire_lifelines"].rule(rule_id)
    return rule.model_copy(update={"params": {**rule.params, **params}})


def run(store: Store, kind: Any, rule: Rule) -> gpd.GeoDataFrame:
    layer = store.catalogue["fire_lifelines"]
    return kind(RuleContext(store), layer, rule).findings


def evidence(findings: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    return [json.loads(e) for e in findings["evidence"]]


# -- lane_standard ---------------------------------------------------------------------------


def test_lane_standard_flags_each_defect_strictly_below_four_metres(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    lanes = frame(
        [
            # 3.9 m wide: one orange finding, value 3.9 against 4.0
            {"id": "L1", "width_m": 3.9, "clear_height_m": 4.5, "obstructed": False},
            # exactly 4.0 × 4.0 and clear: the standard is ≥ 4.0, so nothing
            {"id": "L2", "width_m": 4.0, "clear_height_m": 4.0, "obstructed": False},
            # wide and high but obstructed: red, value 1 against 0
            {"id": "L3", "width_m": 6.0, "clear_height_m": 5.0, "obstructed": True},
            # 3.99 m clear height (orange) and a width never measured (blue, no value)
            {"id": "L4", "width_m": None, "clear_height_m": 3.99, "obstructed": False},
            # obstruction unknown is not a finding
            {"id": "L5", "width_m": 6.0, "clear_height_m": 5.0, "obstructed": None},
        ],
        [LineString([(0, 10 * i), (100, 10 * i)]) for i in range(5)],
    )
    gpkg_store.replace("fire_lifelines", lanes)
    found = run(gpkg_store, lane_standard, rule_with(catalogue, "lane_substandard"))

    assert list(found.columns[:-1]) == list(FINDING_COLUMNS)
    got = list(
        zip(found["hazard_id"], found["target_id"], found["risk_class"], found["unit"], strict=True)
    )
    assert got == [
        ("L1", "width_m", "orange", "m"),
        ("L3", "obstructed", "red", "flag"),
        ("L4", "clear_height_m", "orange", "m"),
        ("L4", "width_m", "blue", "m"),
    ]
    assert found["value"].tolist()[:3] == [3.9, 1.0, 3.99]
    assert np.isnan(found["value"].iloc[3])
    assert found["threshold"].tolist() == [4.0, 0.0, 4.0, 4.0]
    assert (found["hazard_layer"] == "fire_lifelines").all()
    assert found.geometry.geom_type.eq("LineString").all()
    assert evidence(found)[0]["measured"] == 3.9 and evidence(found)[3]["measured"] is None
    assert found["basis"].str.contains("7.1.8").all()


# -- lane_coverage ---------------------------------------------------------------------------


def test_lane_coverage_at_49_and_51_metres(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # one lane along y = 0 from x = 0 to 400; distances below are to that line
    gpkg_store.replace(
        "fire_lifelines",
        frame([{"id": "lane-1", "width_m": 5.0}], [LineString([(0, 0), (400, 0)])]),
    )
    buildings = [
        ({"id": "b49", "height_m": 30.0}, box(50, 49, 70, 69)),  # 49 m: served
        ({"id": "b50", "height_m": 30.0}, box(250, 50, 270, 70)),  # exactly 50 m: served
        ({"id": "b51", "height_m": 60.0}, box(100, -71, 120, -51)),  # 51 m, ≥ 54 m tall: red
        ({"id": "b27", "height_m": 27.0}, box(150, 80, 170, 100)),  # 27.0 m is high-rise: orange
        ({"id": "low", "height_m": 26.9}, box(200, 80, 220, 100)),  # not a high-rise
        ({"id": "f10", "height_m": None, "floors": 10}, box(0, 100, 20, 120)),  # 10 floors
        ({"id": "f9", "height_m": None, "floors": 9}, box(40, 100, 60, 120)),  # 9 floors: no
        # beyond the lane's east end: 30 m east and 40 m north of (400, 0) → 50 m, served
        ({"id": "end", "height_m": 40.0}, box(430, 40, 450, 60)),
    ]
    gpkg_store.replace("buildings", frame([r for r, _ in buildings], [g for _, g in buildings]))
    targets = [
        ({"id": "t-school", "name": "一中", "category": "school", "occupants": 1500}, Point(100, 120)),
        ({"id": "t-hosp", "name": "医院", "category": "hospital", "occupants": 800}, Point(100, 30)),
        ({"id": "t-kg", "name": "幼儿园", "category": "kindergarten"}, Point(300, 500)),
    ]  # fmt: skip
    gpkg_store.replace(
        "protection_targets", frame([r for r, _ in targets], [g for _, g in targets])
    )
    found = run(gpkg_store, lane_coverage, rule_with(catalogue, "building_without_lane"))

    assert found["hazard_id"].tolist() == ["b27", "b51", "f10", "t-school"]
    assert found["hazard_layer"].tolist() == ["buildings"] * 3 + ["protection_targets"]
    assert found["value"].to_numpy() == pytest.approx([80.0, 51.0, 100.0, 120.0], abs=0.01)
    assert found["risk_class"].tolist() == ["orange", "red", "orange", "red"]
    assert (found["threshold"] == 50.0).all() and (found["target_id"] == "lane-1").all()
    assert evidence(found)[2] == {
        "why": "high_rise",
        "height_m": None,
        "floors": 10.0,
        "nearest_lane": "lane-1",
        "nearest_lane_layer": "fire_lifelines",
        "distance_m": 100.0,
        "max_distance_m": 50.0,
    }
    assert found.geometry.geom_type.tolist() == ["Polygon"] * 3 + ["Point"]


def test_lane_coverage_with_no_lanes_reports_every_high_rise_without_a_distance(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    gpkg_store.replace("buildings", frame([{"id": "b1", "height_m": 80.0}], [box(0, 0, 20, 20)]))
    found = run(gpkg_store, lane_coverage, rule_with(catalogue, "building_without_lane"))
    assert found["hazard_id"].tolist() == ["b1"]
    assert np.isnan(found["value"].iloc[0]) and found["target_id"].iloc[0] is None
    assert found["risk_class"].tolist() == ["red"]


# -- station_isochrone: a grid of 1 km blocks at 30 km/h (500 m a minute) --------------------

GRID = [LineString([(0, y), (3000, y)]) for y in (0, 1000, 2000, 3000)] + [
    LineString([(x, 0), (x, 3000)]) for x in (0, 1000, 2000, 3000)
]  # long lines crossing without shared vertices: the network must cut them at the crossings

# access at 15 km/h = 250 m a minute; turn-out 1 min; response 5 min → 4 min = 2,000 m of road
ISLAND = LineString([(5000, 0), (6000, 0)])  # road r08
KERB = LineString([(3015, 1500), (4000, 1500)])  # road r09
REACH = {
    "road_speeds_kmh": {"default": 30},
    "include_high_rises": False,
    "target_categories": ["school", "hospital", "residential"],
}


def _grid_store(store: Store, stations: list[Point]) -> None:
    roads = [*GRID, ISLAND, KERB]
    store.replace(
        "road_sections",
        frame(
            [{"id": f"r{i:02d}", "road_class": "urban_secondary"} for i in range(len(roads))], roads
        ),
    )
    store.replace(
        "fire_stations",
        frame([{"id": f"s{i}", "name": f"站{i}"} for i in range(1, len(stations) + 1)], stations),
    )
    targets = {
        # (1000, 1000): 1000 m east + 1000 m north = 2000 m = 4.0 min → 5.0 min: reached
        "t-2000": Point(1000, 1000),
        # (2000, 200): 2000 m east + 200 m north = 2200 m = 4.4 min → 5.4 min: orange
        "t-2200": Point(2000, 200),
        # 1900 m along y = 0 (3.8 min), 40 m off it (0.16 min) → 4.96 min: reached
        "t-off40": Point(1900, 40),
        # 1900 m along y = 0 (3.8 min), 60 m off it (0.24 min) → 5.04 min: orange
        # (the x = 2000 street is 100 m away)
        "t-off60": Point(1900, 60),
        # (3000, 3000): 6000 m = 12 min → 13 min: red (over 10)
        "t-far": Point(3000, 3000),
        # (2500, 1000): 3500 m from s1 → 8 min; 2500 m from s2 at (3000, 3000) → 6 min
        # (from s1 both (0,1000)→ and (2000,0)→(2000,1000)→ are 3500 m)
        "t-east": Point(2500, 1000),
        # on ISLAND, 2 km beyond the grid and joined to nothing: unreachable, red
        "t-island": Point(5500, 0),
        # at the end of KERB, which stops 15 m short of the x = 3000 street (joined within
        # 20 m): from s1 3000 + 1500 + 15 + 985 = 5500 m = 11 min → 12 min: red;
        # from s2 at (3000, 3000): 1500 + 15 + 985 = 2500 m → 6 min
        "t-kerb": Point(4000, 1500),
    }
    store.replace(
        "protection_targets",
        frame(
            [{"id": k, "name": k, "category": "residential"} for k in targets],
            list(targets.values()),
        ),
    )


def test_station_reach_on_a_grid_worked_by_hand(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    _grid_store(gpkg_store, [Point(0, 0)])
    found = run(gpkg_store, station_isochrone, rule_with(catalogue, "fire_station_reach", **REACH))

    by_target = found.set_index("target_id")
    assert sorted(by_target.index) == [
        "t-2200", "t-east", "t-far", "t-island", "t-kerb", "t-off60"
    ]  # fmt: skip
    assert by_target.loc["t-2200", "value"] == pytest.approx(5.4, abs=0.005)
    assert by_target.loc["t-off60", "value"] == pytest.approx(5.04, abs=0.005)
    assert by_target.loc["t-east", "value"] == pytest.approx(8.0, abs=0.005)
    assert by_target.loc["t-far", "value"] == pytest.approx(13.0, abs=0.005)
    assert by_target.loc["t-kerb", "value"] == pytest.approx(12.0, abs=0.005)
    assert np.isnan(by_target.loc["t-island", "value"])
    assert by_target["risk_class"].to_dict() == {
        "t-2200": "orange",
        "t-east": "orange",
        "t-far": "red",
        "t-island": "red",
        "t-kerb": "red",
        "t-off60": "orange",
    }
    assert (found["hazard_layer"] == "fire_stations").all() and (found["hazard_id"] == "s1").all()
    assert (found["threshold"] == 5.0).all() and (found["unit"] == "min").all()
    facts = dict(zip(found["target_id"], evidence(found), strict=True))
    assert facts["t-2200"]["network_m"] == pytest.approx(2200.0, abs=0.01)
    assert facts["t-2200"]["drive_min"] == pytest.approx(4.4, abs=0.005)
    assert facts["t-off60"]["target_access_m"] == pytest.approx(60.0, abs=0.01)
    assert facts["t-off60"]["network_m"] == pytest.approx(1900.0, abs=0.01)
    assert facts["t-kerb"]["network_m"] == pytest.approx(5500.0, abs=0.01)
    assert facts["t-island"]["reachable"] is False
    assert facts["t-island"]["nearest_road"] == "road_sections/r08"


def test_station_reach_exactly_five_minutes_is_reached(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    _grid_store(gpkg_store, [Point(0, 0)])
    rule = rule_with(catalogue, "fire_station_reach", **REACH)
    ctx = RuleContext(gpkg_store)
    station_isochrone(ctx, gpkg_store.catalogue["fire_lifelines"], rule)
    shared = ctx.shared["station_isochrone:fire_lifelines"]
    response = shared["response_minutes"]
    assert response["protection_targets/t-2000"] == pytest.approx(5.0, abs=1e-9)
    assert response["protection_targets/t-off40"] == pytest.approx(4.96, abs=1e-9)
    # the isochrone: every road within 2000 m of (0, 0), buffered 60 m
    iso = shared["isochrones"]
    assert iso["station_id"].tolist() == ["s1"] and iso["drive_minutes"].tolist() == [4.0]
    inside = [at(Point(1000, 1000)), at(Point(0, 2000)), at(Point(1990, 0))]
    outside = [at(Point(2100, 0)), at(Point(1000, 1100)), at(Point(500, 500))]
    assert shapely.contains(iso.geometry.iloc[0], inside).all()
    assert not shapely.contains(iso.geometry.iloc[0], outside).any()


def test_two_stations_the_faster_one_answers(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    _grid_store(gpkg_store, [Point(0, 0), Point(3000, 3000)])
    found = run(gpkg_store, station_isochrone, rule_with(catalogue, "fire_station_reach", **REACH))
    by_target = found.set_index("target_id")
    # t-far is s2's doorstep (1.0 min); t-east and t-kerb are 2500 m from s2 (6.0 min)
    assert by_target["hazard_id"].to_dict() == {
        "t-2200": "s1",
        "t-east": "s2",
        "t-island": "s2",  # unreachable: the station nearest in a straight line (3.9 km)
        "t-kerb": "s2",
        "t-off60": "s1",
    }
    assert by_target.loc["t-east", "value"] == pytest.approx(6.0, abs=0.005)
    assert by_target.loc["t-kerb", "value"] == pytest.approx(6.0, abs=0.005)
    assert by_target.loc["t-2200", "value"] == pytest.approx(5.4, abs=0.005)


def test_station_off_the_road_and_a_target_on_its_edge(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # one 3 km road; the station 125 m off it at x = 1000 (0.5 min at 250 m/min); targets on the
    # same edge reach it straight along the road: x = 2500 → 0.5 + 1500/500 + 1 = 4.5 min
    # (reached); x = 3000 → 0.5 + 4 + 1 = 5.5 min (orange); x = 0 → 0.5 + 2 + 1 = 3.5 (reached)
    road = LineString([(0, 0), (3000, 0)])
    gpkg_store.replace("road_sections", frame([{"id": "r1"}], [road]))
    gpkg_store.replace("fire_stations", frame([{"id": "s1", "name": "站"}], [Point(1000, 125)]))
    gpkg_store.replace(
        "protection_targets",
        frame(
            [{"id": f"t{x}", "name": "t", "category": "school"} for x in (0, 2500, 3000)],
            [Point(0, 0), Point(2500, 0), Point(3000, 0)],
        ),
    )
    found = run(gpkg_store, station_isochrone, rule_with(catalogue, "fire_station_reach", **REACH))
    assert found["target_id"].tolist() == ["t3000"]
    assert found["value"].iloc[0] == pytest.approx(5.5, abs=0.005)
    facts = evidence(found)[0]
    assert facts["station_access_m"] == pytest.approx(125.0, abs=0.01)
    assert facts["network_m"] == pytest.approx(2000.0, abs=0.01)


def test_two_gauss_kruger_zones(gpkg_store: GeoPackageStore, catalogue: Catalogue) -> None:
    # a road east along 30°N across 118.5°E, the border of the 117°E and 120°E zones, with a
    # vertex every 100 m on the spheroid; the station at its start. 2000 m → 5.0 min (reached);
    # 2200 m → 5.4 min (orange); network metres exact on the spheroid, not in either zone
    lon, lat = [118.49], [30.0]
    for _ in range(30):
        x, y, _ = GEOD.fwd(lon[-1], lat[-1], 90.0, 100.0)
        lon.append(x)
        lat.append(y)
    assert lon[0] < 118.5 < lon[-1]
    gpkg_store.replace(
        "road_sections",
        gpd.GeoDataFrame(
            {"id": ["r1"]}, geometry=[LineString(zip(lon, lat, strict=True))], crs=4326
        ),
    )
    gpkg_store.replace(
        "fire_stations",
        gpd.GeoDataFrame(
            {"id": ["s1"], "name": ["站"]}, geometry=[Point(lon[0], lat[0])], crs=4326
        ),
    )
    gpkg_store.replace(
        "protection_targets",
        gpd.GeoDataFrame(
            {"id": ["t20", "t22"], "name": ["a", "b"], "category": ["residential"] * 2},
            geometry=[Point(lon[20], lat[20]), Point(lon[22], lat[22])],
            crs=4326,
        ),
    )
    # a lane across the border (vertex 9 is west of it, 10 east), a high-rise 49 m north of
    # vertex 10 (zone 120°E) and one 51 m south of vertex 9 (zone 117°E)
    assert lon[9] + 0.0002 < 118.5 < lon[10] - 0.0002
    lane = LineString([(lon[8], lat[8]), (lon[12], lat[12])])
    gpkg_store.replace(
        "fire_lifelines",
        gpd.GeoDataFrame({"id": ["lane"], "width_m": [5.0]}, geometry=[lane], crs=4326),
    )
    north = _square_from(lon[10], lat[10], 0.0, 49.0)
    south = _square_from(lon[9], lat[9], 180.0, 51.0)
    gpkg_store.replace(
        "buildings",
        gpd.GeoDataFrame(
            {"id": ["b49", "b51"], "height_m": [30.0, 30.0]}, geometry=[north, south], crs=4326
        ),
    )
    reach = run(
        gpkg_store,
        station_isochrone,
        rule_with(catalogue, "fire_station_reach", **REACH, include_lanes=False),
    )
    assert reach["target_id"].tolist() == ["t22"]
    assert reach["value"].iloc[0] == pytest.approx(5.4, abs=0.005)
    assert evidence(reach)[0]["network_m"] == pytest.approx(2200.0, abs=0.01)

    coverage = run(gpkg_store, lane_coverage, rule_with(catalogue, "building_without_lane"))
    assert coverage["hazard_id"].tolist() == ["b51"]
    assert coverage["value"].iloc[0] == pytest.approx(51.0, abs=0.01)


def test_a_bridge_is_no_junction_when_the_data_carries_its_junctions(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # two roads crossing in an X with no shared vertex; the station at the west end of one, the
    # target at the north end of the other: 1000 + 1000 m = 4 min → 5.0 min when the crossing
    # is a junction; with node_crossings false (OSM-style data) the crossing is a bridge
    roads = [LineString([(-1000, 0), (1000, 0)]), LineString([(0, -1000), (0, 1000)])]
    gpkg_store.replace("road_sections", frame([{"id": "r1"}, {"id": "r2"}], roads))
    gpkg_store.replace("fire_stations", frame([{"id": "s1", "name": "站"}], [Point(-1000, 0)]))
    gpkg_store.replace(
        "protection_targets",
        frame([{"id": "t", "name": "t", "category": "school"}], [Point(0, 1000)]),
    )
    rule = rule_with(catalogue, "fire_station_reach", **REACH)
    assert run(gpkg_store, station_isochrone, rule).empty
    bridged = run(
        gpkg_store,
        station_isochrone,
        rule_with(catalogue, "fire_station_reach", **REACH, node_crossings=False),
    )
    assert bridged["target_id"].tolist() == ["t"] and bridged["risk_class"].tolist() == ["red"]
    # the same when the data says the north-south road is a bridge
    gpkg_store.replace(
        "road_sections", frame([{"id": "r1"}, {"id": "r2", "structure": "bridge"}], roads)
    )
    over = run(gpkg_store, station_isochrone, rule)
    assert over["target_id"].tolist() == ["t"] and np.isnan(over["value"].iloc[0])


def test_a_bridge_meets_other_roads_only_at_its_ends() -> None:
    # the same X: cut at the crossing into 4 edges around one shared node (5 nodes, one piece);
    # with the north-south road a bridge, 2 edges and 4 nodes in two pieces
    lines = np.array(
        [at(LineString([(-1000, 0), (1000, 0)])), at(LineString([(0, -1000), (0, 1000)]))]
    )
    crs = pyproj.CRS.from_epsg(4547)
    level = build_network(lines, np.array([30.0, 30.0]), crs)
    bridge = build_network(
        lines, np.array([30.0, 30.0]), crs, grade_separated=np.array([False, True])
    )
    assert (level.n_edges, level.n_nodes) == (4, 5)
    assert (bridge.n_edges, bridge.n_nodes) == (2, 4)
    assert level.metres.sum() == pytest.approx(4000.0, abs=0.01)


def _square_from(lon: float, lat: float, azimuth: float, gap: float) -> Any:
    """A 20 m square whose near side lies ``gap`` metres from (lon, lat) along ``azimuth``."""
    near_lon, near_lat, _ = GEOD.fwd(lon, lat, azimuth, gap)
    _, far_lat, _ = GEOD.fwd(lon, lat, azimuth, gap + 20)
    west, _, _ = GEOD.fwd(near_lon, near_lat, 270.0, 10)
    east, _, _ = GEOD.fwd(near_lon, near_lat, 90.0, 10)
    return box(west, min(near_lat, far_lat), east, max(near_lat, far_lat))


# -- empty layers ----------------------------------------------------------------------------


def test_every_kind_on_an_empty_store_finds_nothing(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    layer = catalogue["fire_lifelines"]
    for kind, rule in zip(
        (lane_standard, lane_coverage, station_isochrone), layer.rules, strict=True
    ):
        found = kind(RuleContext(gpkg_store), layer, rule).findings
        assert found.empty and list(found.columns[:-1]) == list(FINDING_COLUMNS)


def test_reach_without_roads_or_stations_finds_nothing(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    rule = rule_with(catalogue, "fire_station_reach", **REACH)
    _grid_store(gpkg_store, [Point(0, 0)])
    gpkg_store.replace("fire_stations", empty_frame(catalogue["fire_stations"]))
    assert run(gpkg_store, station_isochrone, rule).empty
    _grid_store(gpkg_store, [Point(0, 0)])
    gpkg_store.replace("road_sections", empty_frame(catalogue["road_sections"]))
    assert run(gpkg_store, station_isochrone, rule).empty


# -- the demo region -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> tuple[GeoPackageStore, DemoSummary]:
    store = GeoPackageStore(catalogue, tmp_path_factory.mktemp("fire-demo"))
    return store, build_demo(store, seed=2020)


def test_demo_reads_as_a_fire_officer_expects(
    demo: tuple[GeoPackageStore, DemoSummary], catalogue: Catalogue
) -> None:
    store, summary = demo
    layer = catalogue["fire_lifelines"]
    ctx = RuleContext(store)

    coverage = lane_coverage(ctx, layer, layer.rule("building_without_lane")).findings
    towers = coverage[coverage["hazard_layer"] == "buildings"]
    assert sorted(towers["hazard_id"]) == sorted(summary.high_rises_without_lane)

    standard = lane_standard(ctx, layer, layer.rule("lane_substandard")).findings
    lanes = ctx.frame("fire_lifelines")
    short = (lanes["width_m"] < 4) | (lanes["clear_height_m"] < 4) | lanes["obstructed"]
    bad = lanes[short.fillna(False).to_numpy(dtype=bool)]
    assert set(standard["hazard_id"]) == set(bad["id"]) and len(bad) > 50
    blocked = standard[standard["target_id"] == "obstructed"]
    assert (blocked["risk_class"] == "red").all() and len(blocked) > 10

    reach = station_isochrone(ctx, layer, layer.rule("fire_station_reach")).findings
    late = reach[reach["target_layer"] == "protection_targets"]
    targets = ctx.frame("protection_targets").set_index("id")
    late_names = targets.loc[late["target_id"], "name"]
    villages = targets[targets["name"].str.endswith("村居民点")]
    assert late_names.str.endswith("村居民点").sum() >= len(villages) // 2
    # the hamlet at the top of the mountain road, far from any station, is red
    mountain = store.read("road_sections", ids=[summary.mountain_road]).geometry.iloc[0]
    top = shapely.get_point(mountain, -1)
    hamlet = villages.index[np.argmin(shapely.distance(villages.geometry.to_numpy(), top))]
    assert late.set_index("target_id").loc[hamlet, "risk_class"] == "red"
    # most of the city's own places (schools, hospitals, homes, compounds) are reached in time
    response = ctx.shared["station_isochrone:fire_lifelines"]["response_minutes"]
    city = targets[
        ~targets["name"].str.endswith("村居民点") & (targets["category"] != "water_intake")
    ]
    assert (response[("protection_targets/" + city.index).tolist()] <= 5).mean() >= 0.75
    iso = ctx.shared["station_isochrone:fire_lifelines"]["isochrones"]
    assert len(iso) == 5 and iso.geometry.notna().all()


# -- parity ----------------------------------------------------------------------------------


def test_same_findings_on_geopackage_and_postgis(
    gpkg_store: GeoPackageStore, postgis_store: Store, catalogue: Catalogue, tmp_path: Path
) -> None:
    results = []
    for store in (gpkg_store, postgis_store):
        _grid_store(store, [Point(0, 0), Point(3000, 3000)])
        store.replace(
            "fire_lifelines",
            frame(
                [
                    {"id": "L1", "width_m": 3.9, "clear_height_m": 4.5, "obstructed": False},
                    {"id": "L2", "width_m": 4.0, "clear_height_m": None, "obstructed": True},
                ],
                [LineString([(500, 20), (900, 20)]), LineString([(1500, 1020), (1500, 1400)])],
            ),
        )
        store.replace(
            "buildings",
            frame(
                [{"id": "b1", "height_m": 40.0}, {"id": "b2", "height_m": 80.0}],
                [box(600, 40, 640, 80), box(2200, 2200, 2240, 2240)],
            ),
        )
        ctx = RuleContext(store)
        layer = catalogue["fire_lifelines"]
        frames = [
            kind(ctx, layer, rule).findings
            for kind, rule in zip(
                (lane_standard, lane_coverage, station_isochrone), layer.rules, strict=True
            )
        ]
        results.append(pd.concat(frames, ignore_index=True))
    gpkg, postgis = results
    # L1 too narrow; L2 not surveyed for height, and obstructed; b2 has no lane within 50 m (b1
    # is 20 m from L1); t-east and t-kerb 2500 m from s2 at 35 km/h (5.29 min), t-island cut off
    assert len(gpkg) == 7
    pd.testing.assert_frame_equal(
        pd.DataFrame(gpkg.drop(columns="geometry")), pd.DataFrame(postgis.drop(columns="geometry"))
    )
    assert shapely.equals_exact(gpkg.geometry.values, postgis.geometry.values, 1e-9).all()
