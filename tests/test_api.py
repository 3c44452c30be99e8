"""The web service: layers as JSON and GeoJSON, the landing page and the offline map page."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from geojson_pydantic import FeatureCollection
from shapely.geometry import LineString, Point, Polygon

from geo_service.api import create_app
from geo_service.assets import STATIC_DIR, fetch_assets
from geo_service.catalogue import load_catalogue
from geo_service.settings import Settings
from geo_service.store import open_store

ADMIN_RING = [(116.0, 39.0), (117.0, 39.0), (117.0, 40.0), (116.0, 40.0)]


def sample_frames() -> dict[str, gpd.GeoDataFrame]:
    """A few features in four layers: points, lines, polygons; dates, lists, booleans, nulls."""
    plants = gpd.GeoDataFrame(
        {
            "id": ["p1", "p2", "p3"],
            "name": ["红星化工 <b>有限公司</b>", "Blue Chem", "无等级厂"],
            "processes": [["nitration", "chlorination"], None, ["other"]],
            "major_hazard_grade": [1, None, 3],
            "relocation_deadline": [pd.Timestamp("2022-12-31"), None, None],
            "in_chemical_park": [False, True, None],
            "employees": [120, 35, None],
            "risk_class": ["red", "blue", None],
        },
        geometry=[
            Point(116.40123456789, 39.90987654321),
            Point(116.5, 39.95),
            Polygon([(116.6, 39.6), (116.62, 39.6), (116.62, 39.62), (116.6, 39.62)]),
        ],
        crs=4326,
    )
    targets = gpd.GeoDataFrame(
        {"id": ["t1", "t2"], "name": ["第一小学", "人民医院"], "category": ["school", "hospital"]},
        geometry=[Point(116.35, 39.85), Point(116.45, 39.93)],
        crs=4326,
    )
    rail = gpd.GeoDataFrame(
        {"id": ["r1"], "line_name": ["京沪高铁"], "rail_type": ["high_speed"]},
        geometry=[LineString([(116.3, 39.8), (116.7, 39.99)])],
        crs=4326,
    )
    # clockwise exterior ring: the GeoJSON must wind it counter-clockwise (RFC 7946)
    admin = gpd.GeoDataFrame(
        {"id": ["110101"], "admin_code": ["110101"], "name": ["东城区"], "level": ["county"]},
        geometry=[Polygon(ADMIN_RING[::-1])],
        crs=4326,
    )
    return {
        "chemical_plants": plants,
        "protection_targets": targets,
        "rail_corridors": rail,
        "admin_areas": admin,
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("georisk-data")
    settings = Settings(data_dir=data_dir)
    with open_store(settings) as store:
        for layer_id, frame in sample_frames().items():
            store.upsert(layer_id, frame)
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    fetch_assets()  # the map page needs the front-end files: fetched once, then verified only
    with TestClient(create_app(settings)) as client:
        yield client


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["catalogue_version"] == load_catalogue().version


def test_layers_lists_every_layer_with_counts(client: TestClient) -> None:
    layers = {item["id"]: item for item in client.get("/layers").json()}
    assert set(layers) == set(load_catalogue().layers)
    plants = layers["chemical_plants"]
    assert plants["title"] == {"zh": "危险化学品生产企业", "en": "Hazardous-chemical plants"}
    assert plants["kind"] == "vector"
    assert plants["geometry"] == ["Point", "Polygon"]
    assert plants["count"] == 3
    assert plants["geojson"] == "/layers/chemical_plants.geojson"
    assert layers["buildings"]["count"] == 0
    assert layers["dem"]["kind"] == "raster"
    assert layers["dem"]["count"] is None


def test_geojson_is_a_valid_rfc7946_feature_collection(client: TestClient) -> None:
    response = client.get("/layers/chemical_plants.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    collection: FeatureCollection[Any] = FeatureCollection.model_validate(response.json())
    assert [f.id for f in collection.features] == ["p1", "p2", "p3"]
    p1, p2, _ = response.json()["features"]
    assert p1["geometry"] == {"type": "Point", "coordinates": [116.40123456789, 39.90987654321]}
    assert p1["properties"]["relocation_deadline"] == "2022-12-31"
    assert p1["properties"]["processes"] == ["nitration", "chlorination"]
    assert p1["properties"]["major_hazard_grade"] == 1
    assert p1["properties"]["in_chemical_park"] is False
    assert p1["properties"]["name"] == "红星化工 <b>有限公司</b>"
    assert p2["properties"]["processes"] is None
    assert p2["properties"]["relocation_deadline"] is None


def test_geojson_polygons_wind_counter_clockwise(client: TestClient) -> None:
    feature = client.get("/layers/admin_areas.geojson").json()["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    signed_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairwise(ring))
    assert signed_area > 0


def test_geojson_bbox_and_limit(client: TestClient) -> None:
    box = client.get("/layers/chemical_plants.geojson", params={"bbox": "116.45,39.9,116.55,40"})
    assert [f["id"] for f in box.json()["features"]] == ["p2"]
    page = client.get("/layers/chemical_plants.geojson", params={"limit": 1, "offset": 1})
    assert [f["id"] for f in page.json()["features"]] == ["p2"]


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "117,39,116,40", "0,0,0,91", "nan,0,1,1"])
def test_a_bad_bbox_is_a_400_naming_it(client: TestClient, bbox: str) -> None:
    response = client.get("/layers/chemical_plants.geojson", params={"bbox": bbox})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"bbox {bbox!r}")


@pytest.mark.parametrize(
    "layer_id",
    ["no_such_layer", "chemical_plants' OR 1=1 --", "..%5Cetc%5Cpasswd", "CHEMICAL_PLANTS"],
)
def test_an_unknown_layer_is_a_404_json_naming_it(client: TestClient, layer_id: str) -> None:
    response = client.get(f"/layers/{layer_id}.geojson")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == "layer_not_found"
    assert "unknown layer" in body["detail"]
    assert "chemical_plants" in body["detail"]  # the known layers are listed
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/nowhere", "/layers/..%2F..%2Fetc%2Fpasswd.geojson"])
def test_an_unknown_path_is_a_404_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_raster_layer_has_no_geojson(client: TestClient) -> None:
    response = client.get("/layers/dem.geojson")
    assert response.status_code == 404
    assert "raster" in response.json()["detail"]


def test_landing_page_lists_layers_and_links(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": "text/html"})  # as a browser asks; JSON else
    assert response.status_code == 200
    page = response.text
    assert 'href="/map"' in page
    for layer in load_catalogue().layers.values():
        assert layer.title.zh in page
        if layer.kind == "vector":
            assert f'href="/layers/{layer.id}.geojson"' in page


def _external_links(page: str) -> list[str]:
    """src/href of every script, stylesheet or image that is not served by georisk itself."""
    tags = re.findall(r"<(?:script|link|img)\b[^>]*>", page)
    urls = [u for tag in tags for u in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', tag)]
    return [u for u in urls if not u.startswith("/") or u.startswith("//")]


def test_map_page_with_a_bad_lang_is_a_422_naming_it(client: TestClient) -> None:
    response = client.get("/map", params={"lang": "fr"})
    assert response.status_code == 422
    assert "lang" in response.text


def test_api_docs_are_served_from_vendor_files(client: TestClient) -> None:
    page = client.get("/docs").text
    assert _external_links(page) == []
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert client.get("/openapi.json").json()["info"]["title"] == "georisk"
    assert client.get("/redoc").status_code == 404


def test_map_without_front_end_files_is_a_503_saying_what_to_run(
    settings: Settings, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static, ignore=shutil.ignore_patterns("vendor"))
    with TestClient(create_app(settings, static_dir=static)) as bare:
        response = bare.get("/map")
        docs = bare.get("/docs")
    assert docs.status_code == 503
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "georisk assets fetch" in response.text
    assert "python -m geo_service.assets" in response.text


def test_an_unexpected_error_is_a_500_without_traceback(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret database detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "detail": "internal error; the server log has details",
    }


def test_favicon_is_served(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "image/svg+xml"
    )
    assert b"#e53935" in response.content
