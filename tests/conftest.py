"""Shared fixtures: the shipped catalogue, a throw-away embedded store and a throw-away PostGIS."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import uvicorn
from affine import Affine
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from geo_service.api import create_app
from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.settings import Settings
from geo_service.store import Store, open_store
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore, upgrade

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def gpkg_store(tmp_path: Path, catalogue: Catalogue) -> GeoPackageStore:
    return GeoPackageStore(catalogue, tmp_path / "data")


# -- PostGIS: a real server, never skipped -----------------------------------------------------


def postgis_server() -> URL:
    """The server the PostGIS tests use (``GEORISK_TEST_DATABASE_URL``, else a local one)."""
    return make_url(os.environ.get("GEORISK_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))


def create_database(*, postgis: bool = True) -> URL:
    """A new, empty database ``georisk_test_<random>`` on the test server (PostGIS created).

    Fails the test (never skips it) when the server or the PostGIS extension is missing.
    """
    server = postgis_server()
    name = f"georisk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        pytest.fail(
            f"PostGIS tests need a PostgreSQL server at {server.render_as_string()} "
            f"(set GEORISK_TEST_DATABASE_URL); could not create a database: {exc.orig}",
            pytrace=False,
        )
    finally:
        admin.dispose()
    url = server.set(database=name)
    if postgis:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION postgis"))
        except DBAPIError as exc:
            drop_database(url)
            pytest.fail(
                f"the PostGIS extension is not available on {server.host}:{server.port}; "
                f"install PostGIS 3 there (the PostGIS tests never skip): {exc.orig}",
                pytrace=False,
            )
        finally:
            engine.dispose()
    return url


def drop_database(url: URL) -> None:
    admin = create_engine(postgis_server(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgis_url(catalogue: Catalogue) -> Iterator[str]:
    """URL of a throw-away database with PostGIS and the georisk schema, dropped at the end."""
    url = create_database()
    try:
        upgrade(url, catalogue)
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(url)


@pytest.fixture
def postgis_store(postgis_url: str, catalogue: Catalogue, tmp_path: Path) -> Iterator[PostGISStore]:
    """A PostGIS store on the session database, every table emptied first."""
    store = PostGISStore(catalogue, postgis_url, cache_dir=tmp_path / "raster-cache")
    with store.engine.begin() as conn:
        preparer = conn.dialect.identifier_preparer
        tables = ", ".join(preparer.format_table(t) for t in store.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables}"))
    yield store
    store.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the PostGIS fixtures ``postgis``."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if {"postgis_url", "postgis_store"} & set(fixtures):
            item.add_marker(pytest.mark.postgis)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A skipped PostGIS test is a failed one: the run must prove the PostGIS store works."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and item.get_closest_marker("postgis") is not None
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"a PostGIS test may not be skipped ({report.longrepr})"


@contextmanager
def filled_settings(
    kind: str,
    data_dir: Path,
    catalogue: Catalogue,
    fill: Callable[[Store], Any],
    **options: Any,
) -> Iterator[Settings]:
    """Settings of a fresh store of ``kind`` after ``fill``: a GeoPackage in ``data_dir``, or
    (``postgis``) a throw-away database of its own, migrated, and dropped afterwards.

    ``options`` are more settings (API keys, …).
    """
    if kind == "gpkg":
        settings = Settings(data_dir=data_dir, **options)
        with open_store(settings, catalogue) as store:
            fill(store)
        yield settings
        return
    url = create_database()
    try:
        upgrade(url, catalogue)
        settings = Settings(
            data_dir=data_dir, database_url=url.render_as_string(hide_password=False), **options
        )
        with open_store(settings, catalogue) as store:
            fill(store)
        yield settings
    finally:
        drop_database(url)


# -- the service on each store -----------------------------------------------------------------

STORES = ["gpkg", "postgis"]


@pytest.fixture(scope="module", params=STORES)
def settings(request: pytest.FixtureRequest) -> Settings:
    """The module's ``gpkg_settings``, then its ``postgis_settings``: each test runs on both."""
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The service over the module's ``settings``."""
    with TestClient(create_app(settings)) as client:
        yield client


# -- a live server for real HTTP clients -------------------------------------------------------


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port in a background thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- frames and rasters for the store tests ----------------------------------------------------

AWKWARD_IDS = [
    "a'b",
    'q"uote',
    "x'); DROP TABLE chemical_plants; --",
    "中文编号-1",
    "back\\slash",
    "tab\tand\nnewline",
]


@pytest.fixture
def plants() -> gpd.GeoDataFrame:
    """Chemical plants: points, polygons and multi-geometries, every field type, nulls, Chinese."""
    rng = np.random.default_rng(7)
    hand = gpd.GeoDataFrame(
        {
            "id": AWKWARD_IDS,
            "name": ["北京化工厂", None, "a\tb\\c\nd", "上海石化", "", "it's 'quoted'"],
            "processes": [
                ["nitration", "chlorination"],
                [],
                None,
                ["硝化", "含,逗号", 'quote"d'],
                ["other"],
                None,
            ],
            "major_hazard_grade": [1, None, 4, 2, None, 3],
            "size": ["small", None, "large", "medium", None, "small"],
            "relocation_deadline": [date(2024, 12, 31), None, date(2030, 1, 1), None, None, None],
            "employees": [120, None, 0, 2_000_000_000_000, None, 7],
            "in_chemical_park": [False, None, True, True, None, False],
            "risk_score": [87.5, None, 0.1, 100.0, 1e-12, None],
            "source_crs": ["EPSG:4547", None, "gcj02", "EPSG:4326", None, "bd09"],
        },
        geometry=[
            shapely.Point(116.30, 39.90),
            shapely.box(116.31, 39.91, 116.32, 39.92),
            shapely.Point(116.35, 39.95),
            shapely.Polygon(
                [(116.4, 39.8), (116.5, 39.8), (116.5, 39.9), (116.4, 39.9)],
                holes=[[(116.42, 39.82), (116.48, 39.82), (116.48, 39.88), (116.42, 39.88)]],
            ),
            shapely.MultiPoint([(116.2, 39.7), (116.21, 39.71)]),
            shapely.MultiPolygon([shapely.box(116.0, 39.5, 116.05, 39.55)]),
        ],
        crs=4326,
    )
    n = 150
    lon, lat = rng.uniform(115.8, 116.8, n), rng.uniform(39.5, 40.3, n)
    size = rng.uniform(0.0005, 0.01, n)
    geoms = np.where(
        rng.random(n) < 0.5,
        shapely.points(lon, lat),
        shapely.box(lon, lat, lon + size, lat + size),
    )
    choices = ["nitration", "phosgene", "hydrogenation", "oxidation"]
    generated = gpd.GeoDataFrame(
        {
            "id": [f"p{i:04d}" for i in range(n)],
            "name": [None if i % 7 == 0 else f"工厂 {i}" for i in range(n)],
            "processes": [
                None if i % 5 == 0 else list(rng.choice(choices, size=i % 3, replace=False))
                for i in range(n)
            ],
            "major_hazard_grade": [None if i % 4 == 0 else 1 + i % 4 for i in range(n)],
            "relocation_deadline": [
                None if i % 3 == 0 else date(2023, 1 + i % 12, 1 + i % 28) for i in range(n)
            ],
            "employees": rng.integers(0, 5000, n),
            "in_chemical_park": [None if i % 6 == 0 else bool(i % 2) for i in range(n)],
            "risk_score": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 100, n)),
            "source_crs": ["EPSG:4547"] * n,
        },
        geometry=geoms,
        crs=4326,
    )
    return gpd.GeoDataFrame(pd.concat([hand, generated], ignore_index=True), crs=4326)


@pytest.fixture
def roads() -> gpd.GeoDataFrame:
    """Road sections: line strings and multi-line strings with a list field."""
    rng = np.random.default_rng(11)
    n = 80
    starts = np.column_stack([rng.uniform(116.0, 116.6, n), rng.uniform(39.6, 40.2, n)])
    lines = [
        shapely.LineString([start, start + rng.uniform(-0.02, 0.02, 2), start + 0.01])
        for start in starts
    ]
    lines[0] = shapely.MultiLineString(
        [[(116.1, 39.9), (116.2, 39.9)], [(116.3, 39.9), (116.4, 40.0)]]
    )
    return gpd.GeoDataFrame(
        {
            "id": [f"r{i:03d}" for i in range(n)],
            "road_name": [f"G{i} 国道" if i % 3 else None for i in range(n)],
            "design_speed_kmh": [None if i % 4 == 0 else 40 + i for i in range(n)],
            "hazard_types": [
                ["sharp_curve_steep_slope", "fog_prone"] if i % 2 else None for i in range(n)
            ],
        },
        geometry=lines,
        crs=4326,
    )


@pytest.fixture
def make_geotiff(tmp_path: Path) -> Callable[..., Path]:
    """A factory of small GeoTIFFs in EPSG:4326 (``seed`` varies the cell values)."""

    def make(name: str = "dem.tif", seed: int = 0) -> Path:
        path = tmp_path / name
        data = np.random.default_rng(seed).uniform(0, 500, (1, 8, 10)).astype("float32")
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=10,
            height=8,
            count=1,
            dtype="float32",
            crs="EPSG:4326",
            transform=Affine(0.01, 0.0, 116.0, 0.0, -0.01, 40.0),
            nodata=-9999,
        ) as dst:
            dst.write(data)
        return path

    return make
