"""Dangerous road sections from geometry and terrain, on hand-built DEMs with hand-worked answers.

Scenes are drawn in metres in EPSG:4547 (CGCS2000 GK zone, central meridian 114°E), the zone
the rules pick for data near 114°E, and stored in EPSG:4326. DEMs are written as float64 planes
and steps, which bilinear interpolation reproduces exactly between cell centres.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from rasterio.transform import from_origin
from rasters import write_tif

from geo_service.catalogue import Catalogue, Rule
from geo_service.demo import DemoSummary, build_demo
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult
from geo_service.risk.registry import RULE_KINDS
from geo_service.risk.rules.roads import RESULT_LAYER
from geo_service.risk.terrain import MetricLines, bilinear
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore

GK = pyproj.CRS.from_epsg(4547)
X0, Y0 = 500_000.0, 3_380_000.0  # ≈ 114.0°E, 30.5°N
TO_4326 = pyproj.Transformer.from_crs(GK, 4326, always_xy=True)
TO_GK = pyproj.Transformer.from_crs(4326, GK, always_xy=True)
NODATA = -9999.0

# -- scene builders ----------------------------------------------------------------------------


def _lonlat(line: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(line, lambda xy: np.column_stack(TO_4326.transform(*xy.T)))


def _roads(store: Store, *roads: dict[str, Any]) -> None:
    """Store road sections given in GK metres: dicts with id, geometry and any fields."""
    frame = gpd.GeoDataFrame(
        [{k: v for k, v in road.items() if k != "geometry"} for road in roads],
        geometry=[_lonlat(road["geometry"]) for road in roads],
        crs=4326,
    )
    store.replace("road_sections", frame)


def _water(store: Store, *polygons: shapely.Geometry) -> None:
    frame = gpd.GeoDataFrame(
        {"id": [f"w{i}" for i in range(len(polygons))], "name": "河"},
        geometry=[_lonlat(p) for p in polygons],
        crs=4326,
    )
    store.replace("water_bodies", frame)


def _grid_dem(
    store: Store,
    tmp_path: Path,
    height: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    cell: float = 10.0,
    west: float = X0 - 1_000,
    north: float = Y0 + 4_000,
    size: tuple[int, int] = (500, 300),
) -> None:
    """A DEM in GK metres: ``height(x, y)`` at every cell centre; cell edges on whole cells."""
    rows, cols = size
    x = west + (np.arange(cols) + 0.5) * cell
    y = north - (np.arange(rows) + 0.5) * cell
    xx, yy = np.meshgrid(x, y)
    store.put_raster(
        "dem",
        write_tif(tmp_path / "dem.tif", height(xx, yy), from_origin(west, north, cell, cell)),
    )


def _plane(slope: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Ground rising ``slope`` (m/m) to the north, 500 m high at Y0."""
    return lambda x, y: 500.0 + slope * (y - Y0)


def _straight(length: float, *, x: float = X0, uphill: bool = False) -> shapely.LineString:
    """A road running south from Y0 + length to Y0 (downhill on ``_plane``), or back north."""
    coords = [(x, Y0 + length), (x, Y0)]
    return shapely.LineString(coords[::-1] if uphill else coords)


def _arc(radius: float, *, centre: tuple[float, float] = (X0, Y0 + 1_000)) -> shapely.LineString:
    """An arc of ``radius`` around ``centre`` from -1.5 to +1.5 rad (east at 0: heading north)."""
    theta = np.radians(np.arange(-1.5 * 180 / np.pi, 1.5 * 180 / np.pi + 1e-9, 0.5))
    return shapely.LineString(
        np.column_stack([centre[0] + radius * np.cos(theta), centre[1] + radius * np.sin(theta)])
    )


def _run(store: Store, rule_id: str, ctx: RuleContext | None = None, **params: Any) -> RuleResult:
    """Run one rule of road_sections, with ``params`` overriding the catalogue's."""
    layer = store.catalogue["road_sections"]
    rule = layer.rule(rule_id)
    if params:
        rule = Rule.model_validate({**rule.model_dump(), "params": {**rule.params, **params}})
    return RULE_KINDS[rule.kind].run(ctx or RuleContext(store), layer, rule)


def _sections(result: RuleResult) -> gpd.GeoDataFrame:
    return result.features[RESULT_LAYER]


def _evidence(result: RuleResult, row: int = 0) -> dict[str, Any]:
    return json.loads(result.findings["evidence"].iloc[row])


def _xy(geometry: shapely.Geometry) -> np.ndarray:
    coords = shapely.get_coordinates(geometry)
    return np.column_stack(TO_GK.transform(coords[:, 0], coords[:, 1]))


# -- long steep downgrades ---------------------------------------------------------------------


def test_a_3_2_km_road_down_a_5_percent_plane_is_one_long_downgrade(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _roads(gpkg_store, {"id": "r1", "road_name": "岭路", "geometry": _straight(3_200)})
    result = _run(gpkg_store, "long_steep_downgrade")
    # windows start every 50 m: (3 %, 3 km) at 0…200 m, (4 %, 2 km) at 0…1200 m, (5 %, 1 km)
    # at 0…2200 m (5 % ≥ 5 %: inclusive); together they cover the whole road, one section
    sections = _sections(result)
    assert len(sections) == 1 and len(result.findings) == 1
    section = sections.iloc[0]
    assert section["hazard_type"] == "long_steep_downgrade" and section["cause"] == "downgrade"
    assert (section["start_m"], section["end_m"]) == pytest.approx((0.0, 3_200.0), abs=1e-6)
    assert section["length_m"] == pytest.approx(3_200.0)
    assert section["avg_grade"] == pytest.approx(5.0, rel=1e-6)  # percent
    assert section["drop_m"] == pytest.approx(160.0, rel=1e-6)  # 5 % of 3200 m
    finding = result.findings.iloc[0]
    # the pair exceeded most: 5 % / 3 % = 1.67 (4 %: 1.25, 5 %: 1.0) → red (≥ 1.5)
    assert finding["value"] == pytest.approx(5.0, rel=1e-6)
    assert finding["threshold"] == pytest.approx(3.0)
    assert finding["unit"] == "%"
    assert finding["risk_class"] == "red" and section["risk_class"] == "red"
    assert finding["hazard_id"] == "r1" and finding["target_layer"] == RESULT_LAYER
    assert finding["target_id"] == section["id"] == "r1/downgrade/0-3200"
    assert finding["target_name"] == "K0+000–K3+200"
    evidence = _evidence(result)
    assert evidence["descends"] == "along" and evidence["exceedance"] == pytest.approx(1.667)
    assert [p["steepest_window_grade_pct"] for p in evidence["pairs"]] == [5.0, 5.0, 5.0]
    assert finding["basis"].startswith("Common screening") and finding["confidence"] == "R"
    # the section is the road itself, drawn downhill (north to south)
    xy = _xy(finding.geometry)
    assert xy[0] == pytest.approx([X0, Y0 + 3_200], abs=1e-3)
    assert xy[-1] == pytest.approx([X0, Y0], abs=1e-3)


def test_a_2_9_km_road_is_too_short_for_3_km_but_steep_enough_for_2_km(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _roads(gpkg_store, {"id": "r1", "geometry": _straight(2_900)})
    # no 3 km window fits on 2.9 km of road
    assert _sections(
        _run(gpkg_store, "long_steep_downgrade", grade_length_pairs=[[0.03, 3000]])
    ).empty
    result = _run(gpkg_store, "long_steep_downgrade")
    # found by (4 %, 2 km): 5 / 4 = 1.25 → orange (≥ 1.25, inclusive)
    assert len(result.findings) == 1
    assert result.findings["threshold"].iloc[0] == pytest.approx(4.0)
    assert result.findings["risk_class"].iloc[0] == "orange"
    assert _sections(result)["length_m"].iloc[0] == pytest.approx(2_900.0)


def test_exactly_at_the_grade_counts_and_just_over_it_does_not(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _roads(gpkg_store, {"id": "r1", "geometry": _straight(3_200)})
    at = _run(gpkg_store, "long_steep_downgrade", grade_length_pairs=[[0.05, 1000]])
    assert len(at.findings) == 1
    assert at.findings["risk_class"].iloc[0] == "blue"  # exceedance 1.0 < 1.1
    over = _run(gpkg_store, "long_steep_downgrade", grade_length_pairs=[[0.0505, 1000]])
    assert over.findings.empty


def test_a_road_digitised_uphill_descends_against_its_direction(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _roads(gpkg_store, {"id": "up", "geometry": _straight(3_200, uphill=True)})
    result = _run(gpkg_store, "long_steep_downgrade")
    section = _sections(result).iloc[0]
    assert _evidence(result)["descends"] == "against"
    assert section["id"] == "up/downgrade/3200-0"
    assert (section["start_m"], section["end_m"]) == pytest.approx((0.0, 3_200.0), abs=1e-6)
    xy = _xy(section.geometry)  # drawn downhill: from the north end
    assert xy[0] == pytest.approx([X0, Y0 + 3_200], abs=1e-3)
    assert result.findings["target_name"].iloc[0] == "K3+200–K0+000"


def test_a_level_road_has_no_downgrade(gpkg_store: GeoPackageStore, tmp_path: Path) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.0))
    _roads(gpkg_store, {"id": "flat", "geometry": _straight(3_200)})
    result = _run(gpkg_store, "long_steep_downgrade")
    assert result.findings.empty and _sections(result).empty


def test_a_road_that_bends_onto_the_level(gpkg_store: GeoPackageStore, tmp_path: Path) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    # 2000 m south down the 5 % plane (100 m lost), then 1200 m east on the level
    road = shapely.LineString([(X0, Y0 + 2_000), (X0, Y0), (X0 + 1_200, Y0)])
    _roads(gpkg_store, {"id": "bend", "geometry": road})
    result = _run(gpkg_store, "long_steep_downgrade")
    # (3 %, 3 km): a window from s loses 0.05·(2000 − s) ≥ 90 m → s ≤ 200, steepest 100/3000
    # = 3.33 % (ratio 1.11); (4 %, 2 km): s ≤ 400, steepest 5 % (1.25); (5 %, 1 km): s ≤ 1000,
    # 5 % (1.0). Union [0, 3200], governed by (4 %, 2 km) → orange; average 100/3200 = 3.125 %
    section = _sections(result).iloc[0]
    assert len(_sections(result)) == 1
    assert (section["start_m"], section["end_m"]) == pytest.approx((0.0, 3_200.0), abs=1e-6)
    assert section["avg_grade"] == pytest.approx(3.125, rel=1e-6)
    finding = result.findings.iloc[0]
    assert (finding["value"], finding["threshold"]) == pytest.approx((5.0, 4.0), rel=1e-6)
    assert finding["risk_class"] == "orange"
    pairs = _evidence(result)["pairs"]
    assert [p["steepest_window_grade_pct"] for p in pairs] == [3.33, 5.0, 5.0]
    # the section follows the bend
    assert shapely.get_num_coordinates(section.geometry) == 3


def test_nodata_along_the_road_skips_samples_without_failing(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    def holed(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = _plane(0.05)(x, y)
        z[(y > Y0 + 1_500) & (y < Y0 + 1_700)] = NODATA  # a band across the road
        return z

    _grid_dem(gpkg_store, tmp_path, holed)
    _roads(gpkg_store, {"id": "r1", "geometry": _straight(3_200)})
    # the 3 km windows start at 0…200 m and end at 3000…3200 m, clear of the band: still found
    result = _run(gpkg_store, "long_steep_downgrade")
    assert len(result.findings) == 1
    assert _sections(result)["avg_grade"].iloc[0] == pytest.approx(5.0, rel=1e-6)
    # all nodata: nothing measured, nothing found, no failure
    _grid_dem(gpkg_store, tmp_path, lambda x, y: np.full(x.shape, NODATA))
    for rule_id in ("long_steep_downgrade", "sharp_curve_steep_slope", "along_water_cliff"):
        assert _run(gpkg_store, rule_id).findings.empty


def test_a_geographic_dem_gives_the_same_grades(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    # the same 5 % plane written on a 0.0002° grid in EPSG:4326 (heights from each centre's
    # GK northing), sampled by bilinear interpolation in degrees
    west, north, step = 113.99, 30.55, 0.0002
    rows, cols = 300, 100
    lon = west + (np.arange(cols) + 0.5) * step
    lat = north - (np.arange(rows) + 0.5) * step
    lons, lats = np.meshgrid(lon, lat)
    _, y = TO_GK.transform(lons, lats)
    gpkg_store.put_raster(
        "dem",
        write_tif(
            tmp_path / "dem4326.tif",
            _plane(0.05)(lons, y),
            from_origin(west, north, step, step),
            4326,
        ),
    )
    _roads(gpkg_store, {"id": "r1", "geometry": _straight(3_200, x=X0 - 500)})
    result = _run(gpkg_store, "long_steep_downgrade")
    assert _sections(result)["avg_grade"].iloc[0] == pytest.approx(5.0, rel=0.01)
    assert result.findings["value"].iloc[0] == pytest.approx(5.0, rel=0.01)


def test_roads_in_two_zones_are_each_measured_in_their_own(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    # 112.45°E lies in the GK zone of 111°E, 112.55°E in that of 114°E; the ground rises 5 %
    # of the geodesic distance north of 30.5°N, and each road runs 3200 m due south
    geod = pyproj.Geod(ellps="GRS80")
    lat0, step = 30.5, 0.0002
    west, north = 112.40, 30.54
    rows, cols = 220, 1000
    lat = north - (np.arange(rows) + 0.5) * step
    _, _, metres = geod.inv(np.zeros(rows), np.full(rows, lat0), np.zeros(rows), lat)
    z = np.repeat((500 + 0.05 * np.sign(lat - lat0) * metres)[:, None], cols, axis=1)
    gpkg_store.put_raster(
        "dem", write_tif(tmp_path / "two.tif", z, from_origin(west, north, step, step), 4326)
    )
    roads = []
    for road_id, lon0 in (("west", 112.45), ("east", 112.55)):
        lon1, lat1, _ = geod.fwd(lon0, lat0, 0.0, 3_200.0)
        roads.append({"id": road_id, "geometry": shapely.LineString([(lon1, lat1), (lon0, lat0)])})
    frame = gpd.GeoDataFrame(
        {"id": [r["id"] for r in roads]}, geometry=[r["geometry"] for r in roads], crs=4326
    )
    gpkg_store.replace("road_sections", frame)
    lines = MetricLines.from_4326(gpkg_store.read("road_sections").geometry)
    assert {crs.to_epsg() for crs in lines.crs} == {4546, 4547}
    result = _run(gpkg_store, "long_steep_downgrade")
    sections = _sections(result).set_index("road_id")
    assert sorted(sections.index) == ["east", "west"]
    for road_id in ("east", "west"):
        # GK scale 1.45° from the central meridian: +0.024 %
        assert sections.loc[road_id, "length_m"] == pytest.approx(3_200, rel=1e-3)
        assert sections.loc[road_id, "avg_grade"] == pytest.approx(5.0, rel=0.01)


def test_bridges_and_tunnels_are_not_measured_on_the_dem(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    # the DEM under a bridge is the valley floor, above a tunnel the hillside: not the roadway
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _roads(
        gpkg_store,
        {"id": "bridge", "structure": "bridge", "geometry": _straight(3_200)},
        {"id": "tunnel", "structure": "tunnel", "geometry": _straight(3_200, x=X0 + 100)},
        {"id": "road", "structure": "road", "geometry": _straight(3_200, x=X0 + 200)},
    )
    assert _run(gpkg_store, "long_steep_downgrade").findings["hazard_id"].tolist() == ["road"]
    every = _run(gpkg_store, "long_steep_downgrade", skip_structures=[])
    assert every.findings["hazard_id"].tolist() == ["bridge", "road", "tunnel"]


def test_without_a_dem_the_terrain_rules_say_what_is_missing(gpkg_store: GeoPackageStore) -> None:
    _roads(gpkg_store, {"id": "r1", "geometry": _straight(3_200)})
    for rule_id in ("long_steep_downgrade", "sharp_curve_steep_slope"):
        with pytest.raises(ValueError, match=r"needs a DEM.*'dem'"):
            _run(gpkg_store, rule_id)


def test_empty_layers_give_empty_results(gpkg_store: GeoPackageStore) -> None:
    for rule_id in (
        "long_steep_downgrade",
        "sharp_curve_steep_slope",
        "along_water_cliff",
        "listed_dangerous_sections",
    ):
        result = _run(gpkg_store, rule_id)
        assert result.findings.empty
        if rule_id != "listed_dangerous_sections":
            assert _sections(result).empty


# -- sharp curves on steep grades --------------------------------------------------------------


def test_a_50_m_curve_on_a_steep_slope_at_40_kmh_is_sharp_and_steep(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.10))
    _roads(
        gpkg_store,
        {"id": "tight", "design_speed_kmh": 40, "geometry": _arc(50)},
        {"id": "wide", "design_speed_kmh": 40, "geometry": _arc(80, centre=(X0 + 500, Y0 + 1_000))},
    )
    result = _run(gpkg_store, "sharp_curve_steep_slope")
    # 40 km/h: limit radius 60 m, max grade 7 %. Points 30 m either side of the arc's middle are
    # 0.6 rad round it: the grade between them is 0.10 · 2·50·sin 0.6 / 60 = 9.41 %. Off the
    # middle by θ it is 9.41 % · cos θ > 7 % for |θ| < 0.733 rad (36.6 m): samples at 40…110 m
    # of the 150 m arc, widened by 30 m → section 10…140 m. The 80 m arc is wide enough.
    sections = _sections(result)
    assert sections["road_id"].tolist() == ["tight"]
    section = sections.iloc[0]
    assert (section["start_m"], section["end_m"]) == pytest.approx((10.0, 140.0), abs=1e-6)
    assert section["min_radius_m"] == pytest.approx(50.0, rel=1e-4)
    finding = result.findings.iloc[0]
    assert (finding["value"], finding["threshold"], finding["unit"]) == (
        pytest.approx(50.0, rel=1e-4),
        60.0,
        "m",
    )
    evidence = _evidence(result)
    # the samples nearest the middle (70 and 80 m) are 0.1 rad off it: 9.41 % · cos 0.1 = 9.36 %
    assert evidence["worst"]["grade_pct"] == pytest.approx(9.36, abs=0.01)
    assert evidence["max_grade_pct"] == 7.0 and evidence["table_speed_kmh"] == 40
    # severity (60/50)·(9.36/7) = 1.605 → orange (≥ 1.5)
    assert evidence["worst"]["severity"] == pytest.approx(1.605, abs=0.002)
    assert finding["risk_class"] == "orange"


def test_curve_radius_just_below_and_just_above_the_limit(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.10))
    _roads(
        gpkg_store,
        {"id": "r59", "geometry": _arc(59)},  # no design speed: the default 40 km/h (limit 60 m)
        {"id": "r61", "geometry": _arc(61, centre=(X0 + 500, Y0 + 1_000))},
    )
    assert _sections(_run(gpkg_store, "sharp_curve_steep_slope"))["road_id"].tolist() == ["r59"]


def test_a_sharp_curve_on_a_gentle_grade_is_not_flagged(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    # 7.4 % slope: the steepest three-point grade is 0.941 · 7.4 = 6.96 % ≤ 7 %
    _grid_dem(gpkg_store, tmp_path, _plane(0.074))
    _roads(gpkg_store, {"id": "r1", "design_speed_kmh": 40, "geometry": _arc(50)})
    assert _run(gpkg_store, "sharp_curve_steep_slope").findings.empty


def test_the_design_speed_picks_the_row_and_a_speed_between_rows_takes_the_slower(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.10))
    _roads(
        gpkg_store,
        # 60 km/h: limit 125 m, max 6 %; the 80 m arc's grade 0.10·2·80·sin(0.375)/60 = 9.77 %
        {"id": "s60", "design_speed_kmh": 60, "geometry": _arc(80)},
        # 50 km/h takes the 40 km/h row (60 m): an 80 m arc passes
        {"id": "s50", "design_speed_kmh": 50, "geometry": _arc(80, centre=(X0 + 500, Y0 + 1_000))},
    )
    result = _run(gpkg_store, "sharp_curve_steep_slope")
    assert result.findings["hazard_id"].tolist() == ["s60"]
    assert result.findings["threshold"].iloc[0] == 125.0
    assert _evidence(result)["table_speed_kmh"] == 60


# -- along water or a cliff --------------------------------------------------------------------


def test_a_road_15_m_from_water_is_along_water_and_25_m_is_not(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.0))
    _water(gpkg_store, shapely.box(X0 - 100, Y0 - 200, X0 + 1_700, Y0))
    _roads(
        gpkg_store,
        {"id": "near", "geometry": shapely.LineString([(X0, Y0 + 15), (X0 + 500, Y0 + 15)])},
        {
            "id": "far",
            "geometry": shapely.LineString([(X0 + 1_000, Y0 + 25), (X0 + 1_500, Y0 + 25)]),
        },
    )
    result = _run(gpkg_store, "along_water_cliff")
    sections = _sections(result)
    assert sections["road_id"].tolist() == ["near"]
    section = sections.iloc[0]
    assert section["cause"] == "water" and section["hazard_type"] == "along_water_cliff"
    assert (section["start_m"], section["end_m"]) == pytest.approx((0.0, 500.0), abs=1e-6)
    assert section["water_distance_m"] == pytest.approx(15.0, abs=1e-3)
    finding = result.findings.iloc[0]
    assert (finding["value"], finding["threshold"]) == (pytest.approx(15.0, abs=1e-3), 20.0)
    assert finding["risk_class"] == "yellow"  # ≤ 15 m
    assert finding["title"] == "临水临崖（临水）"


def test_a_bridge_across_water_is_not_a_road_along_it(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.0))
    _water(gpkg_store, shapely.box(X0 - 500, Y0 - 200, X0 + 500, Y0))
    # crossing the 200 m river: samples on the water are the bridge; 20 m either side (≤ 30 m
    # of road with the half-spacings) is shorter than min_length_m 50
    _roads(
        gpkg_store, {"id": "x", "geometry": shapely.LineString([(X0, Y0 + 300), (X0, Y0 - 500)])}
    )
    assert _run(gpkg_store, "along_water_cliff").findings.empty


def test_a_drop_beside_the_road_is_a_cliff(gpkg_store: GeoPackageStore, tmp_path: Path) -> None:
    # 2 m cells; the ground south of the step (12 m south of road "cliff", 18 m south of road
    # "safe") lies 10 m lower. The side points 15 m off the road: 10 m below "cliff" → a drop
    # ≥ 8 m; still on the upper ground beside "safe".
    def steps(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = np.full(x.shape, 100.0)
        z[(x < X0 + 1_000) & (y < Y0 - 12)] = 90.0
        z[(x >= X0 + 1_000) & (y < Y0 - 18)] = 90.0
        return z

    _grid_dem(
        gpkg_store, tmp_path, steps, cell=2.0, west=X0 - 200, north=Y0 + 200, size=(300, 1200)
    )
    _roads(
        gpkg_store,
        {"id": "cliff", "geometry": shapely.LineString([(X0, Y0), (X0 + 300, Y0)])},
        {"id": "safe", "geometry": shapely.LineString([(X0 + 1_100, Y0), (X0 + 1_400, Y0)])},
    )
    result = _run(gpkg_store, "along_water_cliff")
    sections = _sections(result)
    assert sections["road_id"].tolist() == ["cliff"]
    section = sections.iloc[0]
    assert section["cause"] == "cliff" and section["drop_m"] == pytest.approx(10.0)
    assert section["length_m"] == pytest.approx(300.0)
    finding = result.findings.iloc[0]
    assert (finding["value"], finding["threshold"], finding["unit"]) == (10.0, 8.0, "m")
    assert finding["risk_class"] == "blue"  # 10 m < 12 m (yellow)
    assert finding["title"] == "临水临崖（临崖）"


def test_along_water_still_works_without_a_dem(gpkg_store: GeoPackageStore) -> None:
    _water(gpkg_store, shapely.box(X0 - 100, Y0 - 200, X0 + 700, Y0))
    _roads(
        gpkg_store,
        {"id": "near", "geometry": shapely.LineString([(X0, Y0 + 5), (X0 + 500, Y0 + 5)])},
    )
    result = _run(gpkg_store, "along_water_cliff")
    assert result.findings["risk_class"].tolist() == ["red"]  # 5 m ≤ 5 m


# -- listed sections, the result layer ---------------------------------------------------------


def test_listed_sections_are_findings_until_rectified(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    flat = shapely.LineString([(X0 + 500, Y0), (X0 + 1_500, Y0)])  # east–west: level
    _roads(
        gpkg_store,
        {
            "id": "fog",
            "hazard_types": ["fog_prone"],
            "rectification_status": "identified",
            "geometry": flat,
        },
        {
            "id": "done",
            "hazard_types": ["level_crossing"],
            "rectification_status": "rectified",
            "geometry": flat,
        },
        {
            "id": "steep",
            "hazard_types": ["long_steep_downgrade"],
            "rectification_status": "rectifying",
            "geometry": _straight(3_200),
        },
        {"id": "level", "hazard_types": ["long_steep_downgrade", "fog_prone"], "geometry": flat},
    )
    ctx = RuleContext(gpkg_store)
    unchecked = _run(gpkg_store, "listed_dangerous_sections", ctx)
    # before the terrain rules run, listed terrain hazards are reported as not checked
    assert len(unchecked.findings) == 4
    _run(gpkg_store, "long_steep_downgrade", ctx)
    result = _run(gpkg_store, "listed_dangerous_sections", ctx)
    # fog: listed; done: rectified; steep: confirmed by the DEM (its own finding); level: its
    # downgrade not confirmed, its fog listed
    assert list(zip(result.findings["hazard_id"], result.findings["target_id"], strict=True)) == [
        ("fog", "fog_prone"),
        ("level", "fog_prone"),
        ("level", "long_steep_downgrade"),
    ]
    assert result.findings["risk_class"].tolist() == ["orange", "orange", "yellow"]
    assert result.findings["title"].iloc[0] == "主管部门认定：团雾多发路段"
    assert result.findings["value"].iloc[0] == pytest.approx(1_000.0, rel=1e-6)  # road length
    evidence = [json.loads(e) for e in result.findings["evidence"]]
    assert [e["terrain_check"] for e in evidence] == [
        "not detectable",
        "not detectable",
        "not detected",
    ]
    assert evidence[0]["rectification_status"] == "identified"


def test_all_terrain_rules_share_one_result_layer_and_a_partial_run_keeps_the_others(
    gpkg_store: GeoPackageStore, tmp_path: Path
) -> None:
    _grid_dem(gpkg_store, tmp_path, _plane(0.05))
    _water(gpkg_store, shapely.box(X0 + 985, Y0 - 200, X0 + 1_100, Y0 + 3_500))
    _roads(
        gpkg_store,
        {"id": "down", "geometry": _straight(3_200)},
        {"id": "river", "geometry": _straight(3_200, x=X0 + 970)},  # 15 m from the water
    )
    ctx = RuleContext(gpkg_store)
    results = [
        _run(gpkg_store, rule_id, ctx)
        for rule_id in ("along_water_cliff", "long_steep_downgrade", "sharp_curve_steep_slope")
    ]
    final = _sections(results[-1])
    assert sorted(zip(final["road_id"], final["cause"], strict=True)) == [
        ("down", "downgrade"),
        ("river", "downgrade"),
        ("river", "water"),
    ]
    gpkg_store.replace(RESULT_LAYER, final)
    # a later run of the water rule alone keeps the stored downgrades
    alone = _sections(_run(gpkg_store, "along_water_cliff", RuleContext(gpkg_store)))
    assert sorted(alone["id"]) == sorted(final["id"])


# -- the demo region ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> tuple[GeoPackageStore, DemoSummary]:
    store = GeoPackageStore(catalogue, tmp_path_factory.mktemp("demo-roads"))
    return store, build_demo(store, seed=2020)


def test_the_demo_mountain_road_descends_long_and_steep_in_sharp_curves_and_the_river_road_runs_along_water(
    demo: tuple[GeoPackageStore, DemoSummary],
) -> None:
    store, summary = demo
    ctx = RuleContext(store)
    timings = {}
    results = {}
    for rule_id in (
        "long_steep_downgrade",
        "sharp_curve_steep_slope",
        "along_water_cliff",
        "listed_dangerous_sections",
    ):
        started = time.perf_counter()
        results[rule_id] = _run(store, rule_id, ctx)
        timings[rule_id] = time.perf_counter() - started
    sections = _sections(results["along_water_cliff"])
    by_road = sections.groupby("road_id")["cause"].agg(set)
    assert "downgrade" in by_road[summary.mountain_road]
    assert "curve" in by_road[summary.mountain_road]
    assert "water" in by_road[summary.river_road]
    mountain = sections[sections["road_id"] == summary.mountain_road]
    downgrade = mountain[mountain["cause"] == "downgrade"].iloc[0]
    assert downgrade["length_m"] >= 3_000 and downgrade["avg_grade"] >= 5.0
    curves = mountain[mountain["cause"] == "curve"]
    assert len(curves) >= 4  # the hairpins (radius 28 m, limit 60 m at 40 km/h)
    assert (curves["min_radius_m"] < 40).all()
    river = sections[(sections["road_id"] == summary.river_road) & (sections["cause"] == "water")]
    assert river["length_m"].sum() >= 2_000  # most of its 3.6 km
    assert river["water_distance_m"].between(10, 20).all()
    # the mountain road is listed for both hazards and both are confirmed: no listed findings
    listed = results["listed_dangerous_sections"].findings
    assert summary.mountain_road not in set(listed["hazard_id"])
    assert (summary.level_crossing_road, "level_crossing") in set(
        zip(listed["hazard_id"], listed["target_id"], strict=True)
    )
    print({k: round(v, 2) for k, v in timings.items()}, sections.groupby("cause").size().to_dict())


# -- parity ------------------------------------------------------------------------------------


def _scene(store: Store, tmp_path: Path) -> None:
    _grid_dem(store, tmp_path, _plane(0.10))
    _water(store, shapely.box(X0 + 985, Y0 - 200, X0 + 1_100, Y0 + 3_500))
    _roads(
        store,
        {"id": "down", "road_name": "岭路", "design_speed_kmh": 40, "geometry": _straight(3_200)},
        {"id": "river", "hazard_types": ["fog_prone"], "geometry": _straight(3_200, x=X0 + 970)},
        {"id": "curve", "geometry": _arc(50, centre=(X0 + 500, Y0 + 1_000))},
    )


def test_the_same_findings_on_the_embedded_store_and_postgis(
    gpkg_store: GeoPackageStore, postgis_store: Store, tmp_path: Path
) -> None:
    outputs = []
    for name, store in (("gpkg", gpkg_store), ("postgis", postgis_store)):
        (tmp_path / name).mkdir()
        _scene(store, tmp_path / name)
        ctx = RuleContext(store)
        results = [
            _run(store, rule_id, ctx)
            for rule_id in (
                "along_water_cliff",
                "long_steep_downgrade",
                "sharp_curve_steep_slope",
                "listed_dangerous_sections",
            )
        ]
        findings = pd.concat([r.findings for r in results], ignore_index=True)
        outputs.append((findings, _sections(results[2])))
    (f_gpkg, s_gpkg), (f_pg, s_pg) = outputs
    assert len(f_gpkg) >= 4 and len(s_gpkg) >= 3
    pd.testing.assert_frame_equal(
        pd.DataFrame(f_gpkg.drop(columns="geometry")), pd.DataFrame(f_pg.drop(columns="geometry"))
    )
    assert shapely.equals_exact(f_gpkg.geometry.values, f_pg.geometry.values, 1e-9).all()
    pd.testing.assert_frame_equal(
        pd.DataFrame(s_gpkg.drop(columns="geometry")), pd.DataFrame(s_pg.drop(columns="geometry"))
    )


# -- the DEM sampler ---------------------------------------------------------------------------


def test_bilinear_heights_between_cell_centres_and_at_nodata(tmp_path: Path) -> None:
    z = np.array([[0.0, 10.0], [20.0, NODATA]])
    path = write_tif(tmp_path / "z.tif", z, from_origin(0, 2, 1, 1))
    # centres at (0.5, 1.5)=0, (1.5, 1.5)=10, (0.5, 0.5)=20; halfway along the top row: 5;
    # within half a cell of the edge: the edge cell; next to the nodata cell: NaN; off: NaN;
    # halfway down the left column the nodata cell has no weight: 10
    got = bilinear(path, np.array([1.0, 0.2, 1.0, 3.0, 0.5]), np.array([1.5, 1.9, 1.0, 1.0, 1.0]))
    assert got[[0, 1, 4]] == pytest.approx([5.0, 0.0, 10.0])
    assert np.isnan(got[[2, 3]]).all()
