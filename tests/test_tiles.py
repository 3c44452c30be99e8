"""Vector tiles (both stores), PNG map tiles of rasters and MBTiles, as clients read them.

Tiles are decoded with mapbox-vector-tile and with GDAL's MVT driver (``ogrinfo``), PNGs with
Pillow, MBTiles with ``gdalinfo`` and sqlite3.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner
from conftest import create_database, drop_database
from fastapi.testclient import TestClient
from PIL import Image

from geo_service.api import create_app
from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.demo import build_demo
from geo_service.settings import Settings
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore, upgrade
from geo_service.tiles_build import tiles_command
from geo_service.tiling import TILE_MATRIX_SET, TileAddress
from geo_service.tiling.mbtiles import read_tile
from geo_service.tiling.vector import DEFAULT_POLICY

STORES = ["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)]
VECTOR_LAYERS = ["buildings", "road_sections", "chemical_plants", "fire_lifelines", "admin_areas"]
EXTENT = DEFAULT_POLICY.extent
RISK_COLOURS = {"red": (229, 57, 53), "orange": (251, 140, 0), "yellow": (253, 216, 53),
                "blue": (30, 136, 229)}  # fmt: skip


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tile_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """The shipped catalogue, with a ``risk_surface`` raster layer (added when it lacks one)."""
    shipped = load_catalogue()
    if "risk_surface" in shipped:
        return shipped
    folder = tmp_path_factory.mktemp("catalogue")
    for path in shipped.source.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "risk_surface.yaml").write_text(
        "id: risk_surface\ntitle: {zh: 风险强度面, en: Risk surface}\nkind: raster\n"
        "role: result\nraster: {unit: score, description: Risk score 0-100}\n"
        "grading: {classes: {red: 75, orange: 50, yellow: 25}}\n",
        encoding="utf-8",
    )
    return load_catalogue(folder)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, tile_catalogue: Catalogue) -> Path:
    """The demo region (清河市) in a GeoPackage store, with a synthetic risk surface."""
    data_dir = tmp_path_factory.mktemp("demo")
    store = GeoPackageStore(tile_catalogue, data_dir)
    build_demo(store)
    store.put_raster("risk_surface", risk_raster(tmp_path_factory.mktemp("risk")))
    return data_dir


@pytest.fixture(scope="module")
def demo_postgis(demo_dir: Path, tile_catalogue: Catalogue) -> Iterator[str]:
    """A database of this module's own holding the same demo region."""
    url = create_database()
    try:
        upgrade(url, tile_catalogue)
        source = GeoPackageStore(tile_catalogue, demo_dir)
        with PostGISStore(tile_catalogue, url) as target:
            for layer in tile_catalogue.vector_layers:
                frame = source.read(layer.id)
                if len(frame):
                    target.replace(layer.id, frame)
            for layer_id in ("population", "risk_surface"):
                path = source.raster_path(layer_id)
                assert path is not None
                target.put_raster(layer_id, path)
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(url)


@pytest.fixture(params=STORES)
def demo_settings(
    request: pytest.FixtureRequest, demo_dir: Path, tile_catalogue: Catalogue, tmp_path: Path
) -> Settings:
    """Settings of a service over the demo region, in the embedded store or in PostGIS."""
    settings = Settings(data_dir=demo_dir, catalogue_dir=tile_catalogue.source)
    if request.param == "postgis":
        settings.database_url = request.getfixturevalue("demo_postgis")
    return settings


@pytest.fixture
def demo_store(demo_settings: Settings, tile_catalogue: Catalogue) -> Iterator[Store]:
    store: Store
    if demo_settings.database_url:
        store = PostGISStore(tile_catalogue, demo_settings.database_url)
    else:
        store = GeoPackageStore(tile_catalogue, demo_settings.data_dir)
    with store:
        yield store


@pytest.fixture
def client(demo_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(demo_settings)) as client:
        yield client


@pytest.fixture(params=STORES)
def empty_store(request: pytest.FixtureRequest) -> Store:
    """An empty store of each kind (the PostGIS one on the session's throw-away database)."""
    store: Store = request.getfixturevalue(f"{request.param}_store")
    return store


def risk_raster(folder: Path) -> Path:
    """A risk surface over the demo city (0.1° square): four bands of scores, nodata, zeros.

    West to east, columns 0-9 score 10 (blue), 10-19 score 30 (yellow), 20-29 score 60
    (orange), 30-39 score 90 (red); rows 0-4 are nodata and rows 5-9 are 0 (no risk): both
    transparent.
    """
    data = np.zeros((40, 40), dtype="float32")
    for band, score in enumerate((10, 30, 60, 90)):
        data[:, band * 10 : (band + 1) * 10] = score
    data[0:5, :] = -1
    data[5:10, :] = 0
    path = folder / "risk_surface.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=40, height=40, count=1, dtype="float32",
        crs="EPSG:4326", transform=Affine(0.0025, 0, 110.5, 0, -0.0025, 30.6), nodata=-1,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


# -- helpers ---------------------------------------------------------------------------------


def decode(data: bytes, layer: str) -> list[dict[str, Any]]:
    """The features of ``layer`` in a tile, in tile units (y down)."""
    if not data:
        return []
    decoded = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    assert set(decoded) == {layer}
    assert decoded[layer]["extent"] == EXTENT
    features: list[dict[str, Any]] = decoded[layer]["features"]
    return features


def ogr_feature_counts(data: bytes, tile: TileAddress, folder: Path) -> dict[str, int]:
    """Feature count per layer as GDAL's MVT driver reads the tile (written as z/x/y.pbf)."""
    path = folder / str(tile.z) / str(tile.x) / f"{tile.y}.pbf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", str(path)], capture_output=True, text=True, check=True
    ).stdout
    names = re.findall(r"^Layer name: (\S+)$", out, flags=re.M)
    counts = [int(n) for n in re.findall(r"^Feature Count: (\d+)$", out, flags=re.M)]
    return dict(zip(names, counts, strict=True))


def tiles_around(frame: gpd.GeoDataFrame, zoom: int, n: int, seed: int = 0) -> list[TileAddress]:
    """``n`` distinct tiles of ``zoom`` holding features of ``frame`` (chosen at random)."""
    rng = np.random.default_rng(seed)
    points = shapely.get_coordinates(frame.geometry.representative_point())
    tiles: set[TileAddress] = set()
    for lon, lat in points[rng.permutation(len(points))]:
        t = TILE_MATRIX_SET.tile(lon, lat, zoom)
        tiles.add(TileAddress(t.z, t.x, t.y))
        if len(tiles) == n:
            break
    return sorted(tiles)


def ids_reaching(frame: gpd.GeoDataFrame, tile: TileAddress, margin: float = 1) -> set[str]:
    """Ids of the features that reach the tile with its buffer (shapely).

    ``margin`` (tile units) widens the buffer: a feature within half a unit of its edge may
    round onto it.
    """
    box = shapely.box(*tile.frame(EXTENT).lonlat_bounds(DEFAULT_POLICY.buffer + margin))
    return set(frame["id"][shapely.intersects(frame.geometry.values, box)])


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


# -- vector tiles: content ---------------------------------------------------------------------


@pytest.mark.parametrize("layer_id", VECTOR_LAYERS)
def test_a_detailed_tile_holds_every_feature_that_reaches_it(
    demo_store: Store, layer_id: str, tmp_path: Path
) -> None:
    frame = demo_store.read(layer_id)
    zoom = DEFAULT_POLICY.detail_zoom
    for tile in tiles_around(frame, zoom, n=4) + tiles_around(frame, 14, n=2):
        features = decode(demo_store.tile(layer_id, tile.z, tile.x, tile.y), layer_id)
        ids = [f["properties"]["id"] for f in features]
        assert len(ids) == len(set(ids)), "a feature drawn twice"
        assert "count" not in {k for f in features for k in f["properties"]}  # not thinned
        if tile.z == zoom:  # the same count as shapely's (but for features on the edge)
            surely, maybe = ids_reaching(frame, tile, -1), ids_reaching(frame, tile, +1)
            assert surely <= set(ids) <= maybe, f"{layer_id} {tile}"
            assert len(maybe - surely) <= 1
        else:  # simplified, but nothing lost: every feature in the tile proper is drawn
            inner = shapely.box(*tile.frame(EXTENT).lonlat_bounds())
            inside = set(frame["id"][shapely.intersects(frame.geometry.values, inner)])
            assert inside <= set(ids) <= ids_reaching(frame, tile)


def test_tiles_decode_with_gdal_mvt_driver(demo_store: Store, tmp_path: Path) -> None:
    frame = demo_store.read("buildings")
    for tile in tiles_around(frame, 14, n=3) + tiles_around(frame, 12, n=1):
        data = demo_store.tile("buildings", tile.z, tile.x, tile.y)
        counts = ogr_feature_counts(data, tile, tmp_path)
        assert counts == {"buildings": len(decode(data, "buildings"))}
        assert counts["buildings"] > 0


def test_gdal_places_features_where_they_are(demo_store: Store, tmp_path: Path) -> None:
    plants = demo_store.read("chemical_plants")
    plant = plants[plants.geometry.geom_type == "Point"].iloc[0]
    t = TILE_MATRIX_SET.tile(plant.geometry.x, plant.geometry.y, 15)
    tile = TileAddress(t.z, t.x, t.y)
    path = tmp_path / "15" / str(tile.x) / f"{tile.y}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(demo_store.tile("chemical_plants", tile.z, tile.x, tile.y))
    out = subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", "-t_srs", "EPSG:4326", "/vsistdout/", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = {f["properties"]["id"]: f["geometry"] for f in json.loads(out)["features"]}
    lon, lat = found[plant["id"]]["coordinates"]
    metres = np.hypot((lon - plant.geometry.x) * 96_000, (lat - plant.geometry.y) * 110_600)
    assert metres < 1.0  # a z15 tile unit is 0.3 m


def test_properties_are_mvt_values_and_can_be_chosen(demo_store: Store) -> None:
    plants = demo_store.read("chemical_plants")
    complete = plants[
        plants["processes"].notna()
        & plants["relocation_deadline"].notna()
        & plants["in_chemical_park"].notna()
    ]
    plant = next(complete.itertuples())
    lon, lat = shapely.get_coordinates(plant.geometry.representative_point())[0]
    t = TILE_MATRIX_SET.tile(lon, lat, 16)
    features = decode(demo_store.tile("chemical_plants", 16, t.x, t.y), "chemical_plants")
    props = next(f["properties"] for f in features if f["properties"]["id"] == plant.id)
    assert json.loads(props["processes"]) == list(plant.processes)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", props["relocation_deadline"])
    assert isinstance(props["in_chemical_park"], bool)
    assert props["name"] == plant.name
    chosen = decode(
        demo_store.tile("chemical_plants", 16, t.x, t.y, properties=["name"]), "chemical_plants"
    )
    assert {k for f in chosen for k in f["properties"]} == {"id", "name"}


def test_both_stores_make_the_same_tile(
    gpkg_store: GeoPackageStore, postgis_store: PostGISStore, plants: gpd.GeoDataFrame
) -> None:
    """Awkward values (quotes, commas, Chinese, nulls, big integers) read the same from both."""
    gpkg_store.upsert("chemical_plants", plants)
    postgis_store.upsert("chemical_plants", plants)
    for zoom in (8, 12, 16):
        for tile in tiles_around(plants, zoom, n=3, seed=zoom):
            embedded = decode(gpkg_store.tile("chemical_plants", *_zxy(tile)), "chemical_plants")
            server = decode(postgis_store.tile("chemical_plants", *_zxy(tile)), "chemical_plants")
            assert _by_id(embedded).keys() == _by_id(server).keys()
            for fid, feature in _by_id(embedded).items():
                other = _by_id(server)[fid]
                assert feature["properties"] == other["properties"], fid
                assert feature["geometry"]["type"] == other["geometry"]["type"], fid
                a, b = _coords(feature["geometry"]), _coords(other["geometry"])
                if feature["geometry"]["type"] == "Point":  # rounding may differ by a unit
                    assert np.abs(a - b).max() <= 1, fid


# -- vector tiles: thinning --------------------------------------------------------------------


def dense_plants(n: int, centre: tuple[float, float], seed: int = 3) -> gpd.GeoDataFrame:
    """``n`` plants scattered over ~4 km; those within ~300 m of ``centre`` are red."""
    rng = np.random.default_rng(seed)
    lon = centre[0] + rng.normal(0, 0.012, n)
    lat = centre[1] + rng.normal(0, 0.012, n)
    red = np.hypot(lon - centre[0], lat - centre[1]) < 0.003
    return gpd.GeoDataFrame(
        {
            "id": [f"d{i:06d}" for i in range(n)],
            "name": [f"厂 {i}" for i in range(n)],
            "risk_class": np.where(red, "red", "blue"),
        },
        geometry=shapely.points(lon, lat),
        crs=4326,
    )


def test_a_dense_tile_is_thinned_never_truncated(empty_store: Store) -> None:
    centre = (110.6, 30.55)
    plants = dense_plants(20_000, centre)
    empty_store.upsert("chemical_plants", plants)
    t = TILE_MATRIX_SET.tile(*centre, 12)
    tile = TileAddress(t.z, t.x, t.y)
    features = decode(empty_store.tile("chemical_plants", *_zxy(tile)), "chemical_plants")
    assert len(features) <= (EXTENT // DEFAULT_POLICY.cell + 2) ** 2  # one per cell at most
    inner = shapely.box(*tile.frame(EXTENT).lonlat_bounds())
    truth = set(plants["id"][shapely.within(plants.geometry.values, inner)])
    assert len(features) < len(truth) / 4  # really thinned

    # cells are aligned on the tile's edges: an aggregate inside the tile holds only features
    # inside it; a feature alone in its cell is drawn as itself, with its id
    aggregates = [f for f in features if "count" in f["properties"] and _inside(f)]
    singles = {f["properties"]["id"] for f in features if "count" not in f["properties"]}
    assert aggregates and all(f["properties"]["count"] >= 2 for f in aggregates)
    assert all("id" not in f["properties"] for f in aggregates)
    assert sum(f["properties"]["count"] for f in aggregates) + len(singles & truth) == len(truth)
    assert singles <= ids_reaching(plants, tile)

    # an aggregate takes the most severe class of its features
    middle = np.array(_grid_point(tile, centre))
    nearest = min(aggregates, key=lambda f: np.hypot(*(_coords(f["geometry"])[0] - middle)))
    assert nearest["properties"]["risk_class"] == "red"
    far = [f for f in aggregates if np.hypot(*(_coords(f["geometry"])[0] - middle)) > 400]
    assert far and {f["properties"]["risk_class"] for f in far} == {"blue"}


def test_a_sparse_tile_of_the_same_layer_is_not_thinned(empty_store: Store) -> None:
    centre = (110.6, 30.55)
    plants = dense_plants(20_000, centre)
    empty_store.upsert("chemical_plants", plants)
    t = TILE_MATRIX_SET.tile(*centre, 17)
    tile = TileAddress(t.z, t.x, t.y)
    features = decode(empty_store.tile("chemical_plants", *_zxy(tile)), "chemical_plants")
    assert 0 < len(features) <= DEFAULT_POLICY.max_features
    ids = {f["properties"]["id"] for f in features}
    assert ids_reaching(plants, tile, -1) <= ids <= ids_reaching(plants, tile, +1)


def test_small_polygons_at_low_zoom_become_points_not_holes(empty_store: Store) -> None:
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(110.5, 110.7, 300), rng.uniform(30.5, 30.6, 300)
    buildings = gpd.GeoDataFrame(
        {"id": [f"b{i}" for i in range(300)]},
        geometry=shapely.box(lon, lat, lon + 0.0001, lat + 0.0001),  # 10 m squares
        crs=4326,
    )
    empty_store.upsert("buildings", buildings)
    t = TILE_MATRIX_SET.tile(110.6, 30.55, 9)
    tile = TileAddress(t.z, t.x, t.y)
    features = decode(empty_store.tile("buildings", *_zxy(tile)), "buildings")
    ids = {f["properties"]["id"] for f in features}
    assert ids_reaching(buildings, tile, -1) <= ids <= ids_reaching(buildings, tile, +1)
    assert len(features) > 200
    assert {f["geometry"]["type"] for f in features} == {"Point"}


def test_lines_and_polygons_are_simplified_at_low_zoom(empty_store: Store) -> None:
    angles = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ring = np.column_stack((110.6 + 0.05 * np.cos(angles), 30.55 + 0.04 * np.sin(angles)))
    areas = gpd.GeoDataFrame({"id": ["a1"]}, geometry=[shapely.Polygon(ring)], crs=4326)
    empty_store.upsert("admin_areas", areas)
    t = TILE_MATRIX_SET.tile(110.6, 30.55, 10)
    low = decode(empty_store.tile("admin_areas", 10, t.x, t.y), "admin_areas")
    t = TILE_MATRIX_SET.tile(110.6, 30.59, 16)
    high = decode(empty_store.tile("admin_areas", 16, t.x, t.y), "admin_areas")
    assert len(low) == 1 and len(_coords(low[0]["geometry"])) < 200  # from 2,000 vertices
    assert len(high) == 1


# -- the HTTP API ------------------------------------------------------------------------------


def test_tilejson_template_resolves_to_a_working_tile(client: TestClient) -> None:
    tilejson = client.get("/collections/buildings/tiles/WebMercatorQuad/tilejson.json").json()
    assert tilejson["tilejson"] == "3.0.0"
    (template,) = tilejson["tiles"]
    assert template.startswith("http://testserver/") and template.endswith("/{z}/{y}/{x}")
    west, south, east, north = tilejson["bounds"]
    assert 110 < west < east < 111 and 30 < south < north < 31
    assert tilejson["vector_layers"][0]["id"] == "buildings"
    t = TILE_MATRIX_SET.tile((west + east) / 2, (south + north) / 2, 14)
    url = template.replace("{z}", "14").replace("{y}", str(t.y)).replace("{x}", str(t.x))
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert decode(response.content, "buildings")

    chosen = client.get(
        "/collections/buildings/tiles/WebMercatorQuad/tilejson.json?properties=use"
    ).json()
    tile_url = chosen["tiles"][0].replace("{z}", "14").replace("{y}", str(t.y))
    features = decode(client.get(tile_url.replace("{x}", str(t.x))).content, "buildings")
    assert {k for f in features for k in f["properties"]} <= {"id", "use"}


def test_tileset_metadata_links_the_ogc_item_template(client: TestClient) -> None:
    assert client.get("/collections/buildings/tiles").json()["tilesets"][0]["dataType"] == "vector"
    tileset = client.get("/collections/buildings/tiles/WebMercatorQuad").json()
    assert tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    item = next(link for link in tileset["links"] if link["rel"] == "item")
    assert item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
    limits = {row["tileMatrix"]: row for row in tileset["tileMatrixSetLimits"]}
    t = TILE_MATRIX_SET.tile(110.6, 30.55, 14)
    assert limits["14"]["minTileCol"] <= t.x <= limits["14"]["maxTileCol"]
    assert limits["14"]["minTileRow"] <= t.y <= limits["14"]["maxTileRow"]
    scheme = next(link for link in tileset["links"] if link["rel"].endswith("tiling-scheme"))
    definition = client.get(path_of(scheme["href"])).json()
    assert definition["id"] == "WebMercatorQuad" and len(definition["tileMatrices"]) == 25


def test_etag_and_304(client: TestClient) -> None:
    t = TILE_MATRIX_SET.tile(110.6, 30.55, 14)
    url = f"/collections/buildings/tiles/WebMercatorQuad/14/{t.y}/{t.x}"
    first = client.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert "no-cache" in first.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content and again.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'W/{etag}, "x"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    other = client.get(url + "?properties=use")
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_cached_tiles_are_dropped_when_the_data_changes(
    demo_settings: Settings, tile_catalogue: Catalogue, tmp_path: Path
) -> None:
    settings = demo_settings.model_copy()
    if not settings.database_url:  # a copy: this test writes
        shutil.copytree(settings.data_dir, tmp_path / "data")
        settings.data_dir = tmp_path / "data"
    with TestClient(create_app(settings)) as client:
        t = TILE_MATRIX_SET.tile(110.6, 30.55, 15)
        url = f"/collections/fire_stations/tiles/WebMercatorQuad/15/{t.y}/{t.x}"
        before = client.get(url)
        assert before.status_code in (200, 204)
        cache = client.app.state.tile_cache  # type: ignore[attr-defined]
        assert client.get(url).headers["etag"] == before.headers["etag"] and cache.hits >= 1
        inside = shapely.box(*TILE_MATRIX_SET.bounds(t)).centroid
        station = gpd.GeoDataFrame(
            {"id": ["new-station"], "name": ["新消防站"]}, geometry=[inside], crs=4326
        )
        writer: Store = (
            PostGISStore(tile_catalogue, settings.database_url)
            if settings.database_url
            else GeoPackageStore(tile_catalogue, settings.data_dir)
        )
        try:
            writer.upsert("fire_stations", station)  # another process writes
            after = client.get(url, headers={"If-None-Match": before.headers["etag"]})
            assert after.status_code == 200
            assert after.headers["etag"] != before.headers["etag"]
            ids = {f["properties"]["id"] for f in decode(after.content, "fire_stations")}
            assert "new-station" in ids
        finally:
            if settings.database_url:
                writer.delete("fire_stations", ["new-station"])
            writer.close()


def test_an_empty_tile_is_204(client: TestClient) -> None:
    response = client.get("/collections/buildings/tiles/WebMercatorQuad/14/0/0")
    assert response.status_code == 204 and not response.content
    assert response.headers["etag"]


@pytest.mark.parametrize(
    ("url", "status", "names"),
    [
        ("/collections/buildings/tiles/WebMercatorQuad/x/1/1", 400, "tileMatrix 'x'"),
        ("/collections/buildings/tiles/WebMercatorQuad/3/-1/1", 400, "tileRow '-1'"),
        ("/collections/buildings/tiles/WebMercatorQuad/3/1/1.5", 400, "tileCol '1.5'"),
        ("/collections/buildings/tiles/WebMercatorQuad/25/0/0", 404, "tileMatrix 25"),
        ("/collections/buildings/tiles/WebMercatorQuad/3/8/0", 404, "tileRow 8"),
        ("/collections/buildings/tiles/WebMercatorQuad/3/0/8", 404, "tileCol 8"),
        ("/collections/buildings/tiles/WorldCRS84Quad/3/0/0", 404, "WorldCRS84Quad"),
        ("/collections/no_such/tiles/WebMercatorQuad/3/0/0", 404, "no_such"),
        ("/collections/x'%3B%20DROP%20TABLE%20buildings/tiles", 404, "DROP TABLE"),
        ("/collections/population/tiles/WebMercatorQuad/3/0/0", 404, "raster layer"),
        ("/collections/buildings/map/tiles/WebMercatorQuad/3/0/0", 404, "vector tiles"),
        ("/collections/buildings/tiles/WebMercatorQuad/3/0/0?properties=id,nope", 400, "'nope'"),
        (
            "/collections/buildings/tiles/WebMercatorQuad/3/0/0?properties=use%3BDROP",
            400,
            "'use;DROP'",
        ),
    ],
)
def test_bad_requests_are_json_errors_naming_the_value(
    client: TestClient, url: str, status: int, names: str
) -> None:
    response = client.get(url)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "detail"} and names in body["detail"]


# -- raster map tiles --------------------------------------------------------------------------


def png(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (256, 256)
    return np.asarray(image.convert("RGBA"))


def test_population_tiles_are_pngs_coloured_by_the_ramp(
    client: TestClient, demo_store: Store
) -> None:
    info = client.get("/collections/population/map/tiles/WebMercatorQuad/tilejson.json").json()
    assert info["legend"]["type"] == "ramp" and info["legend"]["scale"] == "log"
    darkest = tuple(int(info["legend"]["colors"][-1][i : i + 2], 16) for i in (1, 3, 5))
    path = demo_store.raster_path("population")
    assert path is not None
    with rasterio.open(path) as src:
        data = src.read(1)
        row, col = np.unravel_index(np.argmax(data), data.shape)
        lon, lat = src.xy(row, col)  # the most populated cell: the darkest colour
    t = TILE_MATRIX_SET.tile(lon, lat, info["maxzoom"])
    url = info["tiles"][0].replace("{z}", str(t.z)).replace("{y}", str(t.y))
    response = client.get(path_of(url.replace("{x}", str(t.x))))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = png(response.content)
    px, py = (
        int(v) for v in TileAddress(t.z, t.x, t.y).frame(256).to_grid(np.array([[lon, lat]]))[0]
    )
    assert tuple(int(v) for v in pixels[py, px]) == (*darkest, 255)
    assert set(np.unique(pixels[..., 3])) <= {0, 255}

    _, _, east, north = info["bounds"]
    t = TILE_MATRIX_SET.tile(east, north, info["maxzoom"])  # the raster's north-east corner
    corner = png(
        client.get(f"/collections/population/map/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}").content
    )
    assert corner[0, 255, 3] == 0  # outside the raster: transparent
    outside = client.get("/collections/population/map/tiles/WebMercatorQuad/12/0/0")
    assert outside.status_code == 200 and (png(outside.content)[..., 3] == 0).all()
    assert "etag" in outside.headers


def test_risk_surface_tiles_use_the_four_classes(client: TestClient) -> None:
    info = client.get("/collections/risk_surface/map/tiles/WebMercatorQuad/tilejson.json").json()
    assert [c["class"] for c in info["legend"]["classes"]] == ["red", "orange", "yellow", "blue"]
    t = TILE_MATRIX_SET.tile(110.55, 30.55, 10)  # the whole synthetic surface in one tile
    url = f"/collections/risk_surface/map/tiles/WebMercatorQuad/10/{t.y}/{t.x}"
    pixels = png(client.get(url).content)
    frame = TileAddress(t.z, t.x, t.y).frame(256)
    corners = frame.to_grid(np.array([[110.5, 30.6], [110.6, 30.5]]))
    assert ((corners >= 0) & (corners < 256)).all()
    colours = {tuple(int(v) for v in p[:3]) for p in pixels[pixels[..., 3] == 255]}
    assert colours == set(RISK_COLOURS.values())
    # west → east the classes rise: blue, yellow, orange, red (the raster's 4 bands)
    row = int(frame.to_grid(np.array([[110.55, 30.53]]))[0, 1])
    by_x = {}
    for band, name in enumerate(("blue", "yellow", "orange", "red")):
        lon = 110.5 + 0.025 * band + 0.0125
        col = int(frame.to_grid(np.array([[lon, 30.53]]))[0, 0])
        by_x[name] = tuple(int(v) for v in pixels[row, col, :3])
    assert by_x == RISK_COLOURS
    # the nodata rows and the rows of 0 at the top are transparent
    top = int(frame.to_grid(np.array([[110.55, 30.6 - 0.00625]]))[0, 1])
    mid = int(frame.to_grid(np.array([[110.55, 30.6 - 0.01875]]))[0, 1])
    assert pixels[top, :, 3].max() == 0 and pixels[mid, :, 3].max() == 0


def test_a_raster_layer_without_a_raster_is_404(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        response = client.get("/collections/population/map/tiles/WebMercatorQuad/3/0/0")
    assert response.status_code == 404 and "holds no raster yet" in response.json()["detail"]


def test_openapi_documents_the_tile_parameters(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    tile = paths[
        "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
    ]
    parameters = {p["name"]: p for p in tile["get"]["parameters"]}
    assert set(parameters) >= {"collectionId", "tileMatrixSetId", "tileMatrix", "tileRow",
                               "tileCol", "properties"}  # fmt: skip
    assert all(p.get("description") for p in parameters.values())
    assert (
        "/collections/{collectionId}/map/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
        in paths
    )


# -- MBTiles -------------------------------------------------------------------------------------


def test_tiles_build_writes_mbtiles_gdal_and_sqlite_read(
    demo_settings: Settings, client: TestClient, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {
        "GEORISK_DATA_DIR": str(demo_settings.data_dir),
        "GEORISK_CATALOGUE_DIR": str(demo_settings.catalogue_dir),
        "GEORISK_DATABASE_URL": demo_settings.database_url,  # None unsets it
    }
    out = tmp_path / "tiles"
    result = CliRunner().invoke(
        tiles_command, ["build", "--output-dir", str(out), "--max-zoom", "13"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "population" in result.output and "risk_surface" in result.output

    path = out / "population.mbtiles"
    info = json.loads(
        subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, check=True).stdout
    )
    assert info["driverShortName"] == "MBTiles"
    assert len(info["bands"]) == 4  # RGBA
    with sqlite3.connect(path) as db:
        metadata = dict(db.execute("SELECT name, value FROM metadata"))
        rows = db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall()
    assert metadata["format"] == "png" and metadata["maxzoom"] == "13"
    z, x, tms_row = max(rows)
    y = 2**z - 1 - tms_row  # MBTiles counts rows from the bottom
    tile = TileAddress(z, x, y)
    stored = read_tile(path, tile)
    served = client.get(f"/collections/population/map/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert stored == served.content
    lon, lat = shapely.get_coordinates(shapely.box(*tile.frame().lonlat_bounds()).centroid)[0]
    west, south, east, north = (float(v) for v in metadata["bounds"].split(","))
    assert west - 1 < lon < east + 1 and south - 1 < lat < north + 1


def test_tiles_build_refuses_a_vector_layer(demo_settings: Settings, tmp_path: Path) -> None:
    env = {"GEORISK_DATA_DIR": str(demo_settings.data_dir)}
    result = CliRunner().invoke(
        tiles_command, ["build", "buildings", "--output-dir", str(tmp_path)], env=env
    )
    assert result.exit_code == 2 and "not a raster layer" in result.output


# -- small helpers -------------------------------------------------------------------------------


def _zxy(tile: TileAddress) -> tuple[int, int, int]:
    return tile.z, tile.x, tile.y


def _by_id(features: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["id"]: f for f in features}


def _coords(geometry: dict[str, Any]) -> np.ndarray:
    return shapely.get_coordinates(shapely.geometry.shape(geometry))


def _inside(feature: dict[str, Any]) -> bool:
    x, y = _coords(feature["geometry"])[0]
    return 0 <= x < EXTENT and 0 <= y < EXTENT


def _grid_point(tile: TileAddress, lonlat: tuple[float, float]) -> tuple[float, float]:
    x, y = tile.frame(EXTENT).to_grid(np.array([lonlat]))[0]
    return float(x), float(y)
