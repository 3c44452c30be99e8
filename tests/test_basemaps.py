"""The map's background from configuration: none, OSM, Tianditu, a URL, or an offline tile set.

The offline sets are made by GDAL itself (``gdal_translate -of MBTILES``), so the MBTiles
reader is checked against a writer that is not georisk's.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import folium
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from fastapi.testclient import TestClient
from rasterio.transform import from_bounds

from geo_service.api import create_app
from geo_service.cli import cli
from geo_service.settings import Settings
from geo_service.tiling.offline import tile_sets
from geo_service.webmap.basemap import BasemapError, basemap_layer, resolve_basemap

PNG = b"\x89PNG\r\n\x1a\n"
# about 3 km around Tiananmen: a few tiles at z12–14
WEST, SOUTH, EAST, NORTH = 116.37, 39.89, 116.41, 39.92


@pytest.fixture(scope="module")
def tiles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiles folder: a GDAL-made MBTiles basemap, the same as an XYZ folder, and two non-basemaps."""
    folder = tmp_path_factory.mktemp("tiles")
    image = tmp_path_factory.mktemp("src") / "city.tif"
    rgb = np.zeros((3, 256, 256), dtype="uint8")
    rgb[0] = np.linspace(0, 255, 256, dtype="uint8")[None, :]  # a gradient: tiles differ
    rgb[2] = 200
    with rasterio.open(
        image, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8",
        crs="EPSG:4326", transform=from_bounds(WEST, SOUTH, EAST, NORTH, 256, 256),
    ) as dst:  # fmt: skip
        dst.write(rgb)
    mbtiles = folder / "city.mbtiles"
    subprocess.run(
        ["gdal_translate", "-q", "-of", "MBTILES", "-co", "TILE_FORMAT=PNG", image, mbtiles],
        check=True,
    )
    subprocess.run(["gdaladdo", "-q", "-r", "average", mbtiles, "2", "4"], check=True)
    _as_xyz_folder(mbtiles, folder / "city_xyz")
    shutil.copy(mbtiles, folder / "population.mbtiles")  # a catalogue layer's set: an overlay
    with closing(sqlite3.connect(folder / "roads_pbf.mbtiles")) as db:  # a vector set
        db.executescript(
            "CREATE TABLE metadata (name TEXT, value TEXT);"
            "INSERT INTO metadata VALUES ('format', 'pbf');"
            "CREATE TABLE tiles (zoom_level INT, tile_column INT, tile_row INT, tile_data BLOB);"
            "INSERT INTO tiles VALUES (0, 0, 0, x'00');"
        )
    (folder / "README.md").write_text("not a tile set")
    return folder


def _as_xyz_folder(mbtiles: Path, folder: Path) -> None:
    """Every tile of ``mbtiles`` written as ``folder/z/x/y.png`` (rows flipped from TMS)."""
    with closing(sqlite3.connect(mbtiles)) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        for z, x, tms_row, data in rows:
            path = folder / str(z) / str(x) / f"{(1 << z) - 1 - tms_row}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    (folder / "ATTRIBUTION").write_text("© 清河市测绘院\n", encoding="utf-8")


def _tiles_of(mbtiles: Path) -> list[tuple[int, int, int, bytes]]:
    """(z, x, XYZ row, bytes) of every tile GDAL wrote."""
    with closing(sqlite3.connect(mbtiles)) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        return [(z, x, (1 << z) - 1 - row, bytes(data)) for z, x, row, data in rows]


@pytest.fixture(scope="module")
def client(tiles_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"), tiles_dir=tiles_dir, basemap="city"
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_tiles_folder_lists_image_sets_only(tiles_dir: Path, client: TestClient) -> None:
    listed = {entry["name"]: entry for entry in client.get("/basemaps").json()}
    assert set(listed) == {"city", "city_xyz"}  # not population (an overlay) nor the pbf set
    city, xyz = listed["city"], listed["city_xyz"]
    assert (city["kind"], city["format"], city["selected"]) == ("mbtiles", "png", True)
    assert (xyz["kind"], xyz["format"], xyz["selected"]) == ("xyz", "png", False)
    assert xyz["attribution"] == "© 清河市测绘院"
    zooms = sorted({z for z, *_ in _tiles_of(tiles_dir / "city.mbtiles")})
    assert (city["minzoom"], city["maxzoom"]) == (zooms[0], zooms[-1])
    assert zooms[-1] > zooms[0]  # GDAL's base zoom and its overview levels
    assert city["tiles"] == ["http://testserver/basemaps/city/{z}/{x}/{y}"]
    assert "population" in tile_sets(tiles_dir)  # it is a tile set; the service leaves it out


@pytest.mark.parametrize("name", ["city", "city_xyz"])
def test_every_tile_gdal_wrote_is_served_at_its_xyz_address(
    tiles_dir: Path, client: TestClient, name: str
) -> None:
    tiles = _tiles_of(tiles_dir / "city.mbtiles")
    assert len(tiles) >= 3
    for z, x, y, data in tiles:
        response = client.get(f"/basemaps/{name}/{z}/{x}/{y}")
        assert response.status_code == 200, (z, x, y)
        assert response.headers["content-type"] == "image/png"
        assert response.content == data and data.startswith(PNG)


def test_a_tile_outside_the_set_is_empty_not_an_error(client: TestClient) -> None:
    response = client.get("/basemaps/city/12/0/0")
    assert response.status_code == 204 and response.content == b""


def test_an_unchanged_tile_is_304(tiles_dir: Path, client: TestClient) -> None:
    z, x, y, _ = _tiles_of(tiles_dir / "city.mbtiles")[0]
    first = client.get(f"/basemaps/city/{z}/{x}/{y}")
    again = client.get(
        f"/basemaps/city/{z}/{x}/{y}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    other = client.get(
        f"/basemaps/city_xyz/{z}/{x}/{y}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/basemaps/nowhere/1/0/0", 404, "no offline basemap 'nowhere'"),
        ("/basemaps/population/1/0/0", 404, "no offline basemap 'population'"),
        ("/basemaps/city/3/9/0", 400, "tileCol 9 is outside tile matrix 3"),
        ("/basemaps/city/40/0/0", 400, "tileMatrix 40"),
        ("/basemaps/city/1/0/x", 422, "y"),
        ("/basemaps/..%2F..%2Fetc/1/0/0", 404, "not_found"),
    ],
)
def test_bad_tile_requests_are_4xx_naming_the_value(
    client: TestClient, path: str, status: int, words: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert words in response.text
    assert "Traceback" not in response.text


def test_offline_basemap_points_at_georisk_with_the_sets_zooms(tiles_dir: Path) -> None:
    basemap = resolve_basemap(Settings(tiles_dir=tiles_dir, basemap="city"))
    assert basemap is not None
    assert basemap.urls == ("/basemaps/city/{z}/{x}/{y}",)
    zooms = sorted({z for z, *_ in _tiles_of(tiles_dir / "city.mbtiles")})
    assert (basemap.min_zoom, basemap.max_zoom) == (zooms[0], zooms[-1])
    elsewhere = resolve_basemap(
        Settings(tiles_dir=tiles_dir, basemap="city_xyz"), "http://gis.intranet:8000/"
    )
    assert elsewhere is not None
    assert elsewhere.urls == ("http://gis.intranet:8000/basemaps/city_xyz/{z}/{x}/{y}",)
    assert elsewhere.attribution == "© 清河市测绘院"


def test_none_osm_and_url_basemaps() -> None:
    assert resolve_basemap(Settings(basemap="none")) is None
    assert basemap_layer(Settings()) is None  # the default needs no network
    osm = resolve_basemap(Settings(basemap="osm"))
    assert osm is not None and osm.urls == ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",)
    assert "OpenStreetMap" in osm.attribution
    own = resolve_basemap(
        Settings(
            basemap="url", basemap_url="http://10.0.0.5/t/{z}/{x}/{y}.png", basemap_attribution="局"
        )
    )
    assert own is not None and own.urls == ("http://10.0.0.5/t/{z}/{x}/{y}.png",)
    assert own.attribution == "局"


def test_tianditu_takes_its_key_from_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEORISK_BASEMAP", "tianditu")
    monkeypatch.setenv("GEORISK_TIANDITU_TOKEN", "0123abcd")
    settings = Settings()
    basemap = resolve_basemap(settings)
    assert basemap is not None and len(basemap.urls) == 2  # the map and its labels
    assert all("tk=0123abcd" in url and "{z}" in url for url in basemap.urls)
    assert ["LAYER=vec" in basemap.urls[0], "LAYER=cva" in basemap.urls[1]] == [True, True]
    assert "0123abcd" not in repr(settings)  # a secret: never printed with the settings
    fmap = folium.Map(tiles=None)
    layer = basemap_layer(settings, lang="en")
    assert layer is not None
    layer.add_to(fmap)
    folium.LayerControl().add_to(fmap)
    page = fmap.get_root().render()
    assert page.count("tianditu.gov.cn/vec_w") == page.count("tianditu.gov.cn/cva_w") == 1
    assert '"Basemap: tianditu"' in page  # one entry in the layer control


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (Settings(basemap="tianditu"), "GEORISK_TIANDITU_TOKEN"),
        (Settings(basemap="url"), "GEORISK_BASEMAP_URL"),
        (Settings(basemap="url", basemap_url="http://tiles/"), "{z}, {x} and {y}"),
        (Settings(basemap="nowhere"), "no tile set nowhere.mbtiles"),
        (Settings(basemap="../etc"), "basemap '../etc'"),
    ],
)
def test_an_unusable_basemap_setting_is_named(
    settings: Settings, words: str, tmp_path: Path
) -> None:
    settings.tiles_dir = tmp_path
    with pytest.raises(BasemapError, match="basemap") as caught:
        resolve_basemap(settings)
    assert words in str(caught.value)


def test_serve_refuses_to_start_with_an_unusable_basemap(
    tiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEORISK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GEORISK_TILES_DIR", str(tiles_dir))
    monkeypatch.setenv("GEORISK_BASEMAP", "citty")
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "basemap 'citty'" in result.output
    assert "city, city_xyz" in result.output  # what could have been meant
    assert "Traceback" not in result.output
