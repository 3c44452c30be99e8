"""The layer catalogue: shipped layers, their rules and basis, and a layer added without code."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from geo_service.catalogue import CatalogueError, load_catalogue
from geo_service.store.gpkg import GeoPackageStore

REQUIRED_FIELDS = {
    "chemical_plants": {
        "name",
        "credit_code",
        "processes",
        "major_hazard_grade",
        "size",
        "relocation_status",
        "relocation_deadline",
        "admin_code",
    },
    "tailings_ponds": {
        "name",
        "total_capacity_m3",
        "dam_height_m",
        "grade",
        "status",
        "online_monitoring",
    },
    "fire_lifelines": {"name", "width_m", "clear_height_m", "obstructed", "last_inspected"},
    "road_sections": {
        "road_name",
        "road_class",
        "design_speed_kmh",
        "hazard_types",
        "rectification_status",
    },
    "rail_corridors": {"line_name", "rail_type", "area_class", "structure"},
    "protection_targets": {"name", "category", "occupants"},
    "buildings": {"height_m", "floors", "use"},
    "admin_areas": {"admin_code", "name"},
}


def test_shipped_catalogue_has_every_layer_with_the_fixed_field_names(catalogue) -> None:  # type: ignore[no-untyped-def]
    expected = set(REQUIRED_FIELDS) | {
        "fire_stations",
        "water_bodies",
        "population",
        "dem",
        "industrial_parks",
        "mines",
        "findings",
        "measures",
        "analysis_runs",
        "road_hazard_sections",
        "risk_surface",
    }
    assert set(catalogue.layers) == expected
    for layer_id, fields in REQUIRED_FIELDS.items():
        assert fields <= set(catalogue[layer_id].field_map), layer_id
    assert catalogue["population"].kind == "raster" and catalogue["dem"].raster.unit == "m"
    assert catalogue["road_sections"].field_map["hazard_types"].items_enum == [
        "along_water_cliff",
        "long_steep_downgrade",
        "sharp_curve_steep_slope",
        "fog_prone",
        "level_crossing",
        "dangerous_bridge",
    ]
    assert catalogue["chemical_plants"].field_map["relocation_status"].enum == [
        "pending",
        "in_progress",
        "relocated",
        "converted_in_place",
        "closed",
    ]


def test_every_rule_carries_basis_confidence_and_thresholds(catalogue) -> None:  # type: ignore[no-untyped-def]
    rules = catalogue.rules
    assert len(rules) >= 15
    for layer, rule in rules:
        assert rule.basis.strip() and rule.confidence in {"V", "S", "R"}, (layer.id, rule.id)
    headtop = catalogue["tailings_ponds"].rule("headtop_downstream")
    assert headtop.params["path_length_m"] == 1000 and headtop.confidence == "V"
    zone = catalogue["rail_corridors"].rule("rail_protection_zone").params["widths_m"]
    assert zone["high_speed"] == {"urban": 10, "suburban": 12, "village": 15, "other": 20}
    assert zone["conventional"] == {"urban": 8, "suburban": 10, "village": 12, "other": 15}
    assert catalogue["fire_lifelines"].rule("lane_substandard").params == {
        "min_width_m": 4.0,
        "min_clear_height_m": 4.0,
    }


def test_a_new_layer_needs_only_a_file(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(catalogue.source, tmp_path / "layers")
    (tmp_path / "layers" / "gas_stations.yaml").write_text(
        "id: gas_stations\n"
        "title: {zh: 加油站, en: Filling stations}\n"
        "role: hazard\n"
        "geometry: [Point]\n"
        "fields:\n"
        "  - {name: name, type: string, required: true, title: {zh: 名称, en: Name}}\n"
        "  - {name: tanks_m3, type: number, minimum: 0, unit: m³, title: {zh: 储罐容积, en: Tank volume}}\n",
        encoding="utf-8",
    )
    extended = load_catalogue(tmp_path / "layers")
    assert "gas_stations" in extended and extended.version != catalogue.version
    store = GeoPackageStore(extended, tmp_path / "data")
    frame = gpd.GeoDataFrame(
        {"id": ["g1"], "name": ["中石化"], "tanks_m3": [120.0]},
        geometry=[shapely.Point(110.6, 30.5)],
        crs=4326,
    )
    store.upsert("gas_stations", frame)
    assert store.read("gas_stations")["tanks_m3"].tolist() == [120.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "id: x\ntitle: {zh: a, en: b}\ngeometry: [Point]\nfields: [{name: n, type: text, title: {zh: a, en: b}}]\n",
            "type",
        ),
        ("id: x\ntitle: {zh: a, en: b}\n", "at least one geometry type"),
        (
            "id: x\ntitle: {zh: a, en: b}\ngeometry: [Point]\nfields: [{name: g, type: integer, derive: nope, title: {zh: a, en: b}}]\n",
            "unknown derivation",
        ),
        ("id: x\ntitle: [unclosed\n", "not valid YAML"),
        ("id: y\ntitle: {zh: a, en: b}\ngeometry: [Point]\n", "file name must be the layer id"),
    ],
)
def test_broken_layer_files_are_refused_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(CatalogueError, match=message) as info:
        load_catalogue(tmp_path)
    assert "x.yaml" in str(info.value)
