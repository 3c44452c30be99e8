"""Grading: scores worked out by hand from the formula, the layer specs, and the risk surface."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import yaml
from pyproj import CRS, Transformer

from geo_service.catalogue import Catalogue, default_catalogue_dir, load_catalogue
from geo_service.risk.context import RuleContext
from geo_service.risk.grading import factors, grade, grading_spec, risk_surface
from geo_service.risk.model import findings_frame, no_findings
from geo_service.store.gpkg import GeoPackageStore


def catalogue_with(tmp_path: Path, gradings: dict[str, dict[str, Any]]) -> Catalogue:
    """The shipped catalogue with the ``grading`` sections of some layers replaced."""
    target = tmp_path / "layers"
    shutil.copytree(default_catalogue_dir(), target)
    for layer_id, grading in gradings.items():
        path = target / f"{layer_id}.yaml"
        data = yaml.safe_load(path.read_text())
        data["grading"] = grading
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return load_catalogue(target)


BASE = {
    "basis": "test",
    "confidence": "S",
    "classes": {"red": 75, "orange": 50, "yellow": 25},
    "no_findings_max": 20,
    "surface_radius_m": 1000,
}

PLANT_GRADING = {
    **BASE,
    "weights": {"severity": 1.0, "exposure": 0.5, "vulnerability": 1.0},
    "severity": {
        "floor": 0.2,
        "terms": [
            {"field": "major_hazard_grade", "map": {1: 1.0, 2: 0.8, 3: 0.75}},
            {
                "field": "processes",
                "any_of": {"rule": "plant_protective_distance", "param": "severe_processes"},
                "value": 0.9,
            },
        ],
    },
    "exposure": {"floor": 0.1, "terms": [{"field": "population_1km", "saturate": 10000}]},
    "vulnerability": {
        "floor": 0.5,
        "terms": [
            {
                "findings": "target_field",
                "rules": ["plant_protective_distance"],
                "target_field": "category",
                "map": {"school": 1.0, "residential": 0.8},
            },
            {"findings": "count", "rules": ["plant_in_dense_area"], "value": 0.6},
        ],
    },
}

# id: grade, processes, people within 1 km, targets inside the distance, in a dense area
PLANTS = {
    "p01": (1, None, 10000, ["school"], False),
    "p02": (2, None, 2500, ["residential"], False),
    "p03": (None, ["hydrogenation", "nitration"], 6400, [], True),
    "p04": (None, None, 40000, [], False),
    "p05": (1, None, 10000, [], False),
    "p06": (1, None, 10000, ["residential"], True),
    "p07": (3, None, 10000, ["school"], False),
    "p08": (3, None, 9990, ["school"], False),
    "p09": (2, None, None, ["school"], False),
    "p10": (1, None, 2500, ["school"], False),
}
# score = 100 · S · sqrt(E) · V, worked out by hand
EXPECTED = {
    "p01": (100.0, "red"),  # 1 · 1 · 1
    "p02": (32.0, "yellow"),  # 0.8 · sqrt(0.25) · 0.8
    "p03": (43.2, "yellow"),  # nitration 0.9 · sqrt(0.64) · dense 0.6
    "p04": (10.0, "blue"),  # floor 0.2 · 1 · floor 0.5, no finding
    "p05": (20.0, "blue"),  # 1 · 1 · 0.5 = 50, but no finding: capped at 20
    "p06": (80.0, "red"),  # 1 · 1 · max(residential 0.8, dense 0.6)
    "p07": (75.0, "red"),  # 0.75 · 1 · 1: exactly at the red threshold (inclusive)
    "p08": (74.96, "orange"),  # 0.75 · sqrt(0.999) · 1 = 74.9625: just under
    "p09": (25.3, "yellow"),  # 0.8 · sqrt(floor 0.1) · 1 = 25.298
    "p10": (50.0, "orange"),  # 1 · sqrt(0.25) · 1: exactly at orange
}


@pytest.fixture
def plant_scene(tmp_path: Path) -> tuple[RuleContext, gpd.GeoDataFrame, dict[str, pd.Series]]:
    catalogue = catalogue_with(tmp_path, {"chemical_plants": PLANT_GRADING})
    store = GeoPackageStore(catalogue, tmp_path / "data")
    ids = list(PLANTS)
    points = [shapely.Point(110.5 + i * 0.01, 30.5) for i in range(len(ids))]
    store.replace(
        "chemical_plants",
        gpd.GeoDataFrame(
            {
                "id": ids,
                "name": ids,
                "major_hazard_grade": [PLANTS[i][0] for i in ids],
                "processes": [PLANTS[i][1] for i in ids],
            },
            geometry=points,
            crs=4326,
        ),
    )
    targets = [(pid, cat) for pid in ids for cat in PLANTS[pid][3]]
    store.replace(
        "protection_targets",
        gpd.GeoDataFrame(
            {
                "id": [f"t-{pid}-{cat}" for pid, cat in targets],
                "name": [cat for _, cat in targets],
                "category": [cat for _, cat in targets],
            },
            geometry=[shapely.Point(110.5, 30.51)] * len(targets),
            crs=4326,
        ),
    )
    layer = catalogue["chemical_plants"]
    near = findings_frame(
        layer.rule("plant_protective_distance"),
        layer,
        hazard_ids=[pid for pid, _ in targets],
        geometries=[shapely.Point(110.5, 30.5)] * len(targets),
        values=[100.0] * len(targets),
        thresholds=500.0,
        unit="m",
        risk_classes="red",
        target_layer="protection_targets",
        target_ids=[f"t-{pid}-{cat}" for pid, cat in targets],
    )
    dense_ids = [pid for pid in ids if PLANTS[pid][4]]
    dense = findings_frame(
        layer.rule("plant_in_dense_area"),
        layer,
        hazard_ids=dense_ids,
        geometries=[shapely.Point(110.5, 30.5)] * len(dense_ids),
        values=[9000.0] * len(dense_ids),
        thresholds=5000.0,
        unit="persons/km²",
        risk_classes="red",
    )
    findings = gpd.GeoDataFrame(pd.concat([near, dense], ignore_index=True), crs=4326)
    people = pd.Series({i: PLANTS[i][2] for i in ids}, dtype="Float64")
    return RuleContext(store), findings, {"population_1km": people}


def test_scores_worked_out_by_hand(plant_scene) -> None:
    ctx, findings, values = plant_scene
    layer = ctx.catalogue["chemical_plants"]
    graded = grade(ctx, layer, findings, values)
    assert set(graded) == {"risk_score", "risk_class"}
    for pid, (score, risk_class) in EXPECTED.items():
        assert graded["risk_score"][pid] == pytest.approx(score, abs=0.005), pid
        assert graded["risk_class"][pid] == risk_class, pid


def test_the_parts_explain_the_score(plant_scene) -> None:
    ctx, findings, values = plant_scene
    parts = factors(ctx, ctx.catalogue["chemical_plants"], findings, values)
    assert parts.loc["p03", ["severity", "exposure", "vulnerability"]].tolist() == pytest.approx(
        [0.9, 0.64, 0.6]
    )
    assert parts.loc["p04", ["severity", "exposure", "vulnerability"]].tolist() == pytest.approx(
        [0.2, 1.0, 0.5]
    )
    assert not parts.at["p05", "flagged"] and parts.at["p06", "flagged"]
    # every feature gets a score, those with no finding too
    assert parts["risk_score"].notna().all() and len(parts) == len(PLANTS)


def test_flagged_by_leaves_ranking_findings_out(tmp_path: Path, plant_scene) -> None:
    ctx, findings, values = plant_scene
    layer = ctx.catalogue["chemical_plants"]
    spec = dict(layer.grading, flagged_by=["plant_protective_distance"])
    graded = grade(ctx, layer.model_copy(update={"grading": spec}), findings, values)
    # p03 has only a dense-area finding: no longer flagged, so capped at 20
    assert graded["risk_score"]["p03"] == pytest.approx(20.0)
    assert graded["risk_score"]["p01"] == pytest.approx(100.0)


def test_findings_terms_worst_class_count_max_value(tmp_path: Path) -> None:
    rail_grading = {
        **BASE,
        "weights": {"severity": 1.0, "exposure": 1.0, "vulnerability": 1.0},
        "severity": {
            "floor": 0.1,
            "terms": [{"findings": "worst_class", "map": {"red": 1.0, "orange": 0.5}}],
        },
        "exposure": {
            "floor": 0.0,
            "terms": [
                {"findings": "count", "rules": ["rail_protection_zone"], "saturate": 4},
                {
                    "findings": "max_value",
                    "rules": ["rail_mining_approval"],
                    "ramp": [0, 1000],
                    "times": 0.5,
                },
            ],
        },
        "vulnerability": {
            "floor": 0.2,
            "default": 0.7,
            "terms": [{"field": "area_class", "map": {"urban": 1.0}}],
        },
    }
    catalogue = catalogue_with(tmp_path, {"rail_corridors": rail_grading})
    store = GeoPackageStore(catalogue, tmp_path / "data")
    lines = [
        shapely.LineString([(110.5, 30.5 + i / 100), (110.6, 30.5 + i / 100)]) for i in range(3)
    ]
    store.replace(
        "rail_corridors",
        gpd.GeoDataFrame(
            {
                "id": ["r1", "r2", "r3"],
                "line_name": ["a", "b", "c"],
                "rail_type": ["conventional"] * 3,
                "area_class": ["urban", "other", None],
            },
            geometry=lines,
            crs=4326,
        ),
    )
    layer = catalogue["rail_corridors"]

    def some(rule_id: str, hazards: list[str], classes: list[str], values: list[float]):
        return findings_frame(
            layer.rule(rule_id),
            layer,
            hazard_ids=hazards,
            geometries=[shapely.Point(110.5, 30.5)] * len(hazards),
            values=values,
            thresholds=None,
            unit="m",
            risk_classes=classes,
        )

    findings = pd.concat(
        [
            some(
                "rail_protection_zone", ["r1", "r1", "r2"], ["orange", "red", "orange"], [5, 5, 5]
            ),
            some("rail_mining_approval", ["r1", "r2", "r2"], ["orange"] * 3, [600, 1000, 200]),
        ],
        ignore_index=True,
    )
    parts = factors(RuleContext(store), layer, findings, {})
    # r1: worst red → S 1; E = max(2 findings / 4, 0.5 · 600/1000) = 0.5; urban → V 1 → 50
    # r2: worst orange → S 0.5; E = max(1/4, 0.5 · 1000/1000) = 0.5; 'other' unmapped → default
    #     0.7 → 17.5
    # r3: no findings → S floor 0.1, E floor 0, V default 0.7 → 0
    assert parts["severity"].tolist() == pytest.approx([1.0, 0.5, 0.1])
    assert parts["exposure"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert parts["vulnerability"].tolist() == pytest.approx([1.0, 0.7, 0.7])
    assert parts["risk_score"].tolist() == pytest.approx([50.0, 17.5, 0.0])
    assert parts["risk_class"].tolist() == ["orange", "blue", "blue"]


def test_an_empty_layer_grades_to_nothing(tmp_path: Path) -> None:
    catalogue = catalogue_with(tmp_path, {"chemical_plants": PLANT_GRADING})
    store = GeoPackageStore(catalogue, tmp_path / "data")
    ctx = RuleContext(store)
    graded = grade(ctx, catalogue["chemical_plants"], no_findings(), {})
    assert len(graded["risk_score"]) == 0 and len(graded["risk_class"]) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": {"terms": [{"field": "no_such_field", "saturate": 1}]}}, "no field"),
        (
            {"severity": {"terms": [{"findings": "count", "rules": ["nope"], "value": 1}]}},
            "unknown rules",
        ),
        (
            {"severity": {"terms": [{"field": "size", "map": {"a": 1}, "saturate": 2}]}},
            "exactly one of",
        ),
        ({"severity": {"terms": [{"findings": "worst_class", "saturate": 2}]}}, "exactly one of"),
        ({"classes": {"red": 50, "orange": 60, "yellow": 25}}, "red > orange > yellow"),
        ({"flagged_by": ["nope"]}, "flagged_by"),
        ({"weights": {"severity": -1}}, "weights"),
    ],
)
def test_a_wrong_grading_section_names_the_problem(change: dict, message: str) -> None:
    layer = load_catalogue()["chemical_plants"]
    broken = layer.model_copy(update={"grading": {**PLANT_GRADING, **change}})
    with pytest.raises(ValueError, match=message):
        grading_spec(broken)


def test_every_graded_hazard_layer_has_a_valid_grading_with_its_basis(catalogue: Catalogue) -> None:
    graded = []
    for layer in catalogue.vector_layers:
        if "risk_score" in layer.field_map and layer.role == "hazard":
            spec = grading_spec(layer)
            assert spec is not None, f"{layer.id} has a risk_score but no grading section"
            assert spec.basis.strip() and spec.confidence in {"V", "S", "R"}
            assert spec.no_findings_max < spec.classes.yellow  # unflagged features stay blue
            graded.append(layer.id)
    assert {
        "chemical_plants",
        "tailings_ponds",
        "rail_corridors",
        "road_sections",
        "fire_lifelines",
    } <= set(graded)
    assert grading_spec(catalogue["mines"]) is None  # no grading: skipped


# -- the risk surface ---------------------------------------------------------------------------


def test_risk_surface_spreads_each_score_and_keeps_the_highest(tmp_path: Path) -> None:
    road_grading = {**load_catalogue()["road_sections"].grading, "surface_radius_m": 100}
    catalogue = catalogue_with(
        tmp_path, {"chemical_plants": PLANT_GRADING, "road_sections": road_grading}
    )
    store = GeoPackageStore(catalogue, tmp_path / "data")
    store.replace(
        "chemical_plants",
        gpd.GeoDataFrame(
            {"id": ["a", "b", "c"], "name": ["a", "b", "c"], "risk_score": [80.0, 60.0, 40.0]},
            geometry=[
                shapely.Point(110.5, 30.5),
                shapely.Point(110.5, 30.5),  # on top of a: the highest wins, scores never add
                shapely.Point(110.55, 30.5),  # ≈ 4.8 km east
            ],
            crs=4326,
        ),
    )
    road = shapely.LineString([(110.49, 30.47), (110.51, 30.47)])  # ≈ 3.3 km south of a
    store.replace(
        "road_sections",
        gpd.GeoDataFrame({"id": ["r"], "risk_score": [50.0]}, geometry=[road], crs=4326),
    )
    path = risk_surface(store, cell_size_m=20, path=tmp_path / "surface.tif")
    assert path == tmp_path / "surface.tif"
    assert store.raster_path("risk_surface") is not None
    with rasterio.open(path) as src:
        grid, transform, crs = src.read(1), src.transform, CRS(src.crs)
    assert crs.is_projected and crs.axis_info[0].unit_name == "metre"
    assert transform.a == 20 and transform.e == -20
    to_grid = Transformer.from_crs(4326, crs, always_xy=True)

    def at(lon: float, lat: float, north_m: float = 0.0) -> float:
        x, y = to_grid.transform(lon, lat)
        row, col = rasterio.transform.rowcol(transform, x, y + north_m)
        return float(grid[row, col])

    # the cell centre lies within 14.2 m (half a diagonal) of the point: 80 · (1 − d/1000)
    assert 80 * (1 - 14.2 / 1000) <= at(110.5, 30.5) <= 80
    assert grid.max() <= 80 + 1e-4  # 80 and 60 overlap: max, not 140
    assert at(110.5, 30.5, north_m=500) == pytest.approx(40, abs=80 * 14.2 / 1000)
    assert at(110.5, 30.5, north_m=1100) == 0
    assert 40 * (1 - 14.2 / 1000) <= at(110.55, 30.5) <= 40
    # a line: 50 · (1 − d/100) beside it, nothing 100 m away
    assert 50 * (1 - 14.2 / 100) <= at(110.5, 30.47) <= 50
    assert at(110.5, 30.47, north_m=130) == 0


def test_risk_surface_of_an_empty_store_is_a_blank_grid(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    store = GeoPackageStore(catalogue, tmp_path / "data")
    path = risk_surface(store)
    with rasterio.open(path) as src:
        assert src.read(1).max() == 0
        assert src.transform.a == catalogue["risk_surface"].grading["cell_size_m"]
    assert path == store.raster_path("risk_surface")


def test_the_surface_is_a_result_layer_never_imported(
    tmp_path: Path, catalogue: Catalogue, make_geotiff
) -> None:
    from geo_service.importer import ImportRefused, import_file

    layer = catalogue["risk_surface"]
    assert layer.kind == "raster" and layer.role == "result" and not layer.importable
    store = GeoPackageStore(catalogue, tmp_path / "data")
    with pytest.raises(ImportRefused, match="georisk analyze"):
        import_file(store, "risk_surface", make_geotiff())
    assert np.isfinite(layer.grading["cell_size_m"])
