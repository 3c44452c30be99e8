"""The GeoPackage and PostGIS stores give identical answers for identical data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import AWKWARD_IDS
from geopandas.testing import assert_geodataframe_equal

from geo_service.store.base import Store, StoreError
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore

pytestmark = pytest.mark.postgis

BBOXES = [
    (116.0, 39.5, 116.5, 40.0),
    (116.305, 39.905, 116.315, 39.915),  # inside a polygon, touching no vertex
    (116.44, 39.84, 116.46, 39.86),  # inside a hole
    (0.0, 0.0, 1.0, 1.0),  # nothing
    (116.3, 39.9, 116.3, 39.9),  # a point
]


@pytest.fixture
def both(gpkg_store: GeoPackageStore, postgis_store: PostGISStore) -> list[Store]:
    return [gpkg_store, postgis_store]


def assert_same(gpkg: gpd.GeoDataFrame, postgis: gpd.GeoDataFrame) -> None:
    """Same columns, dtypes and values; geometries equal to the bit (same WKB)."""
    assert_geodataframe_equal(postgis, gpkg, check_dtype=True, check_less_precise=False)
    assert list(shapely.to_wkb(postgis.geometry.values)) == list(
        shapely.to_wkb(gpkg.geometry.values)
    )
    for name in postgis.columns:
        assert [type(v) for v in postgis[name]] == [type(v) for v in gpkg[name]], name


def write_all(stores: list[Store], layer_id: str, frame: gpd.GeoDataFrame) -> None:
    results = [store.upsert(layer_id, frame) for store in stores]
    assert results[0] == results[1]
    assert results[0].inserted == len(frame)


def test_read_everything_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    gpkg, postgis = (store.read("chemical_plants") for store in both)
    assert len(postgis) == len(plants)
    assert_same(gpkg, postgis)
    assert list(postgis["id"]) == sorted(plants["id"])  # code-point order, like Python


def test_values_come_back_as_written(postgis_store: PostGISStore, plants: gpd.GeoDataFrame) -> None:
    postgis_store.upsert("chemical_plants", plants)
    got = postgis_store.read(
        "chemical_plants", ids=["中文编号-1", "a'b", "x'); DROP TABLE chemical_plants; --"]
    )
    row = got.set_index("id").loc["中文编号-1"]
    assert row["name"] == "上海石化"
    assert row["processes"] == ["硝化", "含,逗号", 'quote"d']
    assert isinstance(row["processes"], list)
    assert row["employees"] == 2_000_000_000_000
    assert bool(row["in_chemical_park"]) is True
    assert row.geometry.equals(plants.geometry[3])
    first = got.set_index("id").loc["a'b"]
    assert first["processes"] == ["nitration", "chlorination"]
    assert str(first["relocation_deadline"].date()) == "2024-12-31"
    odd = got.set_index("id").loc["x'); DROP TABLE chemical_plants; --"]
    assert odd["name"] == "a\tb\\c\nd"
    assert odd["processes"] is None


def test_lines_and_lists_the_same(both: list[Store], roads: gpd.GeoDataFrame) -> None:
    write_all(both, "road_sections", roads)
    assert_same(*(store.read("road_sections") for store in both))


@pytest.mark.parametrize("bbox", BBOXES)
def test_read_and_count_in_bbox_the_same(
    both: list[Store], plants: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, bbox: tuple
) -> None:
    write_all(both, "chemical_plants", plants)
    write_all(both, "road_sections", roads)
    for layer_id in ("chemical_plants", "road_sections"):
        gpkg, postgis = (store.read(layer_id, bbox=bbox) for store in both)
        assert_same(gpkg, postgis)
        counts = [store.count(layer_id, bbox=bbox) for store in both]
        assert counts[0] == counts[1] == len(postgis)


def test_bbox_is_exact(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    bbox = (116.44, 39.84, 116.46, 39.86)  # in the hole of 中文编号-1, inside its envelope
    expected = shapely.intersects(plants.geometry.values, shapely.box(*bbox))
    for store in both:
        found = store.read("chemical_plants", bbox=bbox)
        assert "中文编号-1" not in set(found["id"])
        assert set(found["id"]) == set(plants["id"][expected])


@pytest.mark.parametrize(
    "ids",
    [
        [],
        ["a'b"],
        list(AWKWARD_IDS),
        ["p0003", "missing", "p0001", "p0003"],
        ["' OR '1'='1", "nope"],
    ],
)
def test_read_by_ids_the_same(both: list[Store], plants: gpd.GeoDataFrame, ids: list[str]) -> None:
    write_all(both, "chemical_plants", plants)
    gpkg, postgis = (store.read("chemical_plants", ids=ids) for store in both)
    assert_same(gpkg, postgis)
    assert set(postgis["id"]) == set(ids) & set(plants["id"])


@pytest.mark.parametrize(
    ("limit", "offset"), [(10, 0), (10, 5), (None, 150), (0, 0), (50, 140), (5, 1000)]
)
def test_pages_the_same(
    both: list[Store], plants: gpd.GeoDataFrame, limit: int | None, offset: int
) -> None:
    write_all(both, "chemical_plants", plants)
    gpkg, postgis = (store.read("chemical_plants", limit=limit, offset=offset) for store in both)
    assert_same(gpkg, postgis)
    everything = sorted(plants["id"])
    stop = None if limit is None else offset + limit
    assert list(postgis["id"]) == everything[offset:stop]


def test_filters_combine_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    ids = sorted(plants["id"])[::2]
    kwargs = {"bbox": (116.0, 39.5, 116.6, 40.1), "ids": ids, "limit": 7, "offset": 3}
    gpkg, postgis = (store.read("chemical_plants", **kwargs) for store in both)
    assert_same(gpkg, postgis)
    assert len(postgis) == 7


def test_empty_layer_the_same(both: list[Store]) -> None:
    gpkg, postgis = (store.read("buildings") for store in both)
    assert_same(gpkg, postgis)
    assert [store.count("buildings") for store in both] == [0, 0]
    assert both[0].counts() == both[1].counts()


@pytest.mark.parametrize(
    ("layer_id", "where", "distance"),
    [
        ("chemical_plants", shapely.Point(116.3, 39.9), 20_000),
        ("chemical_plants", shapely.Point(116.45, 39.85), 15_000),  # inside a hole
        ("chemical_plants", shapely.box(116.2, 39.8, 116.25, 39.85), 25_000),
        ("road_sections", shapely.Point(116.3, 39.9), 20_000),
        # a short line: PostGIS draws edges as geodesics, the default `near` as straight lines in
        # a metric projection; over 85 km the two part by ~0.6 m, over 15 km by ~2 cm
        ("road_sections", shapely.LineString([(116.2, 39.8), (116.3, 39.9)]), 6_000),
    ],
)
def test_near_the_same(
    both: list[Store],
    plants: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    layer_id: str,
    where: shapely.Geometry,
    distance: float,
) -> None:
    write_all(both, "chemical_plants", plants)
    write_all(both, "road_sections", roads)
    gpkg, postgis = (store.near(layer_id, where, distance) for store in both)
    assert len(postgis) > 3
    assert list(postgis["id"]) == list(gpkg["id"])
    np.testing.assert_allclose(postgis["distance_m"], gpkg["distance_m"], rtol=1e-3, atol=0.01)
    assert (postgis["distance_m"] <= distance).all()
    assert postgis["distance_m"].is_monotonic_increasing
    assert_same(gpkg.drop(columns="distance_m"), postgis.drop(columns="distance_m"))


def test_near_nothing_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    gpkg, postgis = (store.near("chemical_plants", shapely.Point(0, 0), 1000) for store in both)
    assert len(gpkg) == len(postgis) == 0
    assert list(gpkg.columns) == list(postgis.columns)


def test_upsert_counts_and_results_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants.iloc[:100])
    changed = plants.iloc[60:].copy()
    changed["name"] = "改名"
    changed["processes"] = [["phosgene"]] * len(changed)
    results = [store.upsert("chemical_plants", changed) for store in both]
    assert results[0] == results[1]
    assert (results[1].inserted, results[1].updated) == (len(plants) - 100, 40)
    gpkg, postgis = (store.read("chemical_plants") for store in both)
    assert_same(gpkg, postgis)
    assert len(postgis) == len(plants)
    assert (postgis.set_index("id").loc[changed["id"], "name"] == "改名").all()


def test_replace_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    results = [store.replace("chemical_plants", plants.iloc[10:30]) for store in both]
    assert results[0] == results[1]
    assert (results[1].inserted, results[1].updated) == (20, 0)
    gpkg, postgis = (store.read("chemical_plants") for store in both)
    assert_same(gpkg, postgis)
    assert set(postgis["id"]) == set(plants["id"].iloc[10:30])


def test_delete_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    write_all(both, "chemical_plants", plants)
    ids = ["a'b", "x'); DROP TABLE chemical_plants; --", "p0001", "not-there"]
    assert [store.delete("chemical_plants", ids) for store in both] == [3, 3]
    assert [store.delete("chemical_plants", ids) for store in both] == [0, 0]
    gpkg, postgis = (store.read("chemical_plants") for store in both)
    assert_same(gpkg, postgis)
    assert len(postgis) == len(plants) - 3


def test_duplicate_ids_refused_the_same(both: list[Store], plants: gpd.GeoDataFrame) -> None:
    twice = gpd.GeoDataFrame(
        gpd.pd.concat([plants.iloc[:3], plants.iloc[:1]], ignore_index=True), crs=4326
    )
    for store in both:
        with pytest.raises(StoreError, match="duplicate ids"):
            store.upsert("chemical_plants", twice)
        assert store.count("chemical_plants") == 0


def test_data_version_changes_on_every_write(
    both: list[Store], plants: gpd.GeoDataFrame, make_geotiff
) -> None:
    for store in both:
        seen = [store.data_version()]
        assert seen[0] == "empty"
        store.upsert("chemical_plants", plants.iloc[:5])
        seen.append(store.data_version())
        store.replace("chemical_plants", plants.iloc[:3])
        seen.append(store.data_version())
        store.delete("chemical_plants", ["a'b"])
        seen.append(store.data_version())
        store.put_raster("dem", make_geotiff())
        seen.append(store.data_version())
        assert len(set(seen)) == len(seen)
        assert store.data_version() == seen[-1]  # reading changes nothing


def test_rasters_the_same(both: list[Store], make_geotiff) -> None:
    assert [store.raster_path("dem") for store in both] == [None, None]
    first, second = make_geotiff("one.tif", seed=1), make_geotiff("two.tif", seed=2)
    for source in (first, second):
        for store in both:
            store.put_raster("dem", source)
        paths = [store.raster_path("dem") for store in both]
        assert all(isinstance(p, Path) for p in paths)
        assert [p.read_bytes() for p in paths if p] == [source.read_bytes()] * 2
    assert [store.raster_path("population") for store in both] == [None, None]
    for store in both:
        with pytest.raises(StoreError, match="not a raster layer"):
            store.put_raster("chemical_plants", first)
