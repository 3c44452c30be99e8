"""The PostGIS store on a real server: schema, atomic writes, errors, injection, bulk speed."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import create_database, drop_database, postgis_server
from geopandas.testing import assert_geodataframe_equal
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.store import postgis
from geo_service.store.base import Store, StoreError
from geo_service.store.postgis import PostGISStore, upgrade

pytestmark = pytest.mark.postgis

INJECTIONS = [
    "x'); DROP TABLE chemical_plants; --",
    "' OR '1'='1",
    '"; DELETE FROM georisk_meta; --',
    "1; SELECT pg_sleep(10)",
]


def query(url: str | URL, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture
def fresh_database() -> Iterator[URL]:
    """A database of its own, with nothing in it (not even PostGIS)."""
    url = create_database(postgis=False)
    yield url
    drop_database(url)


def points(n: int, prefix: str = "p", seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    return gpd.GeoDataFrame(
        {
            "id": [f"{prefix}{i:06d}" for i in range(n)],
            "name": [f"目标 {i}" for i in range(n)],
            "category": ["school"] * n,
            "occupants": rng.integers(0, 3000, n),
        },
        geometry=shapely.points(rng.uniform(100, 120, n), rng.uniform(20, 40, n)),
        crs=4326,
    )


# -- schema -----------------------------------------------------------------------------------


def test_migration_is_idempotent(postgis_store: PostGISStore, postgis_url: str) -> None:
    postgis_store.upsert("fire_stations", points(3)[["id", "name", "geometry"]])
    tables = query(postgis_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for _ in range(2):
        upgrade(postgis_url, postgis_store.catalogue)
    assert query(postgis_url, "SELECT version_num FROM georisk_alembic_version") == [("0001",)]
    assert query(postgis_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == (
        tables
    )
    assert postgis_store.count("fire_stations") == 3


def test_every_vector_layer_has_a_table_with_gist_indexes(
    postgis_url: str, catalogue: Catalogue
) -> None:
    rows = query(
        postgis_url,
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    gist = {(t, d.split(" USING ")[1]) for t, _, d in rows if " USING gist " in d}
    for layer in catalogue.vector_layers:
        assert (layer.id, "gist (geom)") in gist
        assert (layer.id, "gist (geography(geom))") in gist
    raster_ids = {layer.id for layer in catalogue if layer.kind == "raster"}
    assert raster_ids.isdisjoint({t for t, _, _ in rows})


def test_columns_follow_the_catalogue(postgis_url: str) -> None:
    columns = dict(
        query(
            postgis_url,
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_name = 'chemical_plants'",
        )
    )
    assert columns["id"] == "text"
    assert columns["name"] == "text"
    assert columns["processes"] == "_text"
    assert columns["major_hazard_grade"] == "int8"
    assert columns["risk_score"] == "float8"
    assert columns["in_chemical_park"] == "bool"
    assert columns["relocation_deadline"] == "date"
    assert columns["source_crs"] == "text"
    assert columns["geom"] == "geometry"
    srid = query(postgis_url, "SELECT Find_SRID('public', 'chemical_plants', 'geom')")
    assert srid == [(4326,)]


def test_a_new_database_just_works(fresh_database: URL, catalogue: Catalogue) -> None:
    with PostGISStore(catalogue, fresh_database) as store:
        assert store.data_version() == "empty"
        assert store.count("chemical_plants") == 0
        result = store.upsert("fire_stations", points(2)[["id", "name", "geometry"]])
        assert (result.inserted, result.updated) == (2, 0)
    assert query(fresh_database, "SELECT extname FROM pg_extension WHERE extname = 'postgis'")
    assert query(fresh_database, "SELECT version_num FROM georisk_alembic_version") == [("0001",)]


def test_layers_and_fields_added_later_need_no_code(
    fresh_database: URL, catalogue: Catalogue, tmp_path: Path
) -> None:
    upgrade(fresh_database, catalogue)
    layers = tmp_path / "layers"
    shutil.copytree(catalogue.source, layers)
    (layers / "gas_stations.yaml").write_text(
        "id: gas_stations\n"
        "title: {zh: 加油站, en: Filling stations}\n"
        "geometry: [Point]\n"
        "fields:\n"
        "  - {name: brand, type: string, title: {zh: 品牌, en: Brand}}\n"
        "  - {name: tanks, type: list, title: {zh: 储罐, en: Tanks}}\n",
        encoding="utf-8",
    )
    stations = (layers / "fire_stations.yaml").read_text(encoding="utf-8")
    stations = stations.replace(
        "fields:\n",
        "fields:\n  - {name: opened, type: date, title: {zh: 启用日期, en: Opened}}\n",
        1,
    )
    (layers / "fire_stations.yaml").write_text(stations, encoding="utf-8")
    grown = load_catalogue(layers)
    assert "opened" in grown["fire_stations"].field_map
    frame = gpd.GeoDataFrame(
        {"id": ["g1"], "brand": ["中石化"], "tanks": [["92#", "95#"]]},
        geometry=[shapely.Point(116.3, 39.9)],
        crs=4326,
    )
    with PostGISStore(grown, fresh_database) as store:
        assert store.upsert("gas_stations", frame).inserted == 1
        assert store.read("gas_stations")["tanks"].tolist() == [["92#", "95#"]]
        opened = gpd.GeoDataFrame(
            {"id": ["f1"], "opened": ["2020-05-01"]}, geometry=[shapely.Point(116, 40)], crs=4326
        )
        store.upsert("fire_stations", opened)
        assert str(store.read("fire_stations")["opened"][0].date()) == "2020-05-01"


def test_a_user_who_may_not_enable_postgis_is_told_what_to_do(
    fresh_database: URL, catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"georisk_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgis_server(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        store = PostGISStore(catalogue, fresh_database.set(username=role, password=None))
        with caplog.at_level(logging.ERROR), pytest.raises(StoreError) as info:
            store.count("chemical_plants")
        store.close()
        assert "CREATE EXTENSION postgis" in str(info.value)
        assert "georisk db upgrade" in str(info.value)
        assert "permission denied" not in str(info.value)  # the server's words stay in the log
        assert "permission denied" in caplog.text
    finally:
        drop_database(fresh_database)
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


# -- atomic writes ----------------------------------------------------------------------------


def test_an_upsert_the_database_refuses_midway_changes_nothing(
    postgis_store: PostGISStore, caplog: pytest.LogCaptureFixture
) -> None:
    postgis_store.upsert("protection_targets", points(5))
    before = postgis_store.read("protection_targets")
    version = postgis_store.data_version()
    bad = points(5).iloc[2:4].copy()  # row 1 updates p000002 …
    bad["name"] = ["changed", "NUL \x00 is not text to PostgreSQL"]  # … row 2 is refused
    with caplog.at_level(logging.ERROR), pytest.raises(StoreError) as info:
        postgis_store.upsert("protection_targets", bad)
    message = str(info.value)
    assert message.startswith("could not write to layer protection_targets")
    assert "0x00" not in message and "psycopg" not in message and "COPY" not in message
    assert "0x00" in caplog.text  # the database's own words went to the log
    after = postgis_store.read("protection_targets")
    assert_geodataframe_equal(after, before)
    assert after["name"].tolist() == [f"目标 {i}" for i in range(5)]
    assert postgis_store.data_version() == version


@pytest.mark.parametrize(
    "write",
    [
        lambda store, frame: store.upsert("protection_targets", frame.iloc[3:]),
        lambda store, frame: store.replace("protection_targets", frame.iloc[3:]),
        lambda store, frame: store.delete("protection_targets", list(frame["id"][:4])),
    ],
    ids=["upsert", "replace", "delete"],
)
def test_a_write_interrupted_at_its_end_changes_nothing(
    postgis_store: PostGISStore,
    monkeypatch: pytest.MonkeyPatch,
    write: Callable[[PostGISStore, gpd.GeoDataFrame], object],
) -> None:
    postgis_store.upsert("protection_targets", points(6).iloc[:5])
    before = postgis_store.read("protection_targets")
    version = postgis_store.data_version()
    changed = points(6)
    changed["name"] = "changed"

    def crash(*_: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(postgis, "_bump_version", crash)  # the rows are written by then
    with pytest.raises(RuntimeError, match="power cut"):
        write(postgis_store, changed)
    monkeypatch.undo()
    assert_geodataframe_equal(postgis_store.read("protection_targets"), before)
    assert postgis_store.data_version() == version


def test_concurrent_upserts_count_exactly(postgis_url: str, catalogue: Catalogue) -> None:
    stores = [PostGISStore(catalogue, postgis_url) for _ in range(4)]
    stores[0].replace("protection_targets", points(1000).iloc[:500])
    results = []

    def run(store: PostGISStore) -> None:
        results.append(store.upsert("protection_targets", points(1000)))

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.inserted for r in results) == 500
    assert sum(r.updated for r in results) == 4 * 1000 - 500
    assert stores[0].count("protection_targets") == 1000
    for store in stores:
        store.close()


# -- what comes back --------------------------------------------------------------------------


def test_lists_dates_and_nulls_come_back_typed(postgis_store: PostGISStore) -> None:
    frame = gpd.GeoDataFrame(
        {
            "id": ["r1", "r2", "r3"],
            "road_name": ["京藏高速", None, ""],
            "design_speed_kmh": [120, None, 60],
            "hazard_types": [["fog_prone", "sharp_curve_steep_slope"], [], None],
        },
        geometry=[shapely.LineString([(116, 40), (116.1, 40.1)])] * 3,
        crs=4326,
    )
    postgis_store.upsert("road_sections", frame)
    got = postgis_store.read("road_sections")
    assert got["hazard_types"].tolist() == [["fog_prone", "sharp_curve_steep_slope"], [], None]
    assert got["road_name"].tolist() == ["京藏高速", None, None]
    assert got["design_speed_kmh"].dtype == "Int64"
    assert got["design_speed_kmh"].isna().tolist() == [False, True, False]


def test_geometries_with_z_are_refused_clearly(postgis_store: PostGISStore) -> None:
    frame = gpd.GeoDataFrame({"id": ["z"]}, geometry=[shapely.Point(116, 40, 50)], crs=4326)
    with pytest.raises(StoreError, match="Z"):
        postgis_store.upsert("fire_stations", frame)
    assert postgis_store.count("fire_stations") == 0


def test_a_raster_layer_holds_no_features(postgis_store: PostGISStore) -> None:
    assert len(postgis_store.read("dem")) == 0
    assert postgis_store.count("dem") == 0
    with pytest.raises(StoreError, match="raster layer"):
        postgis_store.upsert("dem", points(1))


def test_rasters_are_cached_by_their_digest(postgis_store: PostGISStore, make_geotiff) -> None:
    source = make_geotiff("a.tif", seed=3)
    postgis_store.put_raster("dem", source)
    path = postgis_store.raster_path("dem")
    assert path is not None and path.parent == postgis_store.cache_dir
    assert path.read_bytes() == source.read_bytes()
    assert path.stem == hashlib.sha256(source.read_bytes()).hexdigest()
    assert postgis_store.raster_path("dem") == path
    path.unlink()
    again = postgis_store.raster_path("dem")
    assert again == path and again.read_bytes() == source.read_bytes()
    other = make_geotiff("b.tif", seed=4)
    postgis_store.put_raster("dem", other)
    newer = postgis_store.raster_path("dem")
    assert newer is not None and newer != path and newer.read_bytes() == other.read_bytes()
    assert [p.name for p in postgis_store.cache_dir.iterdir() if p.name.startswith(".")] == []


def test_near_uses_the_geography_index(postgis_store: PostGISStore, postgis_url: str) -> None:
    postgis_store.replace("protection_targets", points(20_000))
    query(postgis_url, "ANALYZE protection_targets")
    plan = query(
        postgis_url,
        "EXPLAIN SELECT id FROM protection_targets WHERE ST_DWithin(geography(geom), "
        "geography(ST_SetSRID(ST_MakePoint(110, 30), 4326)), 5000)",
    )
    assert "idx_protection_targets_geog" in " ".join(row[0] for row in plan)
    where = shapely.Point(110, 30)
    near = postgis_store.near("protection_targets", where, 50_000)
    in_python = Store.near(postgis_store, "protection_targets", where, 50_000)  # the default
    assert len(near) > 10
    assert near["id"].tolist() == in_python["id"].tolist()
    np.testing.assert_allclose(near["distance_m"], in_python["distance_m"], rtol=1e-6)


# -- bad input --------------------------------------------------------------------------------


def test_injection_looking_input_is_only_data(
    postgis_store: PostGISStore, postgis_url: str
) -> None:
    frame = points(len(INJECTIONS))
    frame["id"] = INJECTIONS
    frame["name"] = INJECTIONS
    assert postgis_store.upsert("protection_targets", frame).inserted == len(INJECTIONS)
    got = postgis_store.read("protection_targets", ids=INJECTIONS)
    assert sorted(got["id"]) == sorted(INJECTIONS)
    assert got.set_index("id").loc[INJECTIONS, "name"].tolist() == INJECTIONS
    assert postgis_store.read("protection_targets", ids=["' OR '1'='1' --"]).empty
    for layer_id in ["chemical_plants; DROP TABLE buildings", "georisk_meta", "pg_class"]:
        with pytest.raises(KeyError, match="unknown layer"):
            postgis_store.read(layer_id)
    for bbox in [("0) OR 1=1 --", 0, 1, 1), (0, 0, 1), (0, 0, float("nan"), 1)]:
        with pytest.raises(StoreError, match="bbox"):
            postgis_store.read("protection_targets", bbox=bbox)  # type: ignore[arg-type]
    for limit in ["5; DROP TABLE buildings", -1]:
        with pytest.raises(StoreError, match="limit"):
            postgis_store.read("protection_targets", limit=limit)  # type: ignore[arg-type]
    assert postgis_store.delete("protection_targets", ["' OR '1'='1' --"]) == 0
    assert postgis_store.delete("protection_targets", INJECTIONS[:1]) == 1
    assert postgis_store.count("protection_targets") == len(INJECTIONS) - 1
    tables = {t for (t,) in query(postgis_url, "SELECT tablename FROM pg_tables")}
    assert {"chemical_plants", "buildings", "georisk_meta"} <= tables


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "cannot be reached"),
        ("mysql://root@localhost/georisk", "postgresql\\+psycopg"),
        ("not a url at all", "not valid"),
    ],
)
def test_connection_problems_are_told_in_plain_words(
    catalogue: Catalogue, url: str, message: str
) -> None:
    with pytest.raises(StoreError, match=message) as info:
        PostGISStore(catalogue, url).count("chemical_plants")
    assert "Connection refused" not in str(info.value)
    assert "sqlalche.me" not in str(info.value)


def test_a_plain_postgresql_url_uses_psycopg(postgis_url: str, catalogue: Catalogue) -> None:
    plain = make_url(postgis_url).set(drivername="postgresql")
    with PostGISStore(catalogue, plain.render_as_string(hide_password=False)) as store:
        assert store.url.drivername == "postgresql+psycopg"
        assert store.count("buildings") == 0


# -- bulk -------------------------------------------------------------------------------------


def test_100k_features_load_in_seconds(postgis_store: PostGISStore) -> None:
    frame = points(100_000)
    started = time.perf_counter()
    assert postgis_store.replace("protection_targets", frame).inserted == 100_000
    replaced = time.perf_counter() - started
    moved = points(100_000, seed=1)
    moved["id"] = [f"p{i:06d}" for i in range(50_000, 150_000)]
    started = time.perf_counter()
    result = postgis_store.upsert("protection_targets", moved)
    upserted = time.perf_counter() - started
    assert (result.inserted, result.updated) == (50_000, 50_000)
    assert replaced < 30 and upserted < 30, (replaced, upserted)
    assert postgis_store.count("protection_targets") == 150_000
    bbox = (105.0, 25.0, 110.0, 30.0)
    both = pd.concat([frame.iloc[:50_000], moved], ignore_index=True)
    expected = int(shapely.intersects(both.geometry.values, shapely.box(*bbox)).sum())
    assert postgis_store.count("protection_targets", bbox=bbox) == expected
