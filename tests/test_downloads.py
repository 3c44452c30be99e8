"""Downloads of a layer or a selection, on both stores, and ``georisk export LAYER``.

The same synthetic plants go into the embedded store and into a PostGIS database of this
module's own; every file is read back with the tools a user would use (pyogrio, ``ogrinfo``,
the csv module, geojson-pydantic) and compared with the data put in and with the items pages.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, MutableMapping
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import filled_settings
from fastapi.testclient import TestClient
from geojson_pydantic import Feature, FeatureCollection
from pyproj import Transformer
from shapely.geometry import Point, box

from geo_service.api import create_app
from geo_service.api.downloads import CHUNK_SIZE, write_file
from geo_service.catalogue import Catalogue
from geo_service.settings import Settings
from geo_service.store import Store, StoreError
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore

N = 2 * CHUNK_SIZE + 123  # three chunks
SIZES = ["small", "medium", "large", None]
NAMES = ["红星化工", 'it\'s, "quoted"', None, "北京化工厂", "a\nb"]
FIELDS = ["name", "processes", "major_hazard_grade", "size", "relocation_deadline"]
FIELDS += ["employees", "in_chemical_park", "risk_score"]
LEAK_MARKERS = ["Traceback", "psycopg", "sqlalchemy", "SELECT", "pygeofilter"]
NO_GZIP = {"Accept-Encoding": "identity"}


def plant_rows() -> list[dict[str, Any]]:
    """Plants with every field type, nulls, Chinese text, points and polygons."""
    rows = []
    for i in range(N):
        lon, lat = 110.0 + (i % 80) * 0.05, 30.0 + (i // 80) * 0.05
        rows.append(
            {
                "id": f"p{i:05d}",
                "name": NAMES[i % len(NAMES)],
                "processes": None if i % 3 == 0 else ["nitration", "硝化"][: 1 + i % 2],
                "major_hazard_grade": None if i % 5 == 0 else 1 + i % 4,
                "size": SIZES[i % 4],
                "relocation_deadline": None if i % 4 == 1 else date(2021 + i % 3, 1 + i % 12, 1),
                "employees": None if i % 7 == 3 else i * 3,
                "in_chemical_park": None if i % 6 == 5 else bool(i % 2),
                "risk_score": None if i % 9 == 4 else round(i * 0.01, 2),
                "source_crs": "EPSG:4547" if i % 2 else None,
                "geometry": Point(lon, lat) if i % 3 else box(lon, lat, lon + 0.01, lat + 0.01),
            }
        )
    return rows


PLANTS = plant_rows()
BY_ID = {row["id"]: row for row in PLANTS}


# -- the service on each store ----------------------------------------------------------------


def _fill(store: Store) -> None:
    store.replace("chemical_plants", gpd.GeoDataFrame(PLANTS, crs=4326))


@pytest.fixture(scope="module")
def gpkg_settings(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("downloads-gpkg")
    with filled_settings("gpkg", folder, catalogue, _fill) as settings:
        yield settings


@pytest.fixture(scope="module")
def postgis_settings(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("downloads-pg")
    with filled_settings("postgis", folder, catalogue, _fill) as settings:
        yield settings


def download(client: TestClient, fmt: str, **params: Any) -> bytes:
    response = client.get(
        "/collections/chemical_plants/download", params={"f": fmt, **params}, headers=NO_GZIP
    )
    assert response.status_code == 200, response.text
    return response.content


def item_ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/collections/chemical_plants/items", params={"limit": N, **params})
    assert response.status_code == 200, response.text
    return [feature["id"] for feature in response.json()["features"]]


def read_gpkg(content: bytes, tmp_path: Path) -> gpd.GeoDataFrame:
    path = tmp_path / "download.gpkg"
    path.write_bytes(content)
    assert [str(name) for name, _ in pyogrio.list_layers(path)] == ["chemical_plants"]
    return pyogrio.read_dataframe(path, layer="chemical_plants")


def csv_rows(content: bytes) -> list[dict[str, str]]:
    assert content.startswith("\ufeff".encode())  # spreadsheet programs read Chinese right
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def same_value(name: str, got: Any, expected: Any) -> bool:
    """A value read back from a file equals the one put in (files have no null list or int)."""
    if expected is None:
        return got is None or got == "" or pd.isna(got)
    if name == "processes" and isinstance(got, str):
        got = json.loads(got)
    if name == "relocation_deadline":
        return pd.Timestamp(got).date() == expected
    if name == "in_chemical_park" and isinstance(got, str):
        return got == ("true" if expected else "false")
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return float(got) == float(expected)
    return bool(got == expected)


def assert_plants(rows: list[dict[str, Any]], ids: list[str] | None = None) -> None:
    """Rows (id, fields, geometry) read back hold exactly the plants put in."""
    assert [row["id"] for row in rows] == (ids if ids is not None else sorted(BY_ID))
    for row in rows:
        source = BY_ID[row["id"]]
        for name in FIELDS:
            assert same_value(name, row[name], source[name]), (row["id"], name, row[name])
        geometry = row["geometry"]
        if isinstance(geometry, str):
            geometry = shapely.from_wkt(geometry)
        elif isinstance(geometry, dict):
            geometry = shapely.geometry.shape(geometry)
        assert geometry.equals_exact(source["geometry"], 1e-9), row["id"]


# -- every format, the whole layer ------------------------------------------------------------


def test_geojson_download_is_valid_geojson_with_every_feature(client: TestClient) -> None:
    response = client.get("/collections/chemical_plants/download", headers=NO_GZIP)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-disposition"] == (
        'attachment; filename="chemical_plants.geojson"'
    )
    collection = FeatureCollection.model_validate(response.json())
    assert len(collection.features) == N
    rows = [
        {"id": f["id"], **f["properties"], "geometry": f["geometry"]}
        for f in response.json()["features"]
    ]
    assert_plants(rows)


def test_geopackage_download_has_the_catalogue_types_and_ogrinfo_reads_it(
    client: TestClient, tmp_path: Path
) -> None:
    response = client.get("/collections/chemical_plants/download?f=gpkg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert 'filename="chemical_plants.gpkg"' in response.headers["content-disposition"]
    frame = read_gpkg(response.content, tmp_path)
    assert_plants(frame.to_dict("records"))
    summary = subprocess.run(
        ["ogrinfo", "-so", str(tmp_path / "download.gpkg"), "chemical_plants"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"Feature Count: {N}" in summary.stdout
    for typed in [
        "relocation_deadline: Date",
        "major_hazard_grade: Integer64",
        "risk_score: Real",
        "in_chemical_park: Integer(Boolean)",
        "name: String",
    ]:
        assert typed in summary.stdout, typed
    assert 'ID["EPSG",4326]' in summary.stdout
    assert "Warning" not in summary.stderr  # GDAL 3.6 reads it without complaint


def test_csv_download_has_a_bom_a_header_and_every_row(client: TestClient) -> None:
    content = download(client, "csv")
    header = content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[0] == "id" and header[-2:] == ["source_crs", "geometry"]
    assert set(FIELDS) <= set(header)
    assert_plants(csv_rows(content))


def test_ndjson_download_is_one_feature_a_line(client: TestClient) -> None:
    lines = download(client, "ndjson").decode().splitlines()
    features = [json.loads(line) for line in lines]
    for feature in features[:50]:
        Feature.model_validate(feature)
    assert_plants([{"id": f["id"], **f["properties"], "geometry": f["geometry"]} for f in features])


# -- filters: the same as the items pages --------------------------------------------------

FILTERS: list[dict[str, str]] = [
    {"filter": "major_hazard_grade <= 2 AND size = 'small'"},
    {"filter": '{"op": "isNull", "args": [{"property": "name"}]}', "filter-lang": "cql2-json"},
    {"bbox": "110.5,30.5,111.5,31.2"},
    {"size": "large"},
    {"datetime": "2022-01-01/2022-06-30"},
    {"filter": "S_INTERSECTS(geometry, BBOX(112,30,113,31))", "in_chemical_park": "true"},
]


@pytest.mark.parametrize("params", FILTERS, ids=[str(p) for p in FILTERS])
def test_a_filtered_download_holds_what_items_select(
    client: TestClient, params: dict[str, str], tmp_path: Path
) -> None:
    expected = item_ids(client, **params)
    assert 0 < len(expected) < N
    response = client.get(
        "/collections/chemical_plants/download", params=params | {"f": "csv"}, headers=NO_GZIP
    )
    assert 'filename="chemical_plants-filtered.csv"' in response.headers["content-disposition"]
    assert [row["id"] for row in csv_rows(response.content)] == expected
    features = json.loads(download(client, "geojson", **params))["features"]
    assert [f["id"] for f in features] == expected
    frame = read_gpkg(download(client, "gpkg", **params), tmp_path)
    assert_plants(frame.to_dict("records"), expected)


def test_sortby_properties_and_crs_apply_as_on_the_items_pages(
    client: TestClient, tmp_path: Path
) -> None:
    params = {"sortby": "-risk_score", "properties": "name,risk_score"}
    features = json.loads(download(client, "geojson", **params))["features"]
    assert [f["id"] for f in features] == item_ids(client, **params)
    assert {tuple(f["properties"]) for f in features} == {("name", "risk_score")}
    assert (
        'filename="chemical_plants.ndjson"'
        in client.get(
            "/collections/chemical_plants/download", params={"f": "ndjson", **params}
        ).headers["content-disposition"]
    )  # sorting and choosing properties is not filtering

    frame = read_gpkg(download(client, "gpkg", crs="EPSG:3857", **params), tmp_path)
    assert list(frame.columns) == ["id", "name", "risk_score", "geometry"]
    assert frame.crs.to_epsg() == 3857
    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    first = BY_ID[frame["id"][0]]["geometry"]
    expected = shapely.transform(first, lambda xy: np.column_stack(to_mercator.transform(*xy.T)))
    assert frame.geometry[0].equals_exact(expected, 1e-3)


def test_items_pages_come_as_geopackage_too(client: TestClient, tmp_path: Path) -> None:
    params = {"filter": "size = 'small'", "limit": 700, "offset": 300}
    response = client.get("/collections/chemical_plants/items", params={"f": "gpkg", **params})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert 'filename="chemical_plants.gpkg"' in response.headers["content-disposition"]
    frame = read_gpkg(response.content, tmp_path)
    assert_plants(frame.to_dict("records"), item_ids(client, **params))
    by_accept = client.get(
        "/collections/chemical_plants/items",
        params={"limit": 5},
        headers={"Accept": "application/geopackage+sqlite3"},
    )
    assert len(read_gpkg(by_accept.content, tmp_path)) == 5
    page = client.get("/collections/chemical_plants/items", params={"limit": 5}).json()
    assert any(link["type"] == "application/geopackage+sqlite3" for link in page["links"])


# -- links and errors -----------------------------------------------------------------------


def test_collections_link_every_download_as_an_enclosure(client: TestClient) -> None:
    document = client.get("/collections/chemical_plants").json()
    enclosures = {
        link["type"]: link["href"] for link in document["links"] if link["rel"] == "enclosure"
    }
    assert set(enclosures) == {
        "application/geo+json",
        "application/geopackage+sqlite3",
        "text/csv",
        "application/x-ndjson",
    }
    listed = client.get("/collections").json()["collections"]
    assert any(link["rel"] == "enclosure" for link in listed[0]["links"])
    page = client.get("/collections/chemical_plants?f=html").text
    for href in enclosures.values():
        assert f'href="{href}"' in page
    response = client.get(enclosures["text/csv"].replace("http://testserver", ""))
    assert response.status_code == 200 and len(csv_rows(response.content)) == N


def test_every_download_parameter_is_documented(client: TestClient) -> None:
    operation = client.get("/api").json()["paths"]["/collections/{collection_id}/download"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    for name in ["f", "bbox", "bbox-crs", "crs", "filter", "filter-lang", "filter-crs"]:
        assert params[name].get("description"), name
    for name in ["sortby", "properties", "datetime", "collection_id"]:
        assert params[name].get("description"), name
    assert "limit" not in params  # a download has no page
    assert set(operation["responses"]["200"]["content"]) >= {"application/geopackage+sqlite3"}


BAD = [
    ({"f": "shp"}, "f"),
    ({"f": "xlsx"}, "f"),
    ({"filter": "nope = 1"}, "filter"),
    ({"filter": "size = "}, "filter"),
    ({"filter": "size = 'x'; DROP TABLE chemical_plants; --"}, "filter"),
    ({"bbox": "1,2,3"}, "bbox"),
    ({"crs": "EPSG:2000"}, "crs"),
    ({"no_such_field": "1"}, "no_such_field"),
    ({"sortby": "nope"}, "sortby"),
    ({"properties": "nope"}, "properties"),
]


@pytest.mark.parametrize(("params", "named"), BAD, ids=[str(p) for p, _ in BAD])
def test_a_bad_parameter_is_a_400_naming_it(
    client: TestClient, params: dict[str, str], named: str
) -> None:
    response = client.get("/collections/chemical_plants/download", params=params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith(named) or f"'{named}'" in detail, detail
    assert not any(marker in response.text for marker in LEAK_MARKERS)


@pytest.mark.parametrize("collection", ["nope", "dem", "chemical_plants' OR '1'='1"])
def test_an_unknown_or_raster_collection_is_a_404(client: TestClient, collection: str) -> None:
    response = client.get(f"/collections/{collection}/download")
    assert response.status_code == 404
    assert response.json()["code"] in {"not_found", "layer_not_found"}


def test_an_empty_selection_is_an_empty_file(client: TestClient, tmp_path: Path) -> None:
    nothing = {"filter": "major_hazard_grade > 100"}
    assert json.loads(download(client, "geojson", **nothing))["features"] == []
    assert csv_rows(download(client, "csv", **nothing)) == []
    assert download(client, "ndjson", **nothing) == b""
    assert len(read_gpkg(download(client, "gpkg", **nothing), tmp_path)) == 0


# -- streaming: chunk by chunk, never the whole layer ------------------------------------------


class Counting:
    """A store mixin that counts whole-layer reads and the chunks it streams."""

    reads = 0
    chunks = 0

    def read(self, *args: Any, **kwargs: Any) -> gpd.GeoDataFrame:
        self.reads += 1
        return super().read(*args, **kwargs)  # type: ignore[misc]

    def iter_query(self, *args: Any, **kwargs: Any) -> Iterator[gpd.GeoDataFrame]:
        for chunk in super().iter_query(*args, **kwargs):  # type: ignore[misc]
            self.chunks += 1
            yield chunk


class CountingGeoPackageStore(Counting, GeoPackageStore):
    """The embedded store, counting."""


class CountingPostGISStore(Counting, PostGISStore):
    """The PostGIS store, counting."""


class BodyParts:
    """ASGI middleware counting the body parts of each response as the server sends them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.parts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                self.parts += 1
            await send(message)

        await self.app(scope, receive, counted)


def counting_store(settings: Settings, catalogue: Catalogue) -> Store:
    if settings.database_url:
        return CountingPostGISStore(catalogue, settings.database_url)
    return CountingGeoPackageStore(catalogue, settings.data_dir)


@pytest.mark.parametrize("fmt", ["geojson", "csv", "ndjson", "gpkg"])
def test_a_download_streams_chunk_by_chunk_and_never_reads_the_whole_layer(
    settings: Settings, catalogue: Catalogue, fmt: str
) -> None:
    app = create_app(settings)
    counted = BodyParts(app)
    store = counting_store(settings, catalogue)
    with TestClient(counted) as client:
        app.state.store = store
        response = client.get(f"/collections/chemical_plants/download?f={fmt}", headers=NO_GZIP)
    store.close()
    assert response.status_code == 200
    assert store.reads == 0
    assert store.chunks == -(-N // CHUNK_SIZE)  # three chunks of at most CHUNK_SIZE
    if fmt != "gpkg":  # a GeoPackage is a file: sent in parts too, but not one per chunk
        assert counted.parts >= store.chunks
    assert len(response.content) > 100_000


class Failing:
    """A store mixin whose scans fail after ``good`` chunks, as a dropped connection would."""

    good = 0

    def iter_query(self, *args: Any, **kwargs: Any) -> Iterator[gpd.GeoDataFrame]:
        chunks = super().iter_query(*args, **kwargs)  # type: ignore[misc]
        for _ in range(self.good):
            yield next(chunks)
        raise StoreError("connection to server lost")


class FailingGeoPackageStore(Failing, GeoPackageStore):
    """The embedded store, failing."""


class FailingPostGISStore(Failing, PostGISStore):
    """The PostGIS store, failing."""


@pytest.mark.parametrize("fmt", ["geojson", "csv", "ndjson", "gpkg"])
def test_a_store_failure_is_a_503_and_leaves_no_temporary_file(
    settings: Settings,
    catalogue: Catalogue,
    fmt: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where GeoPackages are built
    failing: Store = (
        FailingPostGISStore(catalogue, settings.database_url)
        if settings.database_url
        else FailingGeoPackageStore(catalogue, settings.data_dir)
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/collections/chemical_plants/download?f=gpkg").status_code == 200
        app.state.store = failing
        response = client.get(f"/collections/chemical_plants/download?f={fmt}")
    failing.close()
    assert response.status_code == 503
    assert response.json()["code"] == "store_unavailable"
    assert "connection" not in response.text
    assert list(tmp_path.iterdir()) == []  # the sent GeoPackage and the failed one are gone


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "csv", "ndjson"])
def test_a_file_export_that_fails_halfway_leaves_no_file(
    gpkg_settings: Settings, catalogue: Catalogue, fmt: str, tmp_path: Path
) -> None:
    store = FailingGeoPackageStore(catalogue, gpkg_settings.data_dir)
    store.good = 1
    target = tmp_path / f"plants.{fmt}"
    target.write_text("an older file")
    with pytest.raises(StoreError, match="connection to server lost"):
        write_file(catalogue["chemical_plants"], store.iter_query("chemical_plants"), target, fmt)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_text() == "an older file"


# -- the CLI ------------------------------------------------------------------------------


def georisk(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEORISK_DATA_DIR": str(settings.data_dir)}
    env.pop("GEORISK_DATABASE_URL", None)
    if settings.database_url:
        env["GEORISK_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "geo_service", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_exports_a_layer_in_every_format(settings: Settings, tmp_path: Path) -> None:
    for fmt in ["geojson", "gpkg", "csv", "ndjson"]:
        out = tmp_path / f"plants.{fmt}"
        result = georisk(settings, "export", "chemical_plants", "-o", str(out))  # by extension
        assert result.returncode == 0, result.stderr
        assert f"{N} features" in result.stdout
        if fmt == "gpkg":
            rows = pyogrio.read_dataframe(out, layer="chemical_plants").to_dict("records")
        elif fmt == "csv":
            rows = csv_rows(out.read_bytes())
        else:
            text = out.read_text()
            features = (
                json.loads(text)["features"]
                if fmt == "geojson"
                else [json.loads(line) for line in text.splitlines()]
            )
            rows = [{"id": f["id"], **f["properties"], "geometry": f["geometry"]} for f in features]
        assert_plants(rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"plants.{fmt}" for fmt in ["geojson", "gpkg", "csv", "ndjson"]
    )  # nothing left over from writing


def test_cli_filter_and_bbox_select_what_items_select(
    settings: Settings, client: TestClient, tmp_path: Path
) -> None:
    out = tmp_path / "some.gpkg"
    cql = "major_hazard_grade <= 2 AND size = 'small'"
    bbox = "110.5,30.5,111.5,31.2"
    result = georisk(
        settings,
        "export",
        "chemical_plants",
        "-f",
        "gpkg",
        "-o",
        str(out),
        "--filter",
        cql,
        "--bbox",
        bbox,
    )
    assert result.returncode == 0, result.stderr
    expected = item_ids(client, filter=cql, bbox=bbox)
    assert len(expected) > 0
    assert_plants(pyogrio.read_dataframe(out).to_dict("records"), expected)


def test_cli_findings_export_as_the_list_or_as_a_layer(
    gpkg_settings: Settings, tmp_path: Path
) -> None:
    as_list = georisk(gpkg_settings, "export", "findings", "-o", str(tmp_path / "list.xlsx"))
    assert as_list.returncode == 0, as_list.stderr
    assert "0 findings" in as_list.stdout
    assert openpyxl.load_workbook(tmp_path / "list.xlsx").sheetnames
    as_layer = georisk(gpkg_settings, "export", "findings", "-o", str(tmp_path / "layer.gpkg"))
    assert as_layer.returncode == 0, as_layer.stderr
    assert "0 features of findings" in as_layer.stdout
    assert [str(name) for name, _ in pyogrio.list_layers(tmp_path / "layer.gpkg")] == ["findings"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["nope", "-o", "{dir}/x.geojson"], "'nope'"),
        (["dem", "-o", "{dir}/x.geojson"], "'dem'"),
        (["chemical_plants", "-o", "{dir}/x.geojson", "--filter", "nope = 1"], "filter"),
        (["chemical_plants", "-o", "{dir}/x.geojson", "--bbox", "1,2"], "bbox"),
        (["chemical_plants", "-o", "{dir}/no/such/folder/x.csv"], "does not exist"),
        (["chemical_plants", "-o", "{dir}"], "{dir}"),
        (["chemical_plants", "-f", "xlsx", "-o", "{dir}/x.xlsx"], "xlsx"),
        (["chemical_plants", "-o", "{dir}/x.csv", "--status", "identified"], "--status"),
    ],
)
def test_cli_errors_name_the_problem_exit_2_and_leave_no_file(
    gpkg_settings: Settings, tmp_path: Path, args: list[str], named: str
) -> None:
    kept = tmp_path / "x.geojson"
    kept.write_text("an older file")
    args = [arg.format(dir=tmp_path) for arg in args]
    result = georisk(gpkg_settings, "export", *args)
    assert result.returncode == 2, result.stderr
    assert named.format(dir=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.geojson"]
    assert kept.read_text() == "an older file"
