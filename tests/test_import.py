"""Validated import: every format, every check, all problems at once, nothing written on error."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
from geopandas.testing import assert_geodataframe_equal
from rasterio.transform import from_origin

from geo_service.chinacrs import wgs84_to_gcj02
from geo_service.importer import import_file, validate_file
from geo_service.store.gpkg import GeoPackageStore

GEOD = pyproj.Geod(ellps="WGS84")


def _plant(i: int, **props: object) -> dict:
    base = {
        "id": f"p{i}",
        "name": f"清河化工{i}厂",
        "size": "small",
        "processes": ["nitration"],
        "major_hazard_grade": 2,
        "relocation_deadline": "2022-12-31",
        "admin_code": "429001",
    }
    base.update(props)
    return {
        "type": "Feature",
        "properties": base,
        "geometry": {"type": "Point", "coordinates": [110.6 + i * 0.01, 30.55]},
    }


def _write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)
    )
    return path


def _good_plants(n: int = 3) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "name": [f"厂{i}" for i in range(n)],
            "size": ["small"] * n,
            "major_hazard_grade": [1] * n,
        },
        geometry=[shapely.Point(110.6 + i * 0.01, 30.55) for i in range(n)],
        crs=4326,
    )


def test_five_defects_are_all_reported_with_feature_and_field_and_nothing_is_written(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    gpkg_store.upsert("chemical_plants", _good_plants(2))
    before = gpkg_store.read("chemical_plants")
    version = gpkg_store.data_version()
    features = [_plant(i) for i in range(8)]
    features[1]["properties"]["size"] = "huge"  # 1: not in the enum
    del features[2]["properties"]["name"]  # 2: required field missing
    features[3]["geometry"]["coordinates"] = [30.55, 110.63]  # 3: lat/lon swapped
    features[4]["properties"]["major_hazard_grade"] = "two"  # 4: wrong type
    features[5]["geometry"] = {
        "type": "LineString",
        "coordinates": [[110.6, 30.5], [110.7, 30.6]],
    }  # 5
    path = _write_geojson(tmp_path / "plants.geojson", features)

    report = import_file(gpkg_store, "chemical_plants", path)

    found = {(p.feature, p.feature_id, p.field) for p in report.errors}
    assert found == {
        (1, "p1", "size"),
        (2, "p2", "name"),
        (3, "p3", "geometry"),
        (4, "p4", "major_hazard_grade"),
        (5, "p5", "geometry"),
    }
    reasons = {p.feature: p.reason for p in report.errors}
    assert "not one of small, medium, large" in reasons[1]
    assert "required" in reasons[2]
    assert "swapped" in reasons[3]
    assert "not a valid integer" in reasons[4]
    assert "wrong geometry type" in reasons[5]
    assert all(str(path) in str(p) for p in report.errors)
    assert report.written is None
    assert gpkg_store.data_version() == version
    assert_geodataframe_equal(gpkg_store.read("chemical_plants"), before)


def test_skip_invalid_writes_the_rest_and_a_rejects_file_that_imports_back(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    features = [_plant(i) for i in range(4)]
    features[2]["properties"]["admin_code"] = "42900"  # breaks the 6-digit pattern
    path = _write_geojson(tmp_path / "plants.geojson", features)
    report = import_file(gpkg_store, "chemical_plants", path, skip_invalid=True)
    assert report.written is not None and report.written.inserted == 3
    assert gpkg_store.read("chemical_plants")["id"].tolist() == ["p0", "p1", "p3"]
    rejects = pd.read_csv(report.rejects_file)
    assert report.rejects_file == tmp_path / "plants.rejects.csv"
    assert rejects["id"].tolist() == ["p2"]
    assert "admin_code" in rejects["problems"][0]
    assert json.loads(rejects["processes"][0]) == ["nitration"]
    # the user fixes the row and imports the rejects file back
    rejects["admin_code"] = "429001"
    rejects.drop(columns="problems").to_csv(report.rejects_file, index=False)
    again = import_file(gpkg_store, "chemical_plants", report.rejects_file)
    assert again.ok and again.written is not None and again.written.inserted == 1
    assert gpkg_store.count("chemical_plants") == 4


def test_reimport_updates_instead_of_duplicating(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    path = _write_geojson(tmp_path / "plants.geojson", [_plant(i) for i in range(3)])
    first = import_file(gpkg_store, "chemical_plants", path)
    assert (first.written.inserted, first.written.updated) == (3, 0)
    features = [_plant(i) for i in range(4)]
    features[0]["properties"]["relocation_status"] = "relocated"
    _write_geojson(path, features)
    second = import_file(gpkg_store, "chemical_plants", path)
    assert (second.written.inserted, second.written.updated) == (1, 3)
    stored = gpkg_store.read("chemical_plants")
    assert len(stored) == 4
    assert stored.set_index("id").loc["p0", "relocation_status"] == "relocated"


def test_validate_writes_nothing(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    path = _write_geojson(tmp_path / "plants.geojson", [_plant(0)])
    report, validation = validate_file(gpkg_store.layer("chemical_plants"), path)
    assert report.ok and validation is not None and len(validation.valid) == 1
    assert gpkg_store.count("chemical_plants") == 0
    assert not (gpkg_store.data_dir / "georisk.gpkg").exists()


def test_values_are_stored_typed(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    path = _write_geojson(
        tmp_path / "plants.geojson", [_plant(0, in_chemical_park="yes", employees="120")]
    )
    assert import_file(gpkg_store, "chemical_plants", path).ok
    row = gpkg_store.read("chemical_plants").iloc[0]
    assert row["processes"] == ["nitration"]
    assert row["major_hazard_grade"] == 2 and row["employees"] == 120
    assert bool(row["in_chemical_park"]) is True
    assert row["relocation_deadline"] == pd.Timestamp("2022-12-31")
    assert row["source_crs"] == "EPSG:4326"


@pytest.mark.parametrize(
    "fmt", ["gpkg", "shp", "zip", "parquet", "csv-lonlat", "csv-wkt", "geojson"]
)
def test_every_vector_format_imports_the_same_features(
    fmt: str, tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    frame = _good_plants(3)
    path = _write_format(frame, fmt, tmp_path)
    report = import_file(gpkg_store, "chemical_plants", path)
    assert report.ok, [str(p) for p in report.errors]
    stored = gpkg_store.read("chemical_plants")
    assert stored["id"].tolist() == ["p0", "p1", "p2"]
    assert stored["name"].tolist() == ["厂0", "厂1", "厂2"]
    assert stored["major_hazard_grade"].tolist() == [1, 1, 1]
    assert np.allclose(shapely.get_x(stored.geometry.values), [110.6, 110.61, 110.62])


def _write_format(frame: gpd.GeoDataFrame, fmt: str, tmp_path: Path) -> Path:
    if fmt == "gpkg":
        frame.to_file(tmp_path / "p.gpkg", driver="GPKG")
        return tmp_path / "p.gpkg"
    if fmt in {"shp", "zip"}:
        frame.to_file(tmp_path / "p.shp")
        if fmt == "shp":
            return tmp_path / "p.shp"
        with zipfile.ZipFile(tmp_path / "p.zip", "w") as archive:
            for part in tmp_path.glob("p.*"):
                if part.suffix != ".zip":
                    archive.write(part, f"plants/{part.name}")
        return tmp_path / "p.zip"
    if fmt == "parquet":
        frame.to_parquet(tmp_path / "p.parquet")
        return tmp_path / "p.parquet"
    if fmt == "geojson":
        frame.to_file(tmp_path / "p.geojson", driver="GeoJSON")
        return tmp_path / "p.geojson"
    table = pd.DataFrame(frame.drop(columns="geometry"))
    if fmt == "csv-lonlat":
        table["lon"], table["lat"] = frame.geometry.x, frame.geometry.y
    else:
        table["wkt"] = frame.geometry.to_wkt()
    table.to_csv(tmp_path / "p.csv", index=False)
    return tmp_path / "p.csv"


def test_projected_source_is_stored_in_wgs84(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    frame = _good_plants(2).to_crs(4546)  # CGCS2000 3-degree GK CM 111°E
    frame.to_file(tmp_path / "p.gpkg", driver="GPKG")
    report = import_file(gpkg_store, "chemical_plants", tmp_path / "p.gpkg")
    assert report.ok
    stored = gpkg_store.read("chemical_plants")
    assert stored.crs.to_epsg() == 4326
    assert np.allclose(shapely.get_x(stored.geometry.values), [110.6, 110.61], atol=1e-8)
    assert set(stored["source_crs"]) == {"EPSG:4546"}


def test_gcj02_and_bd09_are_converted_and_the_source_kept(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    lon, lat = np.array([110.6, 110.61]), np.array([30.55, 30.56])
    glon, glat = wgs84_to_gcj02(lon, lat)
    table = pd.DataFrame(
        {
            "id": ["a", "b"],
            "name": ["甲", "乙"],
            "category": ["school", "hospital"],
            "lng": glon,
            "lat": glat,
        }
    )
    table.to_csv(tmp_path / "amap.csv", index=False)
    report = import_file(gpkg_store, "protection_targets", tmp_path / "amap.csv", crs="gcj02")
    assert report.ok
    stored = gpkg_store.read("protection_targets")
    _, _, error = GEOD.inv(lon, lat, stored.geometry.x.to_numpy(), stored.geometry.y.to_numpy())
    assert np.max(error) < 0.5
    assert set(stored["source_crs"]) == {"gcj02"}


def test_crs_problems_are_errors(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    frame = _good_plants(1).to_crs(4546)
    frame.to_file(tmp_path / "p.shp")
    (tmp_path / "p.prj").unlink()
    report = import_file(gpkg_store, "chemical_plants", tmp_path / "p.shp")
    assert not report.ok and "declares no CRS" in report.errors[0].reason
    report = import_file(gpkg_store, "chemical_plants", tmp_path / "p.shp", crs="EPSG:999999")
    assert "unknown CRS" in report.errors[0].reason
    assert import_file(gpkg_store, "chemical_plants", tmp_path / "p.shp", crs="4546").ok
    frame.to_file(tmp_path / "q.gpkg", driver="GPKG")
    mismatch = import_file(gpkg_store, "chemical_plants", tmp_path / "q.gpkg", crs="4547")
    assert "declares EPSG:4546 but --crs says EPSG:4547" in mismatch.errors[0].reason


def test_degrees_in_a_projected_file_and_out_of_range_coordinates(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    features = [_plant(0), _plant(1)]
    features[1]["geometry"]["coordinates"] = [200.0, 30.0]
    report = import_file(
        gpkg_store, "chemical_plants", _write_geojson(tmp_path / "p.geojson", features)
    )
    assert [(p.feature, p.reason) for p in report.errors] == [
        (1, "coordinates out of range for longitude/latitude")
    ]
    table = pd.DataFrame({"id": ["a"], "name": ["甲"], "x": [110.6], "y": [30.5]})
    table.to_csv(tmp_path / "p.csv", index=False)
    report = import_file(gpkg_store, "chemical_plants", tmp_path / "p.csv", crs="4546")
    assert "look like degrees" in report.errors[0].reason


def test_invalid_polygon_is_repaired_with_a_note_or_refused(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[110.6, 30.5], [110.61, 30.51], [110.61, 30.5], [110.6, 30.51], [110.6, 30.5]]
        ],
    }
    spike = {
        "type": "Polygon",
        "coordinates": [[[110.6, 30.5], [110.61, 30.51], [110.6, 30.5], [110.6, 30.5]]],
    }
    features = [
        {"type": "Feature", "properties": {"id": i, "name": f"b{i}"}, "geometry": g}
        for i, g in enumerate([bowtie, spike])
    ]
    report = import_file(
        gpkg_store,
        "industrial_parks",
        _write_geojson(tmp_path / "parks.geojson", features),
        skip_invalid=True,
    )
    notes = [p for p in report.problems if p.severity == "note" and p.feature is not None]
    assert [(p.feature, p.field) for p in notes] == [(0, "geometry")] and "repaired" in notes[
        0
    ].reason
    assert [(p.feature, p.field) for p in report.errors] == [(1, "geometry")]
    assert "cannot be repaired" in report.errors[0].reason
    stored = gpkg_store.read("industrial_parks")
    assert stored["id"].tolist() == ["0"] and stored.geometry.is_valid.all()
    assert stored.geometry.iloc[0].geom_type == "MultiPolygon"


def test_missing_column_duplicates_and_unreadable_files(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    features = [_plant(0), _plant(1)]
    for f in features:
        del f["properties"]["name"]
    features[1]["properties"]["id"] = "p0"
    report = import_file(
        gpkg_store, "chemical_plants", _write_geojson(tmp_path / "p.geojson", features)
    )
    reasons = {(p.feature, p.field): p.reason for p in report.errors}
    assert reasons[(None, "name")] == "required field is missing from the file"
    assert "duplicate id" in reasons[(0, "id")] and "duplicate id" in reasons[(1, "id")]
    (tmp_path / "broken.geojson").write_text("{not json")
    broken = import_file(gpkg_store, "chemical_plants", tmp_path / "broken.geojson")
    assert "cannot be read" in broken.errors[0].reason
    missing = import_file(gpkg_store, "chemical_plants", tmp_path / "nope.geojson")
    assert "no such file" in missing.errors[0].reason
    assert gpkg_store.count("chemical_plants") == 0


def test_files_without_ids_get_stable_ids(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    features = [_plant(i) for i in range(2)]
    for f in features:
        del f["properties"]["id"]
    path = _write_geojson(tmp_path / "p.geojson", features)
    first = import_file(gpkg_store, "chemical_plants", path)
    second = import_file(gpkg_store, "chemical_plants", path)
    assert first.written.inserted == 2 and second.written.updated == 2
    assert gpkg_store.count("chemical_plants") == 2
    assert any("ids derived" in p.reason for p in first.problems)


def test_tailings_grade_is_derived_when_absent(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    rows = [  # capacity m³, height m, given grade -> expected grade
        (2e8, 20.0, None, 3),  # V grade 2, H grade 5: differ by 3 -> 2 + 1
        (5e6, 45.0, None, 4),  # V 500e4 -> 4, H 45 -> 4
        (5e7, 45.0, None, 3),  # V grade 3, H grade 4: differ by one -> 3
        (5e5, 120.0, None, 3),  # V grade 5, H grade 2 -> 2 + 1
        (None, 65.0, None, 3),  # height alone
        (1e6, 10.0, 2, 2),  # a given grade is kept
    ]
    table = pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(rows))],
            "name": [f"尾矿库{i}" for i in range(len(rows))],
            "total_capacity_m3": [r[0] for r in rows],
            "dam_height_m": [r[1] for r in rows],
            "grade": [r[2] for r in rows],
            "lon": 110.6,
            "lat": 30.5,
        }
    )
    table.to_csv(tmp_path / "ponds.csv", index=False)
    assert import_file(gpkg_store, "tailings_ponds", tmp_path / "ponds.csv").ok
    assert gpkg_store.read("tailings_ponds")["grade"].tolist() == [r[3] for r in rows]


def _write_raster(
    path: Path, data: np.ndarray, crs: str | None = "EPSG:4546", nodata: float | None = -1
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=from_origin(500000, 3400000, 100, 100),
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


def test_rasters_import_with_checks(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    good = _write_raster(tmp_path / "pop.tif", np.full((10, 10), 50, dtype="float32"))
    report = import_file(gpkg_store, "population", good)
    assert report.ok and report.source_crs == "EPSG:4546"
    with rasterio.open(gpkg_store.raster_path("population")) as src:
        assert src.read(1).sum() == 5000 and src.crs.to_epsg() == 4546
    negative = _write_raster(tmp_path / "neg.tif", np.full((4, 4), -5, dtype="float32"))
    assert "negative population" in import_file(gpkg_store, "population", negative).errors[0].reason
    no_crs = _write_raster(tmp_path / "nocrs.tif", np.full((4, 4), 100, dtype="float32"), crs=None)
    assert "unknown CRS" in import_file(gpkg_store, "dem", no_crs).errors[0].reason
    assert import_file(gpkg_store, "dem", no_crs, crs="4546").ok
    with rasterio.open(gpkg_store.raster_path("dem")) as src:
        assert src.crs.to_epsg() == 4546
    feet = _write_raster(tmp_path / "feet.tif", np.full((4, 4), 12000, dtype="float32"))
    assert "not terrain heights" in import_file(gpkg_store, "dem", feet).errors[0].reason
    assert "GeoTIFF" in import_file(gpkg_store, "dem", tmp_path / "pop.csv").errors[0].reason


def test_heights_are_dropped_with_a_note(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    features = [_plant(0)]
    features[0]["geometry"]["coordinates"] = [110.6, 30.55, 87.0]
    report = import_file(
        gpkg_store, "chemical_plants", _write_geojson(tmp_path / "p.geojson", features)
    )
    assert report.ok and any("heights dropped" in p.reason for p in report.problems)
    assert not gpkg_store.read("chemical_plants").geometry.has_z.any()


def test_canonical_frames_with_nullable_columns_validate(gpkg_store: GeoPackageStore) -> None:
    from geo_service.chinacrs import parse_source_crs
    from geo_service.schema import conform
    from geo_service.validate import validate_frame

    layer = gpkg_store.layer("chemical_plants")
    frame = conform(
        layer,
        gpd.GeoDataFrame(
            {
                "id": ["a", "b"],
                "name": ["甲", "乙"],
                "major_hazard_grade": [2, None],
                "in_chemical_park": [True, None],
            },
            geometry=[shapely.Point(110.6, 30.5), shapely.Point(110.7, 30.5)],
            crs=4326,
        ),
    )
    result = validate_frame(layer, frame, parse_source_crs("4326"), file="frame")
    assert not result.errors
    assert result.valid["major_hazard_grade"].tolist()[0] == 2 and result.valid[
        "major_hazard_grade"
    ].isna().tolist() == [False, True]


def test_result_layers_are_not_importable(tmp_path: Path, gpkg_store: GeoPackageStore) -> None:
    from geo_service.importer import ImportRefused

    path = _write_geojson(tmp_path / "p.geojson", [_plant(0)])
    with pytest.raises(ImportRefused, match="written by the analysis"):
        import_file(gpkg_store, "findings", path)


def test_a_pond_outline_is_a_second_geometry_converted_like_the_first(
    tmp_path: Path, gpkg_store: GeoPackageStore
) -> None:
    toe = gpd.GeoSeries([shapely.Point(110.6, 30.55)], crs=4326).to_crs(4546).iloc[0]
    outline = shapely.Polygon([(toe.x - 300, toe.y), (toe.x + 300, toe.y), (toe.x, toe.y + 500)])
    bowtie = shapely.Polygon(
        [(toe.x, toe.y), (toe.x + 10, toe.y + 10), (toe.x + 10, toe.y), (toe.x, toe.y + 10)]
    )
    frame = gpd.GeoDataFrame(
        {
            "id": ["t1", "t2", "t3"],
            "name": ["甲库", "乙库", "丙库"],
            "pond_area": [outline.wkt, bowtie.wkt, "LINESTRING (0 0, 1 1)"],
        },
        geometry=[toe, toe, toe],
        crs=4546,
    )
    frame.to_file(tmp_path / "ponds.gpkg", driver="GPKG")
    report = import_file(gpkg_store, "tailings_ponds", tmp_path / "ponds.gpkg", skip_invalid=True)
    assert [(p.feature, p.field) for p in report.errors] == [(2, "pond_area")]
    assert "wrong geometry type" in report.errors[0].reason
    assert any(
        p.feature == 1 and p.field == "pond_area" and "repaired" in p.reason
        for p in report.problems
    )
    stored = gpkg_store.read("tailings_ponds").set_index("id")
    area = stored.loc["t1", "pond_area"]
    expected = gpd.GeoSeries([outline], crs=4546).to_crs(4326).iloc[0]
    assert area.geom_type == "Polygon" and area.equals_exact(expected, tolerance=1e-8)
    assert stored.loc["t2", "pond_area"].is_valid
