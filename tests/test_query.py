"""Buffer and proximity queries: the library, the API and the CLI, on both stores.

Hand-built data with known answers: targets at 999, 1000 and 1001 m of a plant (the one at
exactly 1000 m is inside), a polygon whose edge is inside the distance but whose centre is not,
plants in two Gauss–Krüger zones and a pair across a zone border, and a uniform population
raster. Then the demo region, whose answer for plant-001 must agree with notebook 01.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from fastapi.testclient import TestClient
from geojson_pydantic import FeatureCollection

from geo_service.api import create_app
from geo_service.catalogue import Catalogue
from geo_service.cli import cli
from geo_service.demo import build_demo
from geo_service.metric import GEOD
from geo_service.query import QueryError, TooManyFeatures, UnknownFeature, buffer_query, near_pairs
from geo_service.risk.exposure import population_within
from geo_service.settings import Settings
from geo_service.store import Store, open_store
from tests.conftest import STORES, filled_settings, live_server
from tests.rasters import write_tif

GK_114E, GK_117E = "EPSG:4547", "EPSG:4548"
P1 = (114.2, 30.5)  # zone CM 114°E
P2 = (117.4, 36.2)  # zone CM 117°E
P3 = (115.495, 33.0)  # zone CM 114°E, 550 m from the border with CM 117°E
DENSITY_PER_KM2 = 1000.0  # the population raster: 10 persons in each 100 m cell


def _at(origin: tuple[float, float], azimuth: float, metres: float) -> shapely.Point:
    lon, lat, _ = GEOD.fwd(origin[0], origin[1], azimuth, metres)
    return shapely.Point(lon, lat)


def _west_block() -> shapely.Polygon:
    """A block 950 m to 2,050 m west of P1 (in its GK zone): edge inside 1 km, centre 1.5 km out."""
    forward = pyproj.Transformer.from_crs(4326, GK_114E, always_xy=True)
    back = pyproj.Transformer.from_crs(GK_114E, 4326, always_xy=True)
    x, y = forward.transform(*P1)
    block = shapely.box(x - 2050, y - 200, x - 950, y + 200)
    return shapely.transform(block, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))


PLANTS = gpd.GeoDataFrame(
    {"id": ["P1", "P2", "P3"], "name": ["一号化工厂", "二号化工厂", "三号化工厂"]},
    geometry=[shapely.Point(P1), shapely.Point(P2), shapely.Point(P3)],
    crs=4326,
)
TARGETS = gpd.GeoDataFrame(
    {
        "id": ["t-999", "t-1000", "t-1001", "t-block", "u-999", "u-1001", "v-800", "far"],
        "name": [
            "北小学",
            "东北幼儿园",
            "东小学",
            "西小区",
            "南医院",
            "西医院",
            "跨带小学",
            "远处",
        ],
        "category": [
            "school",
            "kindergarten",
            "school",
            "residential",
            "hospital",
            "hospital",
            "school",
            "other",
        ],
    },
    geometry=[
        _at(P1, 0, 999),
        _at(P1, 45, 1000),
        _at(P1, 90, 1001),
        _west_block(),
        _at(P2, 180, 999),
        _at(P2, 270, 1001),
        _at(P3, 90, 800),  # across the zone border
        shapely.Point(100.0, 40.0),
    ],
    crs=4326,
)
EXPECTED_M = {"t-999": 999.0, "t-1000": 1000.0, "t-block": 950.0}  # around P1, within 1 km


def _fill(store: Store, tmp: Path, population: bool = True) -> None:
    store.replace("chemical_plants", PLANTS)
    store.replace("protection_targets", TARGETS)
    if population:
        forward = pyproj.Transformer.from_crs(4326, GK_114E, always_xy=True)
        x, y = forward.transform(*P1)
        west, north = round(x) - 5000, round(y) + 5000
        cells = np.full((100, 100), DENSITY_PER_KM2 / 100)
        path = write_tif(
            tmp / "population.tif", cells, rasterio.Affine(100, 0, west, 0, -100, north)
        )
        store.put_raster("population", path)


@pytest.fixture(scope="module", params=STORES)
def settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    """Settings of a store (each kind in turn) holding the hand-built plants and targets."""
    tmp = tmp_path_factory.mktemp(f"query-{request.param}")
    fill = partial(_fill, tmp=tmp)
    with filled_settings(request.param, tmp / "data", catalogue, fill) as settings:
        yield settings


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as store:
        yield store


def _found(result: Any, collection: str = "protection_targets") -> dict[str, float]:
    frame = result.features[collection]
    return dict(zip(frame["id"], frame["distance_m"], strict=True))


# -- the library ------------------------------------------------------------------------------


def test_within_is_inclusive_at_the_distance_and_polygons_count_by_their_edge(store: Store) -> None:
    result = buffer_query(
        store, geometry=shapely.Point(P1), distance_m=1000, collections=["protection_targets"]
    )
    found = _found(result)
    assert set(found) == set(EXPECTED_M)  # 1001 m is out; the block's centre is 1.5 km away
    for target_id, metres in EXPECTED_M.items():
        assert found[target_id] == pytest.approx(metres, abs=0.01)
    assert list(found) == ["t-block", "t-999", "t-1000"]  # nearest first
    assert result.features["protection_targets"]["name"].tolist()[0] == "西小区"


def test_each_gauss_kruger_zone_and_a_pair_across_its_border(store: Store) -> None:
    east = buffer_query(
        store, geometry=shapely.Point(P2), distance_m=1000, collections=["protection_targets"]
    )
    assert _found(east) == pytest.approx({"u-999": 999.0}, abs=0.01)
    border = buffer_query(
        store, feature=("chemical_plants", "P3"), distance_m=800, collections=["protection_targets"]
    )
    assert _found(border) == pytest.approx({"v-800": 800.0}, abs=0.01)


def test_a_feature_reference_measures_from_the_feature_and_leaves_it_out(store: Store) -> None:
    result = buffer_query(
        store,
        feature=("chemical_plants", "P1"),
        distance_m=1000,
        collections=["chemical_plants", "protection_targets"],
    )
    assert result.features["chemical_plants"].empty  # P1 itself is the subject, not a neighbour
    assert set(_found(result)) == set(EXPECTED_M)
    with pytest.raises(UnknownFeature, match="'nope'"):
        buffer_query(store, feature=("chemical_plants", "nope"), distance_m=10)


def test_summary_counts_by_category_and_people_from_the_raster(store: Store) -> None:
    result = buffer_query(
        store, geometry=shapely.Point(P1), distance_m=1000, collections=["protection_targets"]
    )
    summary = result.summary
    part = summary["collections"]["protection_targets"]
    assert part == {
        "count": 3,
        "category_field": "category",
        "by_category": {"kindergarten": 1, "residential": 1, "school": 1},
    }
    circle = np.pi * 1000**2
    assert result.area_m2 == pytest.approx(circle, rel=5e-4)  # a 128-gon in the local zone
    # a uniform raster: the people are the density times the area (partial cells weighted)
    assert result.population == pytest.approx(result.area_m2 / 1e6 * DENSITY_PER_KM2, rel=1e-3)
    assert summary["population"] == pytest.approx(3141.6, rel=1e-3)


def test_population_is_none_without_a_population_raster(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    with open_store(Settings(data_dir=tmp_path / "bare"), catalogue) as store:
        _fill(store, tmp_path, population=False)
        result = buffer_query(store, geometry=shapely.Point(P1), distance_m=1000)
    assert result.population is None and result.summary["population"] is None
    assert result.summary["collections"]["protection_targets"]["count"] == 3


def test_filter_as_cql2_text_and_json(store: Store) -> None:
    schools = buffer_query(
        store,
        geometry=shapely.Point(P1),
        distance_m=1000,
        collections=["protection_targets"],
        filter="category = 'school'",
    )
    assert set(_found(schools)) == {"t-999"}
    kindergartens = buffer_query(
        store,
        geometry=shapely.Point(P1),
        distance_m=1000,
        collections=["protection_targets"],
        filter={"op": "=", "args": [{"property": "category"}, "kindergarten"]},
    )
    assert set(_found(kindergartens)) == {"t-1000"}


def test_zero_distance_a_polygon_finds_what_is_inside_a_point_what_covers_it(store: Store) -> None:
    around = TARGETS.geometry.iloc[0].buffer(0.001)  # a small square-ish polygon around t-999
    inside = buffer_query(store, geometry=around, distance_m=0, collections=["protection_targets"])
    assert _found(inside) == {"t-999": 0.0}
    assert inside.area_m2 == pytest.approx(abs(GEOD.geometry_area_perimeter(around)[0]))
    on_block = buffer_query(
        store,
        geometry=TARGETS.geometry.iloc[3].centroid,
        distance_m=0,
        collections=["protection_targets"],
    )
    assert _found(on_block) == {"t-block": 0.0}
    assert on_block.area_m2 == 0 and on_block.population == 0


def test_caps_refuse_instead_of_cutting_short(store: Store) -> None:
    with pytest.raises(TooManyFeatures, match="more than 2 features"):
        buffer_query(
            store,
            geometry=shapely.Point(P1),
            distance_m=1000,
            collections=["protection_targets"],
            max_features=2,
        )
    exact = buffer_query(store, geometry=shapely.Point(P1), distance_m=1000, max_features=4)
    assert exact.number_returned == 4  # P1 itself and three targets: exactly the cap
    with pytest.raises(QueryError, match="distance_m"):
        buffer_query(store, geometry=shapely.Point(P1), distance_m=60_000, max_distance_m=50_000)


def test_near_pairs_between_two_layers(store: Store) -> None:
    pairs = near_pairs(store, "chemical_plants", "protection_targets", 1000)
    found = {(row.from_id, row.to_id): row.distance_m for row in pairs.frame.itertuples()}
    expected = {("P1", k): v for k, v in EXPECTED_M.items()}
    expected |= {("P2", "u-999"): 999.0, ("P3", "v-800"): 800.0}
    assert found == pytest.approx(expected, abs=0.01)
    assert pairs.summary == {
        "from": "chemical_plants",
        "to": "protection_targets",
        "distance_m": 1000.0,
        "pairs": 5,
        "from_features": 3,
        "to_features": 5,
    }
    # each line runs from the plant to the target's nearest point, as long as the distance
    for row in pairs.frame.itertuples():
        assert (
            shapely.Point(row.geometry.coords[0]).distance(
                PLANTS.set_index("id").geometry[row.from_id]
            )
            < 1e-9
        )
        assert GEOD.geometry_length(row.geometry) == pytest.approx(row.distance_m, rel=1e-3)
    none = near_pairs(store, "chemical_plants", "protection_targets", 700)
    assert (none.summary["pairs"], none.to_geojson()) == (0, [])
    schools = near_pairs(
        store, "chemical_plants", "protection_targets", 1000, "category = 'school'"
    )
    assert {(r.from_id, r.to_id, r.to_category) for r in schools.frame.itertuples()} == {
        ("P1", "t-999", "school"),
        ("P3", "v-800", "school"),
    }


def test_near_pairs_agree_with_buffer_queries_of_each_feature(store: Store) -> None:
    pairs = near_pairs(store, "chemical_plants", "protection_targets", 1000)
    by_buffer = {
        (plant, target): metres
        for plant in PLANTS["id"]
        for target, metres in _found(
            buffer_query(
                store,
                feature=("chemical_plants", plant),
                distance_m=1000,
                collections=["protection_targets"],
            )
        ).items()
    }
    found = {(row.from_id, row.to_id): row.distance_m for row in pairs.frame.itertuples()}
    assert found == pytest.approx(by_buffer, abs=1e-6)


def test_near_pairs_within_one_layer_never_pair_a_feature_with_itself(store: Store) -> None:
    pairs = near_pairs(store, "protection_targets", "protection_targets", 1500)
    pairs_found = set(zip(pairs.frame["from_id"], pairs.frame["to_id"], strict=True))
    assert pairs_found and all(a != b for a, b in pairs_found)
    assert ("t-999", "t-1000") in pairs_found and ("t-1000", "t-999") in pairs_found


# -- the API ----------------------------------------------------------------------------------


AROUND_P1 = {
    "geometry": {"type": "Point", "coordinates": list(P1)},
    "distance_m": 1000,
    "collections": ["protection_targets"],
}


def _geojson(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    FeatureCollection.model_validate(body)  # RFC 7946, foreign members allowed
    return body


def test_post_buffer_with_a_geometry(client: TestClient) -> None:
    body = _geojson(client.post("/query/buffer", json=AROUND_P1))
    got = {f["id"]: f["properties"]["distance_m"] for f in body["features"]}
    assert got == pytest.approx(EXPECTED_M, abs=0.01)
    assert all(f["properties"]["collection"] == "protection_targets" for f in body["features"])
    assert body["features"][0]["properties"]["category"] == "residential"
    assert body["features"][0]["geometry"]["type"] == "Polygon"
    assert body["numberReturned"] == 3
    summary = body["summary"]
    assert summary["collections"]["protection_targets"]["count"] == 3
    assert summary["population"] == pytest.approx(3141.6, rel=1e-3)
    assert summary["area_m2"] == pytest.approx(np.pi * 1e6, rel=5e-4)


def test_post_buffer_with_a_feature_and_a_filter(client: TestClient) -> None:
    body = _geojson(
        client.post(
            "/query/buffer",
            json={
                "feature": {"collection": "chemical_plants", "featureId": "P1"},
                "distance_m": 1000,
                "filter": {
                    "op": "in",
                    "args": [{"property": "category"}, ["school", "residential"]],
                },
                "filter-lang": "cql2-json",
                "collections": ["protection_targets"],
            },
        )
    )
    assert [f["id"] for f in body["features"]] == ["t-block", "t-999"]
    assert body["summary"]["collections"]["protection_targets"]["by_category"] == {
        "residential": 1,
        "school": 1,
    }


def test_post_buffer_default_collections_are_the_input_layers(client: TestClient) -> None:
    body = _geojson(
        client.post(
            "/query/buffer",
            json={"geometry": {"type": "Point", "coordinates": list(P1)}, "distance_m": 1000},
        )
    )
    collections = body["summary"]["collections"]
    assert "buildings" in collections and "findings" not in collections  # results are not inputs
    assert collections["chemical_plants"]["count"] == 1  # P1 itself: a geometry excludes nothing
    assert collections["buildings"] == {"count": 0, "category_field": "use", "by_category": {}}


def test_get_buffer_answers_as_post(client: TestClient) -> None:
    params = {"lon": P1[0], "lat": P1[1], "distance_m": 1000, "collections": "protection_targets"}
    got = _geojson(client.get("/query/buffer", params=params))
    posted = _geojson(client.post("/query/buffer", json=AROUND_P1))
    assert got == posted
    schools = _geojson(client.get("/query/buffer", params=params | {"filter": "category='school'"}))
    assert [f["id"] for f in schools["features"]] == ["t-999"]


def test_get_near_pages_with_next_links(client: TestClient) -> None:
    params = {"from": "chemical_plants", "to": "protection_targets", "distance_m": 1000, "limit": 2}
    first = _geojson(client.get("/query/near", params=params))
    assert first["numberMatched"] == 5 and first["numberReturned"] == 2
    feature = first["features"][0]
    assert feature["geometry"]["type"] == "LineString"
    assert feature["properties"]["from_collection"] == "chemical_plants"
    assert feature["properties"]["to_collection"] == "protection_targets"
    assert (feature["properties"]["from_id"], feature["properties"]["to_id"]) == ("P1", "t-block")
    assert feature["properties"]["from_name"] == "一号化工厂"
    assert feature["properties"]["distance_m"] == pytest.approx(950, abs=0.01)
    seen = [(f["properties"]["from_id"], f["properties"]["to_id"]) for f in first["features"]]
    page = first
    while any(link["rel"] == "next" for link in page["links"]):
        nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
        page = _geojson(client.get(nxt))
        seen += [(f["properties"]["from_id"], f["properties"]["to_id"]) for f in page["features"]]
    assert len(seen) == len(set(seen)) == 5
    assert any(link["rel"] == "prev" for link in page["links"])
    schools = _geojson(
        client.get("/query/near", params=params | {"filter": "category = 'school'", "limit": 10})
    )
    assert schools["summary"]["pairs"] == 2 and schools["summary"]["from_features"] == 2
    plants = _geojson(
        client.get(
            "/query/near",
            params=params | {"from-filter": "name = '三号化工厂'", "limit": 10},
        )
    )
    assert [f["id"] for f in plants["features"]] == ["P3~v-800"]


POINT = {"type": "Point", "coordinates": list(P1)}
BAD_POSTS = [
    ({"geometry": {"type": "Point", "coordinates": [200, 30]}, "distance_m": 10}, 400, "geometry"),
    ({"geometry": {"type": "Point", "coordinates": [114, 95]}, "distance_m": 10}, 400, "geometry"),
    ({"geometry": {"type": "Point", "coordinates": "x"}, "distance_m": 10}, 400, "geometry"),
    ({"geometry": {"type": "Circle", "coordinates": [1, 2]}, "distance_m": 10}, 400, "geometry"),
    (
        {
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
            },
            "distance_m": 10,
        },
        400,
        "Self-intersection",
    ),
    ({"geometry": POINT | {"crs": "EPSG:3857"}, "distance_m": 10}, 400, "crs"),
    ({"geometry": POINT, "distance_m": -1}, 400, "distance_m"),
    ({"geometry": POINT, "distance_m": 50_001}, 400, "distance_m"),
    ({"geometry": POINT, "distance_m": "far"}, 400, "distance_m"),
    ({"geometry": POINT}, 400, "distance_m"),
    ({"distance_m": 10}, 400, "geometry"),
    (
        {
            "geometry": POINT,
            "feature": {"collection": "chemical_plants", "featureId": "P1"},
            "distance_m": 10,
        },
        400,
        "geometry or feature",
    ),
    ({"geometry": POINT, "distance_m": 10, "collections": ["nope"]}, 400, "collections"),
    ({"geometry": POINT, "distance_m": 10, "collections": ["population"]}, 400, "raster"),
    ({"geometry": POINT, "distance_m": 10, "collections": []}, 400, "collections"),
    ({"geometry": POINT, "distance_m": 10, "filter": "category ="}, 400, "filter"),
    ({"geometry": POINT, "distance_m": 10, "filter": "nope = 1"}, 400, "nope"),
    (
        {"geometry": POINT, "distance_m": 10, "filter": "category = 'school'"},
        400,
        "admin_areas",
    ),
    (
        {"geometry": POINT, "distance_m": 10, "filter": "x", "filter-lang": "cql3"},
        400,
        "filter-lang",
    ),
    ({"geometry": POINT, "distance_m": 10, "unknown": 1}, 400, "unknown"),
    (
        {"feature": {"collection": "chemical_plants", "featureId": "nope"}, "distance_m": 10},
        404,
        "nope",
    ),
    ({"feature": {"collection": "nope", "featureId": "P1"}, "distance_m": 10}, 404, "nope"),
    (
        {
            "feature": {
                "collection": "chemical_plants",
                "featureId": "x'); DROP TABLE chemical_plants; --",
            },
            "distance_m": 10,
        },
        404,
        "DROP TABLE",
    ),
    (
        {
            "geometry": POINT,
            "distance_m": 10,
            "collections": ["protection_targets"],
            "filter": "name = 'x''); DROP TABLE protection_targets; --'",
        },
        200,
        "",
    ),
]


@pytest.mark.parametrize(("body", "status", "named"), BAD_POSTS)
def test_post_buffer_refuses_bad_input_naming_it(
    client: TestClient, body: dict[str, Any], status: int, named: str
) -> None:
    response = client.post("/query/buffer", json=body)
    assert response.status_code == status, response.text
    if status != 200:
        assert named in response.json()["detail"]
        assert "Traceback" not in response.text
    assert client.get("/collections/protection_targets/items").json()["numberMatched"] == len(
        TARGETS
    )


def test_post_buffer_refuses_nan(client: TestClient) -> None:
    response = client.post(
        "/query/buffer",
        content=b'{"geometry": {"type": "Point", "coordinates": [114.2, 30.5]}, "distance_m": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "distance_m" in response.json()["detail"]


BAD_GETS = [
    ("/query/buffer", {"lon": 200, "lat": 30, "distance_m": 10}, "lon"),
    ("/query/buffer", {"lon": 114, "lat": -91, "distance_m": 10}, "lat"),
    ("/query/buffer", {"lon": "nan", "lat": 30, "distance_m": 10}, "lon"),
    ("/query/buffer", {"lon": 114, "lat": 30, "distance_m": "inf"}, "distance_m"),
    ("/query/buffer", {"lon": 114, "lat": 30, "distance_m": -1}, "distance_m"),
    ("/query/buffer", {"lon": 114, "lat": 30}, "distance_m"),
    ("/query/buffer", {"lon": 114, "lat": 30, "distance_m": 10, "collections": "dem"}, "raster"),
    (
        "/query/buffer",
        {"lon": 114, "lat": 30, "distance_m": 10, "collections": "a,b"},
        "collections",
    ),
    ("/query/buffer", {"lon": 114, "lat": 30, "distance_m": 10, "filter": "(("}, "filter"),
    ("/query/near", {"from": "nope", "to": "mines", "distance_m": 10}, "from"),
    ("/query/near", {"from": "mines", "to": "population", "distance_m": 10}, "to"),
    ("/query/near", {"from": "mines", "to": "buildings", "distance_m": 60_000}, "distance_m"),
    ("/query/near", {"from": "mines", "to": "buildings", "distance_m": 10, "limit": 0}, "limit"),
    (
        "/query/near",
        {"from": "mines", "to": "buildings", "distance_m": 10, "limit": 10_001},
        "limit",
    ),
    ("/query/near", {"from": "mines", "to": "buildings", "distance_m": 10, "offset": -1}, "offset"),
    (
        "/query/near",
        {"from": "mines", "to": "buildings", "distance_m": 10, "filter": "nope = 1"},
        "nope",
    ),
    ("/query/near", {"to": "buildings", "distance_m": 10}, "from"),
    (
        "/query/near",
        {"from": "mines", "to": "buildings", "distance_m": 10, "from-filter": "nope = 1"},
        "from-filter",
    ),
]


@pytest.mark.parametrize(("path", "params", "named"), BAD_GETS)
def test_get_queries_refuse_bad_parameters_naming_them(
    client: TestClient, path: str, params: dict[str, Any], named: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_more_features_than_the_cap_is_a_413_not_a_cut(settings: Settings) -> None:
    capped = settings.model_copy(update={"query_max_features": 2, "query_max_pairs": 4})
    with TestClient(create_app(capped)) as client:
        response = client.get(
            "/query/buffer",
            params={
                "lon": P1[0],
                "lat": P1[1],
                "distance_m": 1000,
                "collections": "protection_targets",
            },
        )
        assert response.status_code == 413 and "more than 2 features" in response.json()["detail"]
        response = client.get(
            "/query/near",
            params={"from": "chemical_plants", "to": "protection_targets", "distance_m": 1000},
        )
        assert response.status_code == 413 and "5 pairs" in response.json()["detail"]
        fits = client.get(
            "/query/buffer",
            params={
                "lon": P2[0],
                "lat": P2[1],
                "distance_m": 1000,
                "collections": "protection_targets",
            },
        )
        assert fits.status_code == 200 and fits.json()["numberReturned"] == 1


# -- the demo region: the same answer as notebook 01 -----------------------------------------


@pytest.fixture(scope="module", params=STORES)
def demo_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[Settings]:
    tmp = tmp_path_factory.mktemp(f"demo-{request.param}")
    with filled_settings(request.param, tmp, catalogue, build_demo) as settings:
        yield settings


def test_demo_plant_001_within_1_km_agrees_with_notebook_01(demo_settings: Settings) -> None:
    with open_store(demo_settings) as store:
        plant = store.read("chemical_plants", ids=["plant-001"])
        people = float(population_within(store.raster_path("population"), plant.geometry, 1000)[0])
        near = store.near("protection_targets", plant.geometry.iloc[0], 1000)
    with TestClient(create_app(demo_settings)) as client:
        body = _geojson(
            client.post(
                "/query/buffer",
                json={
                    "feature": {"collection": "chemical_plants", "featureId": "plant-001"},
                    "distance_m": 1000,
                    "collections": ["protection_targets", "chemical_plants"],
                },
            )
        )
    summary = body["summary"]
    assert summary["collections"]["protection_targets"]["count"] == 14  # notebook 01's answer
    assert round(summary["population"]) == 69_742  # notebook 01's people within 1 km
    assert summary["population"] == pytest.approx(people, abs=0.1)
    targets = {
        f["id"]: f["properties"]["distance_m"]
        for f in body["features"]
        if f["properties"]["collection"] == "protection_targets"
    }
    assert targets == pytest.approx(
        dict(zip(near["id"], near["distance_m"], strict=True)), abs=0.05
    )
    plants = [
        f["id"] for f in body["features"] if f["properties"]["collection"] == "chemical_plants"
    ]
    assert plants == ["plant-008", "plant-005", "plant-007"]  # notebook 01: the old-town neighbours


def test_demo_near_pairs_agree_with_a_buffer_query_per_plant(demo_settings: Settings) -> None:
    with open_store(demo_settings) as store:
        pairs = near_pairs(
            store, "chemical_plants", "protection_targets", 500, "category = 'school'"
        )
        by_buffer = {}
        for plant in store.read("chemical_plants")["id"]:
            result = buffer_query(
                store,
                feature=("chemical_plants", plant),
                distance_m=500,
                collections=["protection_targets"],
                filter="category = 'school'",
            )
            by_buffer |= {(plant, t): d for t, d in _found(result).items()}
    found = {(r.from_id, r.to_id): r.distance_m for r in pairs.frame.itertuples()}
    assert found and found == pytest.approx(by_buffer, abs=1e-6)


def test_cli_query_buffer_and_near(tmp_path: Path, catalogue: Catalogue) -> None:
    data = tmp_path / "data"
    with open_store(Settings(data_dir=data), catalogue) as store:
        _fill(store, tmp_path)
    env = {"GEORISK_DATA_DIR": str(data), "GEORISK_DATABASE_URL": ""}

    def georisk(args: str, *extra: str) -> Any:
        return CliRunner().invoke(cli, [*args.split(), *extra], env=env)

    out = tmp_path / "around.csv"
    args = "query buffer --feature chemical_plants:P1 --distance-m 1000"
    done = georisk(args, "--collections", "protection_targets", "-o", str(out))
    assert done.exit_code == 0, done.output
    assert "within 1000 m: 3.140 km², 3,140 people" in done.output
    assert "protection_targets          3  kindergarten 1, residential 1, school 1" in done.output
    with out.open(encoding="utf-8-sig") as file:
        rows = list(csv.DictReader(file))
    assert [r["id"] for r in rows] == ["t-block", "t-999", "t-1000"]
    assert float(rows[1]["distance_m"]) == pytest.approx(999, abs=0.01)
    assert rows[0]["name"] == "西小区" and rows[0]["geometry_wkt"].startswith("POLYGON")

    geojson = tmp_path / "near.geojson"
    done = georisk(
        "query near chemical_plants protection_targets --distance-m 1000 -o", str(geojson)
    )
    assert done.exit_code == 0, done.output
    assert "5 pairs within 1000 m: 3 chemical_plants, 5 protection_targets" in done.output
    document = json.loads(geojson.read_text(encoding="utf-8"))
    FeatureCollection.model_validate(document)
    assert len(document["features"]) == 5

    done = georisk("query buffer --lon 114.2 --lat 30.5 --distance-m -1")
    assert done.exit_code == 2 and "distance_m" in done.output
    done = georisk("query buffer --lon 114.2 --distance-m 1")
    assert done.exit_code == 2 and "--lon and --lat" in done.output
    done = georisk("query buffer --feature P1 --distance-m 1")
    assert done.exit_code == 2 and "LAYER:ID" in done.output
    done = georisk("query buffer --feature chemical_plants:P1 --distance-m 1 -o x.shp")
    assert done.exit_code == 2 and ".geojson or .csv" in done.output


def test_a_real_http_client_against_a_live_server(demo_settings: Settings) -> None:
    with live_server(create_app(demo_settings)) as url:
        response = httpx.post(
            f"{url}/query/buffer",
            json={
                "feature": {"collection": "chemical_plants", "featureId": "plant-001"},
                "distance_m": 1000,
            },
            timeout=60,
        )
    body = _geojson(response)
    assert body["summary"]["collections"]["protection_targets"]["count"] == 14
    assert round(body["summary"]["population"]) == 69_742
