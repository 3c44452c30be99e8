"""Chemical plants: protective distance, population rings, dense area, relocation priority.

Scenarios are drawn in metres in the CGCS2000 GK zone of 111°E (EPSG:4546) near its central
meridian, where the map scale is 1 to better than 1e-7: the rule measures each plant in that same
zone, so a target drawn 500 m away is 500 m away to the micrometre and the answers can be worked
out by hand. The two-zone test is drawn on the spheroid instead (pyproj.Geod).
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
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from geo_service.catalogue import Catalogue, Rule
from geo_service.demo import build_demo
from geo_service.metric import GEOD
from geo_service.risk.context import RuleContext
from geo_service.risk.model import FINDING_COLUMNS, RuleResult
from geo_service.risk.rules.chemical import (
    dense_area,
    population_rings,
    protective_distance,
    relocation_breakdown,
    relocation_priority,
)
from geo_service.schema import empty_frame
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore

X0, Y0 = 500_000.0, 3_380_000.0  # on the central meridian of EPSG:4546, about 30.5°N
_TO_LONLAT = pyproj.Transformer.from_crs(4546, 4326, always_xy=True).transform
LAYER = "chemical_plants"


def at(geom: Any) -> Any:
    """A geometry drawn in local metres (origin on the central meridian) → EPSG:4326."""
    return shapely.transform(
        shapely.affinity.translate(geom, X0, Y0), _TO_LONLAT, interleaved=False
    )


def plants_frame(rows: list[dict[str, Any]], geoms: list[Any]) -> gpd.GeoDataFrame:
    rows = [{"name": f"工厂 {r['id']}", **r} for r in rows]
    return gpd.GeoDataFrame(rows, geometry=[at(g) for g in geoms], crs=4326)


def targets_frame(rows: list[tuple[str, str, Any]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        [{"id": i, "name": f"目标 {i}", "category": c} for i, c, _ in rows],
        geometry=[at(g) for _, _, g in rows],
        crs=4326,
    )


def rule_with(catalogue: Catalogue, rule_id: str, **params: Any) -> Rule:
    rule = catalogue[LAYER].rule(rule_id)
    return rule.model_copy(update={"params": {**rule.params, **params}})


def run(store: Store, kind: Any, rule: Rule, ctx: RuleContext | None = None) -> RuleResult:
    result: RuleResult = kind(ctx or RuleContext(store), store.catalogue[LAYER], rule)
    return result


def evidence(findings: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    return [json.loads(e) for e in findings["evidence"]]


def uniform_raster(path: Path, per_km2: float, *, half_m: float = 4_500, cell: float = 100) -> Path:
    """Persons per cell for ``per_km2`` everywhere, in EPSG:4546 around the scenario origin."""
    n = int(2 * half_m / cell)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=1,
        dtype="float64",
        crs="EPSG:4546",
        transform=from_origin(X0 - half_m, Y0 + half_m, cell, cell),
        nodata=-1,
    ) as dst:
        dst.write(np.full((n, n), per_km2 * (cell / 1000) ** 2), 1)
    return path


# -- protective_distance ------------------------------------------------------------------------


def test_protective_distance_at_and_just_over_each_threshold(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # catalogue distances (m): ordinary school 500, residential 300, other 100; severe school
    # 1000, residential 600, kindergarten 1000; red within half the distance
    gpkg_store.replace(
        LAYER,
        plants_frame(
            [
                {"id": "P1", "processes": ["hydrogenation"], "major_hazard_grade": 3},  # ordinary
                {"id": "P2", "processes": ["nitration", "oxidation"]},  # severe: nitration
                {
                    "id": "P3",
                    "processes": ["oxidation"],
                    "major_hazard_grade": 2,
                },  # severe: grade 2
                {"id": "P4", "processes": ["nitration"], "relocation_status": "closed"},  # skipped
            ],
            [Point(0, 0), Point(5_000, 0), Point(0, 5_000), Point(5_000, 5_000)],
        ),
    )
    gpkg_store.replace(
        "protection_targets",
        targets_frame(
            [
                ("T1", "school", Point(500, 0)),  # exactly 500: inside (inclusive), orange
                ("T2", "school", Point(500.5, 0)),  # 0.5 m over: outside
                ("T3", "school", Point(250, 0)),  # exactly half of 500: red (inclusive)
                ("T4", "residential", Point(0, 300)),  # exactly 300: orange
                ("T5", "residential", Point(0, -301)),  # 1 m over: outside
                ("T6", "other", Point(100, 0)),  # exactly 100: orange
                ("T7", "other", Point(30, 40)),  # 50 m (3-4-5) = half of 100: red
                ("T8", "school", Point(5_999, 0)),  # 999 m from the severe P2: orange
                ("T9", "residential", Point(5_000, 600)),  # exactly 600 from P2: orange
                ("T10", "residential", Point(5_000, -601)),  # over: outside
                ("T11", "kindergarten", Point(0, 6_000)),  # 1000 from P3 (grade 2): orange
                ("T12", "school", Point(5_000, 5_100)),  # 100 m from the closed P4: nothing
            ]
        ),
    )
    findings = run(
        gpkg_store, protective_distance, catalogue[LAYER].rule("plant_protective_distance")
    ).findings

    got = list(
        zip(findings["hazard_id"], findings["target_id"], findings["risk_class"], strict=True)
    )
    assert got == [
        ("P1", "T1", "orange"),
        ("P1", "T3", "red"),
        ("P1", "T4", "orange"),
        ("P1", "T6", "orange"),
        ("P1", "T7", "red"),
        ("P2", "T8", "orange"),
        ("P2", "T9", "orange"),
        ("P3", "T11", "orange"),
    ]
    np.testing.assert_allclose(
        findings["value"], [500, 250, 300, 100, 50, 999, 600, 1000], atol=1e-4
    )
    assert findings["threshold"].tolist() == [500, 500, 300, 100, 100, 1000, 600, 1000]
    assert set(findings["unit"]) == {"m"}
    assert list(findings.columns[: len(FINDING_COLUMNS)]) == list(FINDING_COLUMNS)
    ev = evidence(findings)
    assert [e["plant_hazard_class"] for e in ev] == ["ordinary"] * 5 + ["severe"] * 3
    assert ev[5]["severe_because"] == ["nitration"]
    assert ev[7]["severe_because"] == ["major hazard source grade 2"]
    assert ev[0]["metric_crs"] == "EPSG:4546" and "QRA" in ev[0]["method"]
    # the line runs from the plant to the target, as long as the distance
    lines = findings.geometry.to_crs(4546)
    np.testing.assert_allclose(lines.length, findings["value"], atol=1e-3)
    assert lines.iloc[0].coords[0] == pytest.approx((X0, Y0), abs=1e-3)
    assert lines.iloc[0].coords[-1] == pytest.approx((X0 + 500, Y0), abs=1e-3)


def test_protective_distance_from_the_site_boundary(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    gpkg_store.replace(
        LAYER,
        plants_frame(
            [{"id": "S", "processes": ["oxidation"]}, {"id": "Q", "processes": ["oxidation"]}],
            [box(0, 0, 200, 100), Point(5_000, 0)],  # an ordinary site 200 × 100 m; a point
        ),
    )
    gpkg_store.replace(
        "protection_targets",
        targets_frame(
            [
                ("A", "school", Point(700, 50)),  # 500 m east of the site's east edge: inside
                ("B", "school", Point(-500.5, 50)),  # 500.5 m west of its west edge: outside
                ("C", "residential", box(0, 400, 100, 500)),  # a block 300 m north: inside
                ("D", "residential", Point(50, 50)),  # inside the site: 0 m, red
                ("E", "hospital", box(5_400, -50, 5_600, 50)),  # 400 m from the point plant Q
            ]
        ),
    )
    findings = run(
        gpkg_store, protective_distance, catalogue[LAYER].rule("plant_protective_distance")
    ).findings

    assert list(zip(findings["hazard_id"], findings["target_id"], strict=True)) == [
        ("Q", "E"),
        ("S", "A"),
        ("S", "C"),
        ("S", "D"),
    ]
    np.testing.assert_allclose(findings["value"], [400, 500, 300, 0], atol=1e-4)
    assert findings["risk_class"].tolist() == ["orange", "orange", "orange", "red"]
    assert [e["measured_from"] for e in evidence(findings)] == [
        "plant point",
        "site boundary",
        "site boundary",
        "site boundary",
    ]
    # the line to A starts on the site's east edge
    start = findings.geometry.to_crs(4546).iloc[1].coords[0]
    assert start == pytest.approx((X0 + 200, Y0 + 50), abs=1e-3)


def test_protective_distance_across_two_zones(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # Plants both sides of 112.5°E (GK zones 111°E | 114°E), their targets across the border,
    # 3 km apart, and one plant far west at 108.2°E. Each target is drawn on the spheroid 499.7 m (inside
    # the 500 m of an ordinary plant to a school) or 500.3 m (outside) away. Measured in each
    # plant's own zone the scale error is ≤ 2.6e-4 (≤ 0.13 m at 500 m); measured in the one
    # zone of the data's centre (111°E) the plant at 108.2°E would read 499.7 m as 500.14 m.
    sites = {"W": (112.4985, 30.5), "E": (112.5015, 30.53), "F": (108.2, 30.5)}
    plants = gpd.GeoDataFrame(
        [{"id": k, "name": k, "processes": ["oxidation"]} for k in sites],
        geometry=[Point(*v) for v in sites.values()],
        crs=4326,
    )
    rows, geoms = [], []
    for key, (lon, lat) in sites.items():
        for tag, azimuth, dist in (("in", 90.0, 499.7), ("out", 270.0, 500.3)):
            if key == "E":
                azimuth = 180.0 + azimuth  # E's inside target lies west, across the border
            tlon, tlat, _ = GEOD.fwd(lon, lat, azimuth, dist)
            rows.append({"id": f"{key}-{tag}", "name": tag, "category": "school"})
            geoms.append(Point(tlon, tlat))
    gpkg_store.replace(LAYER, plants)
    gpkg_store.replace("protection_targets", gpd.GeoDataFrame(rows, geometry=geoms, crs=4326))

    findings = run(
        gpkg_store, protective_distance, catalogue[LAYER].rule("plant_protective_distance")
    ).findings

    assert list(zip(findings["hazard_id"], findings["target_id"], strict=True)) == [
        ("E", "E-in"),
        ("F", "F-in"),
        ("W", "W-in"),
    ]
    np.testing.assert_allclose(findings["value"], 499.7, atol=0.15)
    assert [e["metric_crs"] for e in evidence(findings)] == ["EPSG:4547", "EPSG:4545", "EPSG:4546"]


def test_protective_distance_with_an_empty_layer(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    rule = catalogue[LAYER].rule("plant_protective_distance")
    gpkg_store.replace(LAYER, plants_frame([{"id": "P1"}], [Point(0, 0)]))
    ctx = RuleContext(gpkg_store)
    assert run(gpkg_store, protective_distance, rule, ctx).findings.empty  # no targets
    assert ctx.shared[f"protective_distance:{LAYER}"]["pairs"].empty

    gpkg_store.replace(LAYER, empty_frame(catalogue[LAYER]))
    gpkg_store.replace("protection_targets", targets_frame([("T1", "school", Point(10, 0))]))
    assert run(gpkg_store, protective_distance, rule).findings.empty  # no plants


# -- population_rings ---------------------------------------------------------------------------


def test_population_rings_match_the_analytic_value(
    gpkg_store: GeoPackageStore, catalogue: Catalogue, tmp_path: Path
) -> None:
    # 10,000 persons/km² everywhere: a point's rings hold 10,000·π·r² (7,854 / 31,416 /
    # 282,743); a 200 × 100 m site's 500 m ring (from its boundary) holds
    # 10,000 · (0.02 + 0.6·0.5 + π·0.25) = 11,054
    gpkg_store.put_raster("population", uniform_raster(tmp_path / "pop.tif", 10_000))
    gpkg_store.replace(
        LAYER, plants_frame([{"id": "A"}, {"id": "B"}], [Point(0, 0), box(1_000, 0, 1_200, 100)])
    )
    ctx = RuleContext(gpkg_store)
    result = run(gpkg_store, population_rings, catalogue[LAYER].rule("plant_population_rings"), ctx)

    assert result.findings.empty  # values only
    values = result.feature_values
    assert sorted(values) == ["population_1km", "population_3km", "population_500m"]
    assert values["population_500m"]["A"] == pytest.approx(7_854, rel=0.01)
    assert values["population_1km"]["A"] == pytest.approx(31_416, rel=0.01)
    assert values["population_3km"]["A"] == pytest.approx(282_743, rel=0.01)
    assert values["population_500m"]["B"] == pytest.approx(11_054, rel=0.01)
    assert str(values["population_500m"].dtype) == "Int64"
    shared = ctx.shared[f"population_rings:{LAYER}"]
    assert shared.loc["A", "population_1km"] == values["population_1km"]["A"]


def test_population_rings_without_a_raster_stay_empty(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    gpkg_store.replace(LAYER, plants_frame([{"id": "A"}], [Point(0, 0)]))
    ctx = RuleContext(gpkg_store)
    result = run(gpkg_store, population_rings, catalogue[LAYER].rule("plant_population_rings"), ctx)
    assert result.findings.empty and result.feature_values == {}
    assert ctx.shared[f"population_rings:{LAYER}"]["population_1km"].isna().all()


# -- dense_area ---------------------------------------------------------------------------------


def _dense_scene(store: Store, tmp_path: Path) -> None:
    # 6,000 persons/km² west of x = 0, 1,000 east of it (threshold 5,000 over 1 km)
    path = tmp_path / "pop.tif"
    n, cell = 180, 100.0
    data = np.full((n, n), 1_000 * (cell / 1000) ** 2)
    data[:, : n // 2] = 6_000 * (cell / 1000) ** 2
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=1,
        dtype="float64",
        crs="EPSG:4546",
        transform=from_origin(X0 - 9_000, Y0 + 9_000, cell, cell),
        nodata=-1,
    ) as dst:
        dst.write(data, 1)
    store.put_raster("population", path)
    store.replace(
        LAYER,
        plants_frame(
            [
                {"id": "A", "size": "small"},  # west, small: finding
                {"id": "B", "size": "medium", "relocation_status": "converted_in_place"},
                {"id": "C", "size": "large", "major_hazard_grade": 2},  # large, major hazard
                {"id": "D", "size": "large"},  # large, no major hazard source: not the plan's
                {"id": "E", "size": "small"},  # east: 1,000/km², not dense
            ],
            [
                Point(-3_000, 0),
                Point(-3_000, 2_500),
                Point(-3_000, -2_500),
                Point(-5_500, 0),
                Point(3_000, 0),
            ],
        ),
    )


def test_dense_area_by_density_over_a_radius(
    gpkg_store: GeoPackageStore, catalogue: Catalogue, tmp_path: Path
) -> None:
    _dense_scene(gpkg_store, tmp_path)
    ctx = RuleContext(gpkg_store)
    findings = run(
        gpkg_store, dense_area, catalogue[LAYER].rule("plant_in_dense_area"), ctx
    ).findings

    assert findings["hazard_id"].tolist() == ["A", "C"]
    np.testing.assert_allclose(findings["value"], 6_000, rtol=0.01)
    assert findings["threshold"].tolist() == [5_000, 5_000]
    assert set(findings["risk_class"]) == {"red"}
    ev = evidence(findings)
    assert ev[0]["applies_because"] == "size small"
    assert ev[1]["applies_because"] == "large with a grade-2 major hazard source"
    assert "QRA" in ev[0]["screening"]
    assert ev[0]["area_km2"] == pytest.approx(np.pi, rel=1e-3)
    # the measuring circle is the finding's geometry
    assert findings.geometry.to_crs(4546).area.iloc[0] == pytest.approx(np.pi * 1e6, rel=1e-3)
    flags = ctx.shared[f"dense_area:{LAYER}"]
    assert flags.to_dict() == {"A": True, "B": True, "C": True, "D": True, "E": False}


def test_dense_area_inside_an_urban_polygon(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    gpkg_store.replace(
        LAYER,
        plants_frame(
            [{"id": "A", "size": "small"}, {"id": "E", "size": "small"}],
            [Point(-3_000, 0), Point(3_000, 0)],
        ),
    )
    gpkg_store.replace(
        "admin_areas",
        gpd.GeoDataFrame(
            [
                {"id": "city", "admin_code": "429001", "name": "城区", "urban": True},
                {"id": "rural", "admin_code": "429003", "name": "乡村", "urban": False},
            ],
            geometry=[at(box(-6_000, -3_000, 0, 3_000)), at(box(0, -3_000, 6_000, 3_000))],
            crs=4326,
        ),
    )
    rule = rule_with(catalogue, "plant_in_dense_area", method="polygon")
    findings = run(gpkg_store, dense_area, rule).findings  # no population raster: not needed

    assert findings["hazard_id"].tolist() == ["A"]
    assert findings["target_layer"].tolist() == ["admin_areas"]
    assert findings["target_id"].tolist() == ["city"]
    assert np.isnan(findings["threshold"].iloc[0])


def test_dense_area_by_density_needs_the_population_raster(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    gpkg_store.replace(LAYER, plants_frame([{"id": "A", "size": "small"}], [Point(0, 0)]))
    with pytest.raises(ValueError, match="population"):
        run(gpkg_store, dense_area, catalogue[LAYER].rule("plant_in_dense_area"))
    gpkg_store.replace(LAYER, empty_frame(catalogue[LAYER]))
    assert run(gpkg_store, dense_area, catalogue[LAYER].rule("plant_in_dense_area")).findings.empty


# -- relocation_priority ------------------------------------------------------------------------


def test_relocation_priority_scores_by_hand(
    gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    # weights 0.35 severity, 0.35 exposure, 0.2 vulnerability, 0.1 dense area; exposure
    # saturates at 50,000 people within 1 km, vulnerability at 4 (school 1, residential 0.5).
    # R1: nitration + grade 1 → severity (1 + 1)/2 = 1; 25,000 people → 0.5; two schools and a
    #     residential block inside → 2.5/4 = 0.625; dense → 1:
    #     100·(0.35 + 0.175 + 0.125 + 0.1) = 75.0 → red (class breaks 75 / 50 / 25, inclusive)
    # R2: nothing severe, no grade → 0; 60,000 people → capped at 1; no targets; not dense: 35.0
    # R5: grade 3 → (0 + 0.5)/2 = 0.25; 10,000 → 0.2; a hospital → 0.25; dense:
    #     100·(0.0875 + 0.07 + 0.05 + 0.1) = 30.75
    # R3 (relocated) and R4 (already in a chemical park) are scored but not ranked.
    # R6 is R2's twin: the tie goes by id, R2 first.
    ids = ["R1", "R2", "R3", "R4", "R5", "R6"]
    gpkg_store.replace(
        LAYER,
        plants_frame(
            [
                {"id": "R1", "processes": ["nitration"], "major_hazard_grade": 1},
                {"id": "R2", "processes": ["oxidation"]},
                {"id": "R3", "processes": ["nitration"], "relocation_status": "relocated"},
                {"id": "R4", "processes": ["nitration"], "in_chemical_park": True},
                {"id": "R5", "processes": ["oxidation"], "major_hazard_grade": 3},
                {"id": "R6", "processes": ["oxidation"]},
            ],
            [Point(1_000 * i, 0) for i in range(6)],
        ),
    )
    ctx = RuleContext(gpkg_store)
    people = [25_000, 60_000, 70_000, 70_000, 10_000, 60_000]
    ctx.shared[f"population_rings:{LAYER}"] = pd.DataFrame(
        {"population_1km": pd.array(people, dtype="Int64")}, index=pd.Index(ids, name="id")
    )
    ctx.shared[f"dense_area:{LAYER}"] = pd.Series(
        [True, False, True, True, True, False], index=pd.Index(ids, name="id")
    )
    ctx.shared[f"protective_distance:{LAYER}"] = {
        "plants": pd.DataFrame(
            {"severe_process": [True, False, True, True, False, False]},
            index=pd.Index(ids, name="id"),
        ),
        "pairs": pd.DataFrame(
            {
                "hazard_id": ["R1", "R1", "R1", "R5"],
                "category": ["school", "school", "residential", "hospital"],
            }
        ),
    }
    result = run(
        gpkg_store, relocation_priority, catalogue[LAYER].rule("plant_relocation_priority"), ctx
    )

    # R2 and R6 are ranked but nothing flags them (no target inside, not dense): no finding
    findings = result.findings
    assert findings["hazard_id"].tolist() == ["R1", "R5"]
    np.testing.assert_allclose(findings["value"], [75.0, 30.75])
    assert findings["risk_class"].tolist() == ["red", "yellow"]
    ranks = result.feature_values["relocation_rank"]
    assert ranks.dropna().to_dict() == {"R1": 1, "R2": 2, "R6": 3, "R5": 4}
    assert ranks[["R3", "R4"]].isna().all()
    first = evidence(findings)[0]
    assert first["parts"] == {
        "severity": 1.0,
        "exposure": 0.5,
        "vulnerability": 0.625,
        "dense_area": 1.0,
    }
    assert first["points"] == {
        "severity": 35.0,
        "exposure": 17.5,
        "vulnerability": 12.5,
        "dense_area": 10.0,
    }
    assert first["inputs"]["targets_inside"] == {"residential": 1, "school": 2}
    assert first["flagged_by"] == ["protective_distance", "dense_area"]

    table = relocation_breakdown(ctx)
    assert table.index.tolist()[:4] == ["R1", "R2", "R6", "R5"]
    points = table[[f"points_{p}" for p in ("severity", "exposure", "vulnerability", "dense_area")]]
    np.testing.assert_allclose(points.sum(axis=1), table["score"])
    assert table.loc["R3", "score"] == pytest.approx(100 * (0.35 * 0.5 + 0.35 + 0.1))
    assert pd.isna(table.loc["R3", "relocation_rank"])


# -- the demo region, and the two stores --------------------------------------------------------


def _run_all(store: Store) -> tuple[RuleContext, dict[str, RuleResult]]:
    ctx = RuleContext(store)
    layer = store.catalogue[LAYER]
    kinds = {
        "protective_distance": protective_distance,
        "population_rings": population_rings,
        "dense_area": dense_area,
        "relocation_priority": relocation_priority,
    }
    return ctx, {rule.id: kinds[rule.kind](ctx, layer, rule) for rule in layer.rules}


def test_demo_dense_core_plants_rank_first(gpkg_store: GeoPackageStore) -> None:
    summary = build_demo(gpkg_store)
    _, results = _run_all(gpkg_store)

    core = set(summary.dense_core_plants)
    ranks = results["plant_relocation_priority"].feature_values["relocation_rank"].dropna()
    first = set(ranks[ranks <= len(core)].index)
    assert first == core  # the plan's first targets: small plants in the dense core
    dense = results["plant_in_dense_area"].findings
    assert set(dense["hazard_id"]) == core
    near = results["plant_protective_distance"].findings
    assert (near["value"] <= near["threshold"] + 1e-6).all()
    assert core <= set(near["hazard_id"])  # every core plant has targets inside its distance
    people = results["plant_population_rings"].feature_values["population_1km"]
    assert (people[list(core)] > people.drop(list(core)).max()).all()


@pytest.fixture
def parity_scene(tmp_path: Path) -> Any:
    def load(store: Store) -> None:
        store.put_raster("population", uniform_raster(tmp_path / "pop.tif", 6_000))
        store.replace(
            LAYER,
            plants_frame(
                [
                    {"id": "P1", "processes": ["nitration"], "size": "small"},
                    {
                        "id": "P2",
                        "processes": ["oxidation"],
                        "size": "large",
                        "major_hazard_grade": 1,
                    },
                    {"id": "P3", "processes": None, "size": "medium"},
                ],
                [Point(0, 0), box(1_500, 0, 1_700, 120), Point(-2_000, 500)],
            ),
        )
        store.replace(
            "protection_targets",
            targets_frame(
                [
                    ("T1", "school", Point(400, 300)),
                    ("T2", "residential", box(1_000, 400, 1_200, 600)),
                    ("T3", "hospital", Point(1_600, 60)),
                    ("T4", "kindergarten", Point(-1_500, 500)),
                    ("T5", "other", Point(-1_950, 520)),
                ]
            ),
        )

    return load


def _comparable(findings: gpd.GeoDataFrame) -> pd.DataFrame:
    out = pd.DataFrame(findings.drop(columns="geometry"))
    out["wkt"] = shapely.to_wkt(findings.geometry.values, rounding_precision=7)
    return out.reset_index(drop=True)


def test_same_findings_on_gpkg_and_postgis(
    gpkg_store: GeoPackageStore, postgis_store: PostGISStore, parity_scene: Any
) -> None:
    parity_scene(gpkg_store)
    parity_scene(postgis_store)
    _, on_gpkg = _run_all(gpkg_store)
    _, on_postgis = _run_all(postgis_store)
    for rule_id, result in on_gpkg.items():
        pd.testing.assert_frame_equal(
            _comparable(result.findings), _comparable(on_postgis[rule_id].findings)
        )
        assert sorted(result.feature_values) == sorted(on_postgis[rule_id].feature_values)
        for name, series in result.feature_values.items():
            pd.testing.assert_series_equal(series, on_postgis[rule_id].feature_values[name])
    assert len(on_gpkg["plant_protective_distance"].findings) > 0
    assert len(on_gpkg["plant_relocation_priority"].findings) == 3
