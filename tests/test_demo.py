"""The demo region: deterministic, valid against the catalogue, and true to what it was built to show."""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import rasterio.features
import shapely
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString, Point

from geo_service.catalogue import Catalogue
from geo_service.chinacrs import from_crs
from geo_service.demo import DemoSummary, build_demo
from geo_service.derive import tailings_grade
from geo_service.metric import WGS84
from geo_service.risk.network import attach, build_network
from geo_service.store.gpkg import GeoPackageStore
from geo_service.validate import validate_frame

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> tuple[GeoPackageStore, DemoSummary, list[str]]:
    store = GeoPackageStore(catalogue, tmp_path_factory.mktemp("demo"))
    steps: list[str] = []
    summary = build_demo(store, seed=2020, progress=steps.append)
    return store, summary, steps


@pytest.fixture(scope="module")
def store(demo: tuple[GeoPackageStore, DemoSummary, list[str]]) -> GeoPackageStore:
    return demo[0]


@pytest.fixture(scope="module")
def summary(demo: tuple[GeoPackageStore, DemoSummary, list[str]]) -> DemoSummary:
    return demo[1]


@pytest.fixture(scope="module")
def metric(store: GeoPackageStore, summary: DemoSummary):
    """Every vector layer, read back from the store, in the DEM's metric CRS."""
    return {
        layer.id: store.read(layer.id).to_crs(summary.metric_crs)
        for layer in store.catalogue.vector_layers
    }


@pytest.fixture(scope="module")
def dem(summary: DemoSummary):
    with rasterio.open(summary.rasters["dem"]) as src:
        return src.read(1), src.transform, src.crs, src.nodata


# -- what was written ------------------------------------------------------------------------


def test_every_layer_is_written_with_plausible_counts(
    store: GeoPackageStore, summary: DemoSummary
) -> None:
    importable = {layer.id for layer in store.catalogue.vector_layers if layer.importable}
    assert set(summary.counts) == importable
    assert {k: v for k, v in store.counts().items() if k in importable} == summary.counts
    assert all(count > 0 for count in summary.counts.values())
    counts = summary.counts
    assert 4 <= counts["admin_areas"] <= 6
    assert 2_000 <= counts["buildings"] <= 6_000
    assert 35 <= counts["chemical_plants"] <= 45
    assert counts["tailings_ponds"] == 6
    assert 4 <= counts["fire_stations"] <= 5
    assert 3 <= counts["mines"] <= 4
    assert counts["water_bodies"] >= 2
    assert counts["protection_targets"] >= 40
    assert counts["fire_lifelines"] >= 100
    assert counts["rail_corridors"] >= 6
    assert counts["road_sections"] >= 20
    assert set(summary.rasters) == {"dem", "population"}


def test_progress_names_each_step(demo: tuple[GeoPackageStore, DemoSummary, list[str]]) -> None:
    steps = demo[2]
    assert steps[0] == "terrain"
    assert "writing buildings" in steps and steps[-1] == "writing rasters"


def test_every_layer_passes_the_catalogue_checks(store: GeoPackageStore) -> None:
    source = from_crs(WGS84)
    for layer in store.catalogue.vector_layers:
        frame = store.read(layer.id)
        validation = validate_frame(layer, frame, source, file=layer.id)
        assert not validation.errors, [str(p) for p in validation.errors[:5]]
        assert len(validation.valid) == len(frame)
        assert frame["id"].str.fullmatch(r"[a-z]+-\d+").all(), layer.id
        assert frame["source_crs"].eq("EPSG:4546").all()
        assert frame.geometry.is_valid.all() and not frame.geometry.is_empty.any()
        for spec in layer.fields:
            if spec.computed:
                assert frame[spec.name].isna().all(), (
                    f"{layer.id}.{spec.name} is the analysis's to write"
                )


def test_pond_grades_left_empty_are_derived_from_capacity_and_height(
    store: GeoPackageStore,
) -> None:
    ponds = store.read("tailings_ponds")
    params = store.catalogue["tailings_ponds"].derivations["tailings_grade"]
    assert ponds["grade"].notna().all()
    assert ponds["grade"].tolist() == tailings_grade(ponds, params).tolist()
    assert sorted(set(ponds["grade"])) == [2, 3, 4, 5]
    assert (ponds.geometry.geom_type == "Point").all()


def test_credit_codes_carry_valid_check_characters(store: GeoPackageStore) -> None:
    weights = [pow(3, i, 31) for i in range(17)]
    plants = store.read("chemical_plants")
    assert plants["credit_code"].is_unique and plants["name"].is_unique
    for code, admin in zip(plants["credit_code"], plants["admin_code"], strict=True):
        total = sum(USCC_CHARS.index(c) * w for c, w in zip(code[:17], weights, strict=True))
        assert USCC_CHARS[(31 - total % 31) % 31] == code[17]
        assert code[2:8] == admin


def test_districts_cover_the_region_without_overlap(metric, dem) -> None:
    districts = metric["admin_areas"]
    z, transform, _, _ = dem
    region = shapely.box(*rasterio.transform.array_bounds(z.shape[0], z.shape[1], transform))
    union = shapely.union_all(districts.geometry.values)
    assert union.area == pytest.approx(region.area, rel=0.01)
    assert districts.area.sum() == pytest.approx(union.area, rel=0.001)
    assert districts["admin_code"].is_unique
    assert districts["urban"].sum() >= 1 and (~districts["urban"]).sum() >= 1


# -- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_features_and_rasters(
    store: GeoPackageStore, summary: DemoSummary, gpkg_store: GeoPackageStore
) -> None:
    again = build_demo(gpkg_store, seed=2020)
    assert again.counts == summary.counts
    assert again.headtop_expected == summary.headtop_expected
    for layer in store.catalogue.vector_layers:
        first, second = store.read(layer.id), gpkg_store.read(layer.id)
        pd.testing.assert_frame_equal(
            first.drop(columns="geometry"), second.drop(columns="geometry")
        )
        assert list(shapely.to_wkb(first.geometry.values)) == list(
            shapely.to_wkb(second.geometry.values)
        )
    for layer_id, path in summary.rasters.items():
        assert _sha(path) == _sha(again.rasters[layer_id]), layer_id


# -- rasters ---------------------------------------------------------------------------------


def test_dem_is_a_metric_valley_between_hills(summary: DemoSummary, dem) -> None:
    z, transform, crs, nodata = dem
    assert crs.to_epsg() == 4546 and summary.metric_crs == "EPSG:4546"
    assert transform.a == 30 and transform.e == -30
    assert z.dtype == np.float32 and nodata is not None and not (z == nodata).any()
    assert 115 < z.min() < 160
    assert 700 < z.max() < 1_300
    middle = z[:, z.shape[1] // 2]
    assert middle.argmin() not in (0, len(middle) - 1)  # the valley is inside, hills on both sides
    assert middle[0] > 500 and middle[-1] > 500


def test_population_is_in_degrees_with_a_dense_core(summary: DemoSummary) -> None:
    with rasterio.open(summary.rasters["population"]) as src:
        persons, crs, res, nodata = src.read(1), src.crs, src.res, src.nodata
    assert crs.to_epsg() == 4326
    assert res == pytest.approx((0.001, 0.001))
    assert nodata is not None and not (persons == nodata).any()
    assert (persons >= 0).all()
    assert 200_000 < persons.sum() < 900_000
    assert (persons == 0).mean() > 0.3  # the mountains are empty


def test_dense_core_plants_sit_where_more_than_10000_people_live_per_km2(
    store: GeoPackageStore, summary: DemoSummary
) -> None:
    plants = store.read("chemical_plants").set_index("id")
    core = plants.loc[summary.dense_core_plants]
    assert 8 <= len(core) <= 10
    assert set(core["relocation_status"]) <= {"pending", "in_progress"}
    assert set(core["size"]) <= {"small", "medium"}
    assert (core["relocation_deadline"] == pd.Timestamp("2022-12-31")).all()
    assert core["processes"].map(lambda p: bool(set(p or []) & {"nitration", "chlorination",
                                                                  "fluorination", "diazotization",
                                                                  "peroxidation"})).any()  # fmt: skip
    points = core.geometry.to_crs(summary.metric_crs).centroid.to_crs(4326)
    with rasterio.open(summary.rasters["population"]) as src:
        values = np.array([v[0] for v in src.sample(zip(points.x, points.y, strict=True))])
    cell_km2 = (0.001 * 111.32 * np.cos(np.radians(points.y))) * (0.001 * 110.574)
    assert (values / cell_km2 > 10_000).all()
    park = plants[plants["in_chemical_park"].fillna(False).astype(bool)]
    assert len(park) >= 10
    park_polygon = store.read("industrial_parks").query("park_type == 'chemical'").geometry.iloc[0]
    assert park.geometry.within(park_polygon).all()


# -- head-top ponds --------------------------------------------------------------------------


def test_headtop_truth_follows_the_d8_path(metric, summary: DemoSummary, dem) -> None:
    ponds = metric["tailings_ponds"].set_index("id")
    houses = metric["buildings"].geometry
    assert summary.headtop_expected == {
        "pond-01": False, "pond-02": True, "pond-03": True,
        "pond-04": False, "pond-05": True, "pond-06": False,
    }  # fmt: skip
    for pond_id, expected in summary.headtop_expected.items():
        for per_metre in (True, False):  # either way of weighing the diagonal neighbours
            path = _d8_path(dem, ponds.geometry[pond_id], 1_000.0, per_metre=per_metre)
            assert path.length >= 900, f"{pond_id}: the flow path stops early"
            reached = houses.distance(path) <= 50
            assert bool(reached.any()) is expected, (pond_id, per_metre)


def test_ponds_that_are_not_headtop_have_nothing_in_their_downstream_corridor(
    metric,
    summary: DemoSummary,
    dem,
) -> None:
    ponds = metric["tailings_ponds"].set_index("id")
    for pond_id, expected in summary.headtop_expected.items():
        corridor = _d8_path(dem, ponds.geometry[pond_id], 1_000.0).buffer(150)
        found = {
            layer: int(metric[layer].intersects(corridor).sum())
            for layer in ("buildings", "protection_targets", "road_sections", "rail_corridors")
        }
        people = _people_in(summary, corridor)
        if expected:
            assert found["buildings"] >= 5 and found["protection_targets"] >= 1 and people >= 1, (
                pond_id
            )
        else:
            assert not any(found.values()) and people < 1, (pond_id, found, people)


def test_the_remote_pond_has_nothing_within_2_km(metric, summary: DemoSummary) -> None:
    ponds = metric["tailings_ponds"].set_index("id")
    remote = [p for p, e in summary.headtop_expected.items() if not e]
    lonely = [p for p in remote if all(
        not metric[layer].intersects(ponds.geometry[p].buffer(2_000)).any()
        for layer in ("buildings", "protection_targets", "road_sections", "rail_corridors",
                      "chemical_plants", "mines", "fire_stations")
    )]  # fmt: skip
    assert len(lonely) == 1
    assert _people_in(summary, ponds.geometry[lonely[0]].buffer(2_000)) == 0


def test_upstream_villages_lie_above_their_ponds(metric, summary: DemoSummary, dem) -> None:
    z, transform, _, _ = dem
    ponds = metric["tailings_ponds"].set_index("id")
    houses = metric["buildings"]
    upstream = [p for p, e in summary.headtop_expected.items() if not e]
    with_village = 0
    for pond_id in upstream:
        toe = ponds.geometry[pond_id]
        near = houses[houses.distance(toe) < 2_000]
        if len(near):
            with_village += 1
            toe_z = z[rasterio.transform.rowcol(transform, toe.x, toe.y)]
            centres = near.geometry.centroid
            rows, cols = rasterio.transform.rowcol(transform, centres.x, centres.y)
            assert (z[rows, cols] > toe_z + 30).all(), pond_id
    assert with_village == 2


# -- railways, roads, fire lanes -------------------------------------------------------------


def test_rail_protection_zone_holds_only_the_designed_encroachments(
    metric,
    summary: DemoSummary,
    store: GeoPackageStore,
) -> None:
    rails = metric["rail_corridors"]
    widths = store.catalogue["rail_corridors"].rule("rail_protection_zone").params["widths_m"]
    zone_width = [
        row.gazetted_zone_width_m
        if pd.notna(row.gazetted_zone_width_m)
        else widths[row.rail_type][row.area_class]
        for row in rails.itertuples()
    ]
    zones = shapely.union_all(rails.geometry.buffer(zone_width).values)
    buildings = metric["buildings"]
    inside = set(buildings.loc[buildings.intersects(zones), "id"])
    assert inside == set(summary.rail_encroachments)
    for layer in ("protection_targets", "chemical_plants"):
        assert not metric[layer].intersects(zones).any(), layer
    assert 4 <= len(inside) <= 10
    near = (
        buildings.set_index("id")
        .loc[summary.rail_encroachments]
        .distance(shapely.union_all(rails.geometry.values))
    )
    assert (near <= 15).all()


def test_railway_structures_and_neighbours(metric, summary: DemoSummary) -> None:
    rails = metric["rail_corridors"]
    river = metric["water_bodies"].query("water_type == 'river'").geometry.iloc[0]
    conventional = rails[rails["rail_type"] == "conventional"]
    high_speed = rails[rails["rail_type"] == "high_speed"]
    on_river = conventional[conventional.intersects(river)]
    assert list(on_river["structure"]) == ["bridge"]
    assert set(conventional["area_class"]) == {"urban", "suburban", "village", "other"}
    assert {"track", "bridge", "tunnel"} <= set(high_speed["structure"])
    line = shapely.union_all(rails.geometry.values)
    mines = metric["mines"].set_index("id")
    assert mines.geometry[summary.quarry].distance(line) < 1_000
    assert (
        mines.loc[summary.quarry, "mine_type"] == "quarry" and mines.loc[summary.quarry, "blasting"]
    )
    plants = metric["chemical_plants"].set_index("id")
    within_200 = set(plants.index[plants.distance(line) <= 200])
    assert within_200 == set(summary.plants_near_rail) and 1 <= len(within_200) <= 2
    roads = metric["road_sections"].set_index("id")
    assert roads.geometry[summary.road_over_rail].crosses(line)
    assert roads.geometry[summary.level_crossing_road].crosses(line)


def test_mountain_road_has_a_long_steep_downgrade_and_hairpins(
    metric, summary: DemoSummary, dem
) -> None:
    roads = metric["road_sections"].set_index("id")
    assert roads["design_speed_kmh"].notna().all()
    road = roads.geometry[summary.mountain_road]
    assert set(roads.loc[summary.mountain_road, "hazard_types"]) >= {"long_steep_downgrade"}
    distances = np.arange(0, road.length, 50.0)
    z = _sample(dem, shapely.line_interpolate_point(road, distances))
    window = 60  # 3 km in 50 m steps
    grades = np.abs(z[window:] - z[:-window]) / (window * 50.0)
    assert grades.max() >= 0.05
    coords = np.asarray(shapely.line_interpolate_point(road, np.arange(0, road.length, 20.0)))
    xy = np.array([[p.x, p.y] for p in coords])
    radii = [_circumradius(*xy[i - 1 : i + 2]) for i in range(1, len(xy) - 1)]
    assert min(radii) < 60


def test_river_road_runs_10_to_20_m_from_the_water(metric, summary: DemoSummary) -> None:
    river = metric["water_bodies"].query("water_type == 'river'").geometry.iloc[0]
    road = metric["road_sections"].set_index("id").geometry[summary.river_road]
    gaps = shapely.distance(
        shapely.line_interpolate_point(road, np.arange(0, road.length, 100.0)), river
    )
    assert (gaps >= 10).all() and (gaps <= 20).all()


def test_roads_make_one_network_that_every_station_and_target_is_on(
    store: GeoPackageStore, summary: DemoSummary, metric
) -> None:
    # the network as the fire-station reach rule builds it: ends within the junction tolerance
    # join, crossings meet unless one road is a bridge or tunnel
    params = store.catalogue["fire_lifelines"].rule("fire_station_reach").params
    roads = store.read("road_sections")
    network = build_network(
        roads.geometry.to_numpy(),
        np.ones(len(roads)),
        pyproj.CRS(summary.metric_crs),
        grid_m=float(params["grid_m"]),
        junction_tolerance_m=float(params["junction_tolerance_m"]),
        node_crossings=bool(params["node_crossings"]),
        grade_separated=roads["structure"].isin(params["grade_separated_structures"]).to_numpy(),
    )
    graph = csr_array(
        (np.ones(network.n_edges), (network.u, network.v)), shape=(network.n_nodes,) * 2
    )
    _, piece = connected_components(graph, directed=False)
    assert set(network.line) == set(range(len(roads)))
    assert len(set(piece[network.u])) == 1, "the roads are not one network"

    stations = store.read("fire_stations")
    station_gap = attach(network, stations.geometry.to_numpy()).access_m
    assert (station_gap <= 150).all(), dict(zip(stations["name"], station_gap.round(), strict=True))
    # every target is within 150 m of a road, but an intake (it stands in the river) and the
    # villages behind the ponds that are not head-top, which have no road on purpose
    targets = store.read("protection_targets")
    target_gap = attach(network, targets.geometry.to_numpy()).access_m
    ponds = metric["tailings_ponds"].set_index("id").geometry
    behind = shapely.union_all(
        [ponds[p].buffer(2_000) for p, headtop in summary.headtop_expected.items() if not headtop]
    )
    roadless = metric["protection_targets"].intersects(behind).to_numpy()
    intake = (targets["category"] == "water_intake").to_numpy()
    assert roadless.sum() == 2 and (target_gap[roadless] > 1_000).all()
    far = ~roadless & ~intake & (target_gap > 150)
    assert not far.any(), dict(zip(targets["name"][far], target_gap[far].round(), strict=True))
    # and no road runs through a building
    buildings = shapely.STRtree(metric["buildings"].geometry.to_numpy())
    _, hit = buildings.query(metric["road_sections"].geometry.to_numpy(), predicate="intersects")
    assert hit.size == 0


def test_fire_lanes_mostly_meet_the_standard_and_some_high_rises_have_none(
    metric,
    summary: DemoSummary,
) -> None:
    lanes = metric["fire_lifelines"]
    good = (lanes["width_m"] >= 4) & (lanes["clear_height_m"] >= 4) & ~lanes["obstructed"]
    assert 0.5 < good.mean() < 0.95
    assert (
        (lanes["width_m"] < 4).any()
        and (lanes["clear_height_m"] < 4).any()
        and lanes["obstructed"].any()
    )
    buildings = metric["buildings"].set_index("id")
    towers = buildings[buildings["height_m"] >= 27]
    union = shapely.union_all(lanes.geometry.values)
    bare = set(towers.index[towers.distance(union) > 50])
    assert bare == set(summary.high_rises_without_lane)
    assert 1 <= len(bare) <= 0.05 * len(towers)


def test_water_intakes_and_vulnerable_targets_near_core_plants(
    metric, summary: DemoSummary
) -> None:
    targets = metric["protection_targets"]
    river = metric["water_bodies"].query("water_type == 'river'").geometry.iloc[0]
    intakes = targets[targets["category"] == "water_intake"]
    assert len(intakes) == 2 and intakes.within(river).all()
    assert {"school", "kindergarten", "hospital", "elderly_home", "residential", "crowded_place",
            "government"} <= set(targets["category"])  # fmt: skip
    plants = metric["chemical_plants"].set_index("id").loc[summary.dense_core_plants]
    vulnerable = targets[
        targets["category"].isin(["school", "kindergarten", "hospital", "elderly_home"])
    ]
    gaps = vulnerable.geometry.apply(lambda t: plants.distance(t).min())
    assert ((gaps >= 300) & (gaps <= 1_000)).sum() >= 3


# -- helpers ---------------------------------------------------------------------------------


def _d8_path(dem, start: Point, max_length: float, per_metre: bool = True) -> LineString:
    """Steepest descent on the DEM from ``start`` (an implementation of its own, not the demo's).

    ``per_metre``: compare drops per metre (diagonals √2 cells away), else raw drops.
    """
    z, transform, _, _ = dem
    row, col = rasterio.transform.rowcol(transform, start.x, start.y)
    cells, run = [(row, col)], 0.0
    while run < max_length:
        best, step = 0.0, None
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = row + dr, col + dc
                if (dr or dc) and 0 <= r < z.shape[0] and 0 <= c < z.shape[1]:
                    dist = 30.0 * np.hypot(dr, dc)
                    drop = (z[row, col] - z[r, c]) / (dist if per_metre else 1.0)
                    if drop > best:
                        best, step = drop, (r, c, dist)
        if step is None:
            break
        row, col, dist = step
        run += dist
        cells.append((row, col))
    xs, ys = rasterio.transform.xy(transform, [c[0] for c in cells], [c[1] for c in cells])
    return LineString(np.column_stack([xs, ys]))


def _people_in(summary: DemoSummary, area_metric) -> float:
    area = gpd.GeoSeries([area_metric], crs=summary.metric_crs).to_crs(4326).iloc[0]
    with rasterio.open(summary.rasters["population"]) as src:
        persons = src.read(1)
        inside = rasterio.features.geometry_mask(
            [area], persons.shape, src.transform, invert=True, all_touched=True
        )
    return float(persons[inside].sum())


def _sample(dem, points) -> np.ndarray:
    z, transform, _, _ = dem
    rows, cols = rasterio.transform.rowcol(transform, shapely.get_x(points), shapely.get_y(points))
    return z[np.asarray(rows), np.asarray(cols)].astype(float)


def _circumradius(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    ab, bc, ca = np.linalg.norm(a - b), np.linalg.norm(b - c), np.linalg.norm(c - a)
    area2 = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    return float("inf") if area2 == 0 else float(ab * bc * ca / (2 * area2))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
