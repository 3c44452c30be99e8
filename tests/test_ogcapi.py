"""OGC API – Features on both stores: documents, paging, filters, CRS, formats, errors, clients.

The same synthetic data goes into the embedded store and into a PostGIS database of this
module's own; every expected answer is computed here in plain Python from that data, so
agreeing with it on both stores is store parity too.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import STORES, filled_settings, live_server
from fastapi.testclient import TestClient
from geojson_pydantic import Feature, FeatureCollection
from owslib.ogcapi.features import Features
from pyproj import Transformer
from shapely.geometry import Point, box

from geo_service.api import create_app
from geo_service.catalogue import Catalogue, Layer
from geo_service.settings import Settings
from geo_service.store import Store, open_store

N_BUILDINGS = 2600  # more than one streamed chunk (1,000)
SIZES = ["small", "medium", "large", None]
AWKWARD = ["a'b", "x'); DROP TABLE chemical_plants; --", "中文编号-1", "p%_1", "slash/id"]
NAMES = ["红星化工", "it's quoted", "100%纯", "a_b", "Zeta", "alpha", None, "北京化工厂"]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
LEAK_MARKERS = ["Traceback", "psycopg", "sqlalchemy", "SELECT", "syntax error", "pygeofilter"]


# -- data ---------------------------------------------------------------------------------


def plant_rows() -> list[dict[str, Any]]:
    """Chemical plants with every field type, nulls, awkward ids and names, points and polygons."""
    rows = []
    ids = AWKWARD + [f"p{i:03d}" for i in range(55)]
    for i, plant_id in enumerate(ids):
        lon, lat = 116.0 + (i % 10) * 0.09, 39.5 + (i // 10) * 0.12
        geometry = Point(lon, lat) if i % 3 else box(lon, lat, lon + 0.02, lat + 0.015)
        rows.append(
            {
                "id": plant_id,
                "name": NAMES[i % len(NAMES)],
                "major_hazard_grade": None if i % 5 == 0 else 1 + i % 4,
                "size": SIZES[i % 4],
                "relocation_deadline": None
                if i % 4 == 1
                else date(2021 + i % 3, 1 + i % 12, 1 + i % 27),
                "employees": None if i % 7 == 3 else (i * 37) % 500,
                "in_chemical_park": None if i % 6 == 5 else bool(i % 2),
                "risk_score": None if i % 9 == 4 else round(i * 1.7, 2),
                "geometry": geometry,
            }
        )
    return rows


def finding_rows() -> list[dict[str, Any]]:
    classes, statuses = (
        ["red", "orange", "yellow", "blue"],
        ["identified", "rectifying", "verified"],
    )
    return [
        {
            "id": f"f{i:02d}",
            "rule": "plant_protective_distance",
            "hazard_layer": "chemical_plants",
            "hazard_id": f"p{i:03d}",
            "risk_class": classes[i % 4],
            "status": statuses[i % 3],
            "deadline": date(2022, 1 + i % 12, 28),
            "geometry": Point(116.0 + i * 0.01, 39.6),
        }
        for i in range(24)
    ]


def building_rows() -> list[dict[str, Any]]:
    return [
        {
            "id": f"b{i:05d}",
            "height_m": float(i % 97),
            "floors": i % 30,
            "use": "residential" if i % 2 else "commercial",
            "geometry": box(
                116.0 + (i % 52) * 0.01,
                39.5 + (i // 52) * 0.01,
                116.005 + (i % 52) * 0.01,
                39.505 + (i // 52) * 0.01,
            ),
        }
        for i in range(N_BUILDINGS)
    ]


DATA = {"chemical_plants": plant_rows(), "findings": finding_rows(), "buildings": building_rows()}
PLANTS = DATA["chemical_plants"]


def frame(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def ids_where(
    predicate: Callable[[dict[str, Any]], bool], rows: list[dict[str, Any]] = PLANTS
) -> list[str]:
    return sorted(row["id"] for row in rows if predicate(row))


# -- the service on each store --------------------------------------------------------------


def _fill(store: Store) -> None:
    for layer_id, rows in DATA.items():
        store.replace(layer_id, frame(rows))


@pytest.fixture(scope="module")
def gpkg_settings(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    with filled_settings("gpkg", tmp_path_factory.mktemp("ogc-gpkg"), catalogue, _fill) as settings:
        yield settings


@pytest.fixture(scope="module")
def postgis_settings(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    with filled_settings(
        "postgis", tmp_path_factory.mktemp("ogc-pg"), catalogue, _fill
    ) as settings:
        yield settings


def items(client: TestClient, collection: str = "chemical_plants", **params: Any) -> dict[str, Any]:
    response = client.get(f"/collections/{collection}/items", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def item_ids(client: TestClient, collection: str = "chemical_plants", **params: Any) -> list[str]:
    return [f["id"] for f in items(client, collection, **params)["features"]]


# -- documents ------------------------------------------------------------------------------


def test_landing_page_links_api_conformance_and_collections(client: TestClient) -> None:
    body = client.get("/", headers={"Accept": "application/json"}).json()
    rels = {link["rel"]: link for link in body["links"]}
    assert rels["service-desc"]["href"].endswith("/api")
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["conformance"]["href"].endswith("/conformance")
    assert rels["data"]["href"].endswith("/collections")
    assert client.get("/api").json()["info"]["title"] == "georisk"
    assert "<html" in client.get("/", headers={"Accept": "text/html"}).text


def test_conformance_names_the_classes_implemented(client: TestClient) -> None:
    classes = set(client.get("/conformance").json()["conformsTo"])
    for suffix in [
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-1/1.0/conf/geojson",
        "ogcapi-features-1/1.0/conf/html",
        "ogcapi-features-1/1.0/conf/oas30",
        "ogcapi-features-2/1.0/conf/crs",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/features-filter",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "cql2/1.0/conf/basic-cql2",
    ]:
        assert f"http://www.opengis.net/spec/{suffix}" in classes
    assert not any("temporal-functions" in c for c in classes)  # only partly implemented


def test_collections_are_the_vector_layers_with_extents_from_the_data(
    client: TestClient, catalogue: Catalogue
) -> None:
    body = client.get("/collections").json()
    found = {c["id"]: c for c in body["collections"]}
    assert set(found) == {layer.id for layer in catalogue.vector_layers}
    assert "findings" in found and "dem" not in found
    plants = found["chemical_plants"]
    assert plants["itemType"] == "feature"
    assert plants["storageCrs"] == CRS84
    assert set(plants["crs"]) == {CRS84, *(EPSG.format(c) for c in (4326, 4490, 3857))}
    expected = shapely.total_bounds([row["geometry"] for row in PLANTS])
    assert np.allclose(plants["extent"]["spatial"]["bbox"][0], expected)
    dates = sorted(r["relocation_deadline"] for r in PLANTS if r["relocation_deadline"])
    assert plants["extent"]["temporal"]["interval"] == [
        [dates[0].isoformat(), dates[-1].isoformat()]
    ]
    assert "extent" not in found["mines"]  # empty layer
    one = client.get("/collections/findings").json()
    assert one["id"] == "findings" and one["extent"]["temporal"]["interval"][0][0] == "2022-01-28"
    assert {link["rel"] for link in one["links"]} >= {"self", "alternate", "items", "queryables"}


def test_queryables_are_a_json_schema_from_the_catalogue(client: TestClient) -> None:
    response = client.get("/collections/chemical_plants/queryables")
    assert response.headers["content-type"] == "application/schema+json"
    props = response.json()["properties"]
    assert props["size"] == {
        "title": "企业规模 · Size",
        "type": "string",
        "enum": ["small", "medium", "large"],
    }
    assert props["relocation_deadline"]["format"] == "date"
    assert props["major_hazard_grade"]["type"] == "integer"
    assert props["geometry"]["format"] == "geometry-any"
    assert "processes" not in props  # a list field cannot be queried
    schema = client.get("/collections/chemical_plants/schema").json()
    fields = schema["properties"]["properties"]["properties"]
    assert fields["processes"]["type"] == "array" and fields["employees"]["type"] == "integer"
    links = client.get("/collections/chemical_plants").json()["links"]
    assert any(link["rel"] == "describedBy" and link["href"].endswith("/schema") for link in links)


def test_the_date_field_is_the_temporal_field_else_the_first_date(catalogue: Catalogue) -> None:
    plants = catalogue["chemical_plants"]
    assert plants.date_field is not None and plants.date_field.name == "relocation_deadline"
    assert catalogue["buildings"].date_field is None
    data = plants.model_dump() | {"temporal_field": "name"}
    with pytest.raises(ValueError, match="temporal_field 'name' is not a date field"):
        Layer.model_validate(data)


# -- paging ---------------------------------------------------------------------------------


def test_next_links_walk_every_feature_once_in_id_order(client: TestClient) -> None:
    url: str | None = "/collections/chemical_plants/items?limit=7"
    seen, pages = [], 0
    while url:
        body = client.get(url).json()
        FeatureCollection.model_validate(body)
        assert body["numberMatched"] == len(PLANTS)
        assert body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        links = {link["rel"]: link for link in body["links"]}
        assert links["self"]["type"] == "application/geo+json"
        assert ("prev" in links) == (pages > 0)
        url = links.get("next", {}).get("href")
        pages += 1
    assert seen == sorted(row["id"] for row in PLANTS)
    assert pages == -(-len(PLANTS) // 7)


def test_prev_link_goes_back_one_page(client: TestClient) -> None:
    body = items(client, limit=5, offset=12)
    prev = next(link for link in body["links"] if link["rel"] == "prev")["href"]
    assert parse_qs(urlparse(prev).query)["offset"] == ["7"]


def test_a_large_page_streams_and_is_complete(client: TestClient) -> None:
    response = client.get("/collections/buildings/items", params={"limit": 2500, "offset": 50})
    body = response.json()
    FeatureCollection.model_validate(body)
    assert body["numberReturned"] == 2500 and body["numberMatched"] == N_BUILDINGS
    assert [f["id"] for f in body["features"]] == [f"b{i:05d}" for i in range(50, 2550)]
    assert any(link["rel"] == "next" for link in body["links"])
    last = client.get("/collections/buildings/items", params={"limit": 2500, "offset": 2500}).json()
    assert last["numberReturned"] == 100 and not any(
        link["rel"] == "next" for link in last["links"]
    )


@pytest.mark.parametrize("store_kind", STORES)
def test_store_streams_in_chunks(store_kind: str, request: pytest.FixtureRequest) -> None:
    with open_store(request.getfixturevalue(f"{store_kind}_settings")) as store:
        chunks = list(store.iter_query("buildings", chunk_size=1000, offset=10, limit=2200))
    assert [len(c) for c in chunks] == [1000, 1000, 200]
    assert list(chunks[0]["id"][:2]) == ["b00010", "b00011"]


def test_number_matched_is_estimated_past_the_count_limit_on_postgis(
    postgis_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo_service.store import postgis_query

    monkeypatch.setattr(postgis_query, "EXACT_COUNT_LIMIT", 100)
    with open_store(postgis_settings) as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE buildings")
        page = store.query("buildings", limit=10)
        counted = store.query("buildings", limit=10, exact_count=True)
    assert not page.exact and page.more
    assert 0.5 * N_BUILDINGS < page.number_matched < 2 * N_BUILDINGS
    assert counted.exact and counted.number_matched == N_BUILDINGS


# -- filters --------------------------------------------------------------------------------

BOX = (116.1, 39.6, 116.5, 40.0)
POLYGON = "POLYGON((116.1 39.6, 116.5 39.6, 116.5 40.0, 116.1 40.0, 116.1 39.6))"


def in_box(row: dict[str, Any]) -> bool:
    return bool(shapely.intersects(row["geometry"], box(*BOX)))


def day(row: dict[str, Any]) -> date | None:
    return row["relocation_deadline"]


CQL_CASES: list[tuple[str, dict[str, Any] | None, Callable[[dict[str, Any]], bool]]] = [
    (
        "size = 'large'",
        {"op": "=", "args": [{"property": "size"}, "large"]},
        lambda r: r["size"] == "large",
    ),
    (
        "major_hazard_grade <= 2 AND employees > 100",
        {
            "op": "and",
            "args": [
                {"op": "<=", "args": [{"property": "major_hazard_grade"}, 2]},
                {"op": ">", "args": [{"property": "employees"}, 100]},
            ],
        },
        lambda r: (r["major_hazard_grade"] or 99) <= 2 and (r["employees"] or -1) > 100,
    ),
    # SQL logic: a missing grade is neither = 1 nor NOT = 1
    (
        "NOT (major_hazard_grade = 1)",
        {"op": "not", "args": [{"op": "=", "args": [{"property": "major_hazard_grade"}, 1]}]},
        lambda r: r["major_hazard_grade"] not in (None, 1),
    ),
    (
        "name LIKE '%化工%'",
        {"op": "like", "args": [{"property": "name"}, "%化工%"]},
        lambda r: "化工" in (r["name"] or ""),
    ),
    (
        "name LIKE 'a\\_b'",
        {"op": "like", "args": [{"property": "name"}, "a\\_b"]},
        lambda r: r["name"] == "a_b",
    ),
    ("name LIKE '100\\%%'", None, lambda r: (r["name"] or "").startswith("100%")),
    ("name LIKE '_lpha'", None, lambda r: r["name"] == "alpha"),
    (
        "name > 'Z'",
        {"op": ">", "args": [{"property": "name"}, "Z"]},
        lambda r: r["name"] is not None and r["name"] > "Z",
    ),
    (
        "size IN ('small', 'medium')",
        {"op": "in", "args": [{"property": "size"}, ["small", "medium"]]},
        lambda r: r["size"] in ("small", "medium"),
    ),
    (
        "employees BETWEEN 100 AND 300",
        {"op": "between", "args": [{"property": "employees"}, [100, 300]]},
        lambda r: r["employees"] is not None and 100 <= r["employees"] <= 300,
    ),
    ("size IS NULL", {"op": "isNull", "args": [{"property": "size"}]}, lambda r: r["size"] is None),
    (
        "in_chemical_park = TRUE",
        {"op": "=", "args": [{"property": "in_chemical_park"}, True]},
        lambda r: r["in_chemical_park"] is True,
    ),
    ("risk_score >= 50.5", None, lambda r: r["risk_score"] is not None and r["risk_score"] >= 50.5),
    (
        "id IN ('a''b', 'p001')",
        {"op": "in", "args": [{"property": "id"}, ["a'b", "p001"]]},
        lambda r: r["id"] in ("a'b", "p001"),
    ),
    (
        f"S_INTERSECTS(geometry, {POLYGON})",
        {
            "op": "s_intersects",
            "args": [{"property": "geometry"}, shapely.geometry.mapping(box(*BOX))],
        },
        in_box,
    ),
    (
        "S_INTERSECTS(geometry, BBOX(116.1, 39.6, 116.5, 40.0))",
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(BOX)}]},
        in_box,
    ),
    (
        f"S_WITHIN(geometry, {POLYGON})",
        None,
        lambda r: bool(shapely.within(r["geometry"], box(*BOX))),
    ),
    (
        "T_INTERSECTS(relocation_deadline, INTERVAL('2022-01-01', '2022-12-31'))",
        {
            "op": "t_intersects",
            "args": [
                {"property": "relocation_deadline"},
                {"interval": ["2022-01-01", "2022-12-31"]},
            ],
        },
        lambda r: day(r) is not None and date(2022, 1, 1) <= day(r) <= date(2022, 12, 31),
    ),
    (
        "T_INTERSECTS(relocation_deadline, INTERVAL('..', '2021-06-30'))",
        {
            "op": "t_intersects",
            "args": [{"property": "relocation_deadline"}, {"interval": ["..", "2021-06-30"]}],
        },
        lambda r: day(r) is not None and day(r) <= date(2021, 6, 30),
    ),
    (
        "T_BEFORE(relocation_deadline, DATE('2022-03-01'))",
        {"op": "t_before", "args": [{"property": "relocation_deadline"}, {"date": "2022-03-01"}]},
        lambda r: day(r) is not None and day(r) < date(2022, 3, 1),
    ),
    (
        "relocation_deadline >= DATE('2023-01-01') OR size = 'small'",
        None,
        lambda r: (day(r) is not None and day(r) >= date(2023, 1, 1)) or r["size"] == "small",
    ),
]


@pytest.mark.parametrize(("text", "as_json", "expected"), CQL_CASES, ids=[c[0] for c in CQL_CASES])
def test_cql2_filters_select_what_python_selects(
    client: TestClient,
    text: str,
    as_json: dict[str, Any] | None,
    expected: Callable[[dict[str, Any]], bool],
) -> None:
    want = ids_where(expected)
    assert want, "every case selects something"
    assert sorted(item_ids(client, filter=text)) == want
    if as_json is not None:
        assert (
            sorted(item_ids(client, filter=json.dumps(as_json), **{"filter-lang": "cql2-json"}))
            == want
        )


def test_both_stores_select_the_same_ids_for_every_filter(
    gpkg_settings: Settings, postgis_settings: Settings
) -> None:
    with (
        TestClient(create_app(gpkg_settings)) as embedded,
        TestClient(create_app(postgis_settings)) as server,
    ):
        for text, _, _ in CQL_CASES:
            params = {"filter": text, "sortby": "-employees,name"}
            assert item_ids(embedded, **params) == item_ids(server, **params), text


def test_property_filters_are_typed(client: TestClient) -> None:
    assert sorted(item_ids(client, size="large", major_hazard_grade="4")) == ids_where(
        lambda r: r["size"] == "large" and r["major_hazard_grade"] == 4
    )
    assert sorted(item_ids(client, in_chemical_park="false")) == ids_where(
        lambda r: r["in_chemical_park"] is False
    )
    assert sorted(item_ids(client, name="it's quoted")) == ids_where(
        lambda r: r["name"] == "it's quoted"
    )
    assert item_ids(client, "findings", risk_class="red", status="identified") == ["f00", "f12"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-03-03", lambda d: d == date(2022, 3, 3)),
        ("2022-01-01/2022-06-30", lambda d: date(2022, 1, 1) <= d <= date(2022, 6, 30)),
        ("../2021-12-31", lambda d: d <= date(2021, 12, 31)),
        ("2023-01-01/..", lambda d: d >= date(2023, 1, 1)),
        ("2022-03-03T23:30:00-01:00", lambda d: d == date(2022, 3, 4)),  # the UTC day
    ],
)
def test_datetime_filters_the_date_field(
    client: TestClient, value: str, expected: Callable[[date], bool]
) -> None:
    want = ids_where(lambda r: day(r) is not None and expected(day(r)))
    assert sorted(item_ids(client, datetime=value)) == want


def test_bbox_in_crs84_and_in_other_crs(client: TestClient) -> None:
    want = ids_where(in_box)
    assert sorted(item_ids(client, bbox=",".join(map(str, BOX)))) == want
    lat_first = f"{BOX[1]},{BOX[0]},{BOX[3]},{BOX[2]}"
    assert sorted(item_ids(client, bbox=lat_first, **{"bbox-crs": EPSG.format(4326)})) == want
    x0, y0 = Transformer.from_crs(4326, 3857, always_xy=True).transform(BOX[0], BOX[1])
    x1, y1 = Transformer.from_crs(4326, 3857, always_xy=True).transform(BOX[2], BOX[3])
    assert (
        sorted(item_ids(client, bbox=f"{x0},{y0},{x1},{y1}", **{"bbox-crs": "EPSG:3857"})) == want
    )


def test_sortby_orders_with_missing_values_last_and_ties_by_id(client: TestClient) -> None:
    got = item_ids(client, sortby="-employees,name")

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (
            r["employees"] is None,
            -(r["employees"] or 0),
            r["name"] is None,
            r["name"] or "",
            r["id"],
        )

    assert got == [r["id"] for r in sorted(PLANTS, key=key)]
    names = item_ids(client, sortby="+name", filter="name IS NOT NULL")
    assert names == [
        r["id"]
        for r in sorted((r for r in PLANTS if r["name"]), key=lambda r: (r["name"], r["id"]))
    ]


def test_properties_chooses_the_properties_returned(client: TestClient) -> None:
    features = items(client, properties="size,employees", limit=3)["features"]
    assert all(set(f["properties"]) == {"size", "employees"} for f in features)
    assert all(
        set(f["properties"]) == set() for f in items(client, properties="", limit=2)["features"]
    )


@pytest.mark.parametrize("code", [3857, 4326, 4490])
def test_crs_moves_coordinates_as_pyproj_does(client: TestClient, code: int) -> None:
    response = client.get(
        "/collections/chemical_plants/items",
        params={"crs": f"EPSG:{code}", "filter": "id = 'p002'"},
    )
    assert response.headers["content-crs"] == f"<{EPSG.format(code)}>"
    got = response.json()["features"][0]["geometry"]["coordinates"]
    lon, lat = next(r["geometry"] for r in PLANTS if r["id"] == "p002").coords[0]
    want = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}").transform(
        lon, lat
    )  # authority axis order
    assert np.allclose(got, want, rtol=0, atol=1e-6)
    if code != 3857:
        assert got[0] == pytest.approx(lat)  # latitude first
    default = client.get("/collections/chemical_plants/items/p002")
    assert default.headers["content-crs"] == f"<{CRS84}>"
    assert default.json()["geometry"]["coordinates"] == [lon, lat]


# -- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/geo+json, application/json", "application/geo+json"),  # GDAL
        ("*/*", "application/geo+json"),  # OWSLib, curl
        ("application/json", "application/json"),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html",
        ),  # a browser
        ("text/csv", "text/csv"),
        ("application/x-ndjson", "application/x-ndjson"),
    ],
)
def test_accept_header_picks_the_format(client: TestClient, accept: str, media_type: str) -> None:
    response = client.get("/collections/chemical_plants/items", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type


def test_f_overrides_accept_and_formats_agree(client: TestClient) -> None:
    geojson = items(client, limit=60)
    ids = [f["id"] for f in geojson["features"]]
    text = client.get(
        "/collections/chemical_plants/items",
        params={"f": "csv", "limit": 60},
        headers={"Accept": "text/html"},
    ).text
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["id"] for r in rows] == ids
    by_id = {r["id"]: r for r in rows}
    for source in PLANTS[:20]:
        assert by_id[source["id"]]["size"] == (source["size"] or "")
        assert shapely.from_wkt(by_id[source["id"]]["geometry"]).equals(source["geometry"])
    lines = client.get(
        "/collections/chemical_plants/items", params={"f": "ndjson", "limit": 60}
    ).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    page = client.get("/collections/chemical_plants/items", params={"f": "html", "limit": 3}).text
    assert "<table>" in page and "a&#39;b" in page and "<script" not in page


def test_one_feature_by_id_even_an_awkward_one(client: TestClient) -> None:
    for feature_id in AWKWARD:
        quoted = feature_id.replace("%", "%25").replace("/", "%2F").replace("'", "%27")
        response = client.get(f"/collections/chemical_plants/items/{quoted}")
        assert response.status_code == 200, feature_id
        Feature.model_validate(response.json())
        assert response.json()["id"] == feature_id
    assert "<table>" in client.get("/collections/chemical_plants/items/p001?f=html").text


def test_every_items_parameter_is_documented(client: TestClient) -> None:
    spec = client.get("/api").json()
    params = {
        p["name"]: p
        for p in spec["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]
    }
    for name in [
        "bbox",
        "bbox-crs",
        "crs",
        "limit",
        "offset",
        "filter",
        "filter-lang",
        "filter-crs",
        "sortby",
        "properties",
        "datetime",
        "f",
        "resultType",
    ]:
        assert params[name].get("description"), name
    assert params["limit"]["schema"]["maximum"] == 10000
    assert client.get("/openapi.json").json() == spec


# -- errors ---------------------------------------------------------------------------------

BAD_REQUESTS = [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "117,39,116,40"}, "bbox"),
    ({"bbox-crs": "EPSG:9999", "bbox": "1,2,3,4"}, "bbox-crs"),
    ({"crs": "EPSG:2000"}, "crs"),
    ({"limit": "0"}, "limit"),
    ({"limit": "10001"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"f": "shp"}, "f"),
    ({"filter-lang": "sql"}, "filter-lang"),
    ({"no_such_field": "1"}, "no_such_field"),
    ({"processes": "nitration"}, "processes"),
    ({"major_hazard_grade": "two"}, "major_hazard_grade"),
    ({"size": "huge"}, "size"),
    ({"sortby": "nope"}, "sortby"),
    ({"sortby": "name; DROP TABLE chemical_plants"}, "sortby"),
    ({"properties": "name,nope"}, "properties"),
    ({"datetime": "yesterday"}, "datetime"),
    ({"filter": "size = "}, "filter"),
    ({"filter": "nope = 1"}, "filter"),
    ({"filter": "employees = 'many'"}, "filter"),
    ({"filter": "size = 'x'; DROP TABLE chemical_plants; --"}, "filter"),
    ({"filter": "\"size\" = 'x' OR 1=1"}, "filter"),
    ({"filter": '"name""; DROP TABLE chemical_plants; --" = \'x\''}, "filter"),
    ({"filter": "name LIKE 'a\\'"}, "filter"),
    ({"filter": "CASEI(name) = 'x'"}, "filter"),
    ({"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"}, "filter"),
    (
        {
            "filter": '{"op": "=", "args": [{"property": "size; DROP TABLE x"}, 1]}',
            "filter-lang": "cql2-json",
        },
        "filter",
    ),
    ({"filter": "[" * 3000, "filter-lang": "cql2-json"}, "filter"),
    (
        {
            "filter": '{"op": "t_after", "args": [{"property": "name"}, {"date": "2022-01-01"}]}',
            "filter-lang": "cql2-json",
        },
        "filter",
    ),
    ({"datetime": "2022-01-01"}, "datetime"),  # on buildings, which have no date field
]


@pytest.mark.parametrize(("params", "named"), BAD_REQUESTS, ids=[str(p) for p, _ in BAD_REQUESTS])
def test_a_bad_parameter_is_a_400_naming_it(
    client: TestClient, params: dict[str, str], named: str
) -> None:
    collection = "buildings" if params == {"datetime": "2022-01-01"} else "chemical_plants"
    response = client.get(f"/collections/{collection}/items", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "bad_request"
    assert body["detail"].startswith(named) or f"'{named}'" in body["detail"], body["detail"]
    assert not any(marker in response.text for marker in LEAK_MARKERS)
    assert items(client, limit=1)["numberMatched"] == len(PLANTS)  # nothing was dropped


@pytest.mark.parametrize(
    "path",
    [
        "/collections/nope",
        "/collections/nope/items",
        "/collections/chemical_plants' OR '1'='1/items",
        "/collections/dem/items",
        "/collections/chemical_plants/items/nope",
        "/collections/chemical_plants/queryables/x",
    ],
)
def test_unknown_things_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] in {"not_found", "layer_not_found"}


# -- real clients ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free loopback port."""
    with live_server(create_app(settings)) as url:
        yield url


def _gdal(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ogrinfo_lists_the_collections_and_counts_right(server: str) -> None:
    listing = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{server}")
    assert "chemical_plants" in listing and "findings" in listing
    summary = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}", "chemical_plants")
    assert re.search(r"Feature Count: (\d+)", summary).group(1) == str(len(PLANTS))  # type: ignore[union-attr]
    summary = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}", "buildings")
    assert f"Feature Count: {N_BUILDINGS}" in summary


def test_ogr2ogr_pulls_a_bbox_into_a_geopackage(server: str, tmp_path: Path) -> None:
    out = tmp_path / "pulled.gpkg"
    _gdal(
        "ogr2ogr",
        "-f",
        "GPKG",
        str(out),
        f"OAPIF:{server}",
        "chemical_plants",
        "-spat",
        *map(str, BOX),
    )
    pulled = pyogrio.read_dataframe(out)
    assert sorted(pulled["id"]) == ids_where(in_box)
    assert set(pulled.columns) >= {"name", "size", "relocation_deadline", "geometry"}
    for source in (r for r in PLANTS if in_box(r)):
        got = pulled[pulled["id"] == source["id"]].iloc[0]
        assert (None if pd.isna(got["size"]) else got["size"]) == source["size"]
        assert got.geometry.equals(source["geometry"])


def test_gdal_types_fields_by_the_schema_and_filters_dates_on_the_server(
    server: str, tmp_path: Path
) -> None:
    out = tmp_path / "findings.gpkg"
    where = "deadline >= '2022-07-01'"  # GDAL sends it as datetime=2022-07-01T/..
    _gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{server}", "findings", "-where", where)
    types = dict(
        zip(*(pyogrio.read_info(out)[key] for key in ("fields", "ogr_types")), strict=True)
    )
    assert types["deadline"] == "OFTDate" and types["risk_class"] == "OFTString"
    want = sorted(f["id"] for f in DATA["findings"] if f["deadline"] >= date(2022, 7, 1))
    assert sorted(pyogrio.read_dataframe(out)["id"]) == want


def test_owslib_lists_collections_and_reads_items(server: str) -> None:
    api = Features(server)
    assert {"chemical_plants", "findings", "buildings"} <= set(api.feature_collections())
    page = api.collection_items("chemical_plants", limit=5)
    assert [f["id"] for f in page["features"]] == sorted(r["id"] for r in PLANTS)[:5]
    boxed = api.collection_items("chemical_plants", bbox=list(BOX), limit=100)
    assert sorted(f["id"] for f in boxed["features"]) == ids_where(in_box)
    assert api.collection_queryables("chemical_plants")["properties"]["size"]["type"] == "string"
    assert api.collection_item("chemical_plants", "p001")["id"] == "p001"
