"""The map page as HTML: offline, light whatever the data size, and a standalone file.

What the page does in a browser is tested in ``test_map_browser.py``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pyproj import Transformer
from rasterio.transform import from_origin
from test_api import _external_links, sample_frames

from geo_service.assets import fetch_assets
from geo_service.catalogue import load_catalogue
from geo_service.cli import cli
from geo_service.settings import Settings
from geo_service.store import Store
from geo_service.webmap.controls import summary_panel
from geo_service.webmap.heat import heat_points
from geo_service.webmap.page import render_map
from geo_service.webmap.standalone import standalone_map
from geo_service.webmap.summary import findings_summary
from geo_service.webmap.vendor import map_files

MB = 1_000_000
LARGE = 50_000


@pytest.fixture(params=["gpkg_store", "postgis_store"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each store, holding the API tests' sample features."""
    store: Store = request.getfixturevalue(request.param)
    for layer_id, frame in sample_frames().items():
        store.upsert(layer_id, frame)
    return store


@pytest.fixture(scope="module", autouse=True)
def vendor_assets() -> None:
    """The standalone file inlines the vendor files: fetched once, then only verified."""
    fetch_assets()


def _in_page(text: str, page: str) -> bool:
    """Whether ``text`` is on the page, as it is or JSON-escaped inside a script."""
    return text in page or json.dumps(text)[1:-1] in page


def _buildings(count: int) -> gpd.GeoDataFrame:
    """``count`` small square buildings on a grid near Beijing."""
    index = np.arange(count)
    x, y = 116.0 + (index % 250) * 0.001, 39.0 + (index // 250) * 0.001
    return gpd.GeoDataFrame(
        {"id": [f"b{i}" for i in index], "name": [f"楼{i}" for i in index]},
        geometry=shapely.box(x, y, x + 0.0005, y + 0.0005),
        crs=4326,
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_map_page_is_offline_and_names_every_layer(store: Store, lang: str) -> None:
    page = render_map(store, Settings(), lang)  # type: ignore[arg-type]
    assert _external_links(page) == []
    # no URL to any other host in a string or url() (folium leaves one in a JS comment)
    assert not re.search(r"[\"'(]https?://", page)
    for path in map_files():
        if "leaflet-measure" not in path or path.endswith(".css"):
            continue
        assert (f"/static/vendor/{path}" in page) == (path.endswith(".cn.js") == (lang == "zh"))
    assert "/static/vendor/leaflet.vectorgrid/" not in page  # nothing tiled: no tile library
    for layer in load_catalogue().vector_layers:
        assert _in_page(getattr(layer.title, lang), page)
    assert _in_page("重大危险源等级" if lang == "zh" else "Major hazard source grade", page)
    # coordinates rounded to 6 decimals, null properties dropped
    assert "116.401235" in page and "116.40123456789" not in page
    assert '"relocation_deadline":null' not in page
    # markup in the data stays inert inside the script
    assert "红星化工 \\u003cb\\u003e有限公司\\u003c/b\\u003e" in page


def test_map_page_says_what_it_shows(store: Store) -> None:
    page = render_map(store, Settings(map_inline_max_features=2))
    assert _in_page("危险化学品生产企业 (3 · 矢量瓦片)", page)  # 3 > 2: tiled
    assert _in_page("防护目标 (2)", page)
    assert 'georisk.tiledOverlay(\n            georisk.layerSpec("chemical_plants")' in page
    assert 'georisk.inlineOverlay(\n            georisk.layerSpec("protection_targets")' in page
    assert '"p1"' not in page  # a tiled layer's features are not in the page
    assert "/static/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js" in page


def test_a_large_layer_comes_as_tiles_and_the_page_stays_light(store: Store) -> None:
    store.upsert("buildings", _buildings(LARGE))
    page = render_map(store, Settings())
    size = len(page.encode())
    print(f"map page with {LARGE:,} buildings: {size:,} bytes")
    assert size < MB
    assert _in_page(f"建筑物 ({LARGE:,} · 矢量瓦片)", page)
    assert '"b49999"' not in page and "楼49999" not in page
    assert _in_page("危险化学品生产企业 (3)", page)  # the small layers stay inline


def test_the_inline_budget_sends_layers_to_tiles(store: Store) -> None:
    page = render_map(store, Settings(map_inline_max_bytes=1_500))
    # smallest first: the empty layers and the one railway fit, the plants do not
    assert _in_page("铁路线路 (1)", page)
    assert _in_page("危险化学品生产企业 (3 · 矢量瓦片)", page)


def test_summary_counts_findings_by_colour_and_overdue(store: Store) -> None:
    findings = gpd.GeoDataFrame(
        {
            "id": ["f1", "f2", "f3", "f4"],
            "rule": ["plant_protective_distance"] * 4,
            "hazard_layer": ["chemical_plants"] * 4,
            "hazard_id": ["p1", "p1", "p2", "p3"],
            "risk_class": ["red", "red", "blue", "orange"],
            "status": ["identified", "rectified", "rectifying", "rectifying"],
            "deadline": pd.to_datetime(["2020-01-01", "2020-01-01", "2099-01-01", "2024-06-30"]),
        },
        geometry=shapely.points([116.4] * 4, [39.9] * 4),
        crs=4326,
    )
    store.upsert("findings", findings)
    summary = findings_summary(store, today=date(2025, 1, 1))
    assert summary.by_class == {"red": 2, "orange": 1, "yellow": 0, "blue": 1}
    assert summary.total == 4
    assert summary.overdue == 2  # f1 and f4: unfixed past the deadline; f2 is rectified
    html = summary_panel(store.catalogue, summary, "en").html
    assert re.search(
        r'data-class="red">.*red \(major\)</th>\s*<td class="number">2</td>', html, re.S
    )
    assert re.search(r'data-class="overdue">.*Overdue</th>\s*<td class="number">2</td>', html, re.S)


def test_heat_points_are_bounded_and_weighted(tmp_path: Path) -> None:
    path = tmp_path / "population.tif"
    people = np.zeros((300, 400), dtype="float32")
    people[100:200, 50:350] = 10.0
    people[150, 200] = 5_000.0  # the densest spot
    transform = from_origin(500_000, 4_420_000, 100, 100)  # UTM 50N, 100 m cells
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=400,
        height=300,
        count=1,
        dtype="float32",
        crs="EPSG:32650",
        transform=transform,
    ) as target:
        target.write(people, 1)
    points = heat_points(path, max_points=500)
    assert 0 < len(points) <= 500
    weights = np.array(points)[:, 2]
    assert weights.max() == 1.0 and weights.min() > 0
    # the densest point lies on the spot, within one coarse cell (16 cells of 100 m)
    spot_lon, spot_lat = Transformer.from_crs(32650, 4326, always_xy=True).transform(
        *(transform * (200.5, 150.5))
    )
    densest = points[int(np.argmax(weights))]
    assert abs(densest[0] - spot_lat) < 0.015 and abs(densest[1] - spot_lon) < 0.02
    assert len(set(np.round(weights, 3))) > 1  # the rest weigh less


def test_standalone_file_holds_everything_and_says_what_is_cut(store: Store) -> None:
    page = standalone_map(store, Settings(map_standalone_max_features=2), "zh")
    assert "<script src=" not in page and '<link rel="stylesheet"' not in page
    assert _external_links(page) == []
    assert "url(images/" not in page and "data:image/png;base64," in page  # icons inlined
    assert _in_page("危险化学品生产企业 (前 2 / 共 3)", page)
    assert '"p3"' not in page
    # no tool that needs the server (the script defines them, the page calls none)
    assert "georisk.drawQuery(" not in page and "georisk.tiledOverlay(" not in page
    assert "缓冲区查询、风险强度面和矢量瓦片需要服务器" in page


def test_cli_map_writes_a_standalone_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    from geo_service.store import open_store

    with open_store(settings) as store:
        for layer_id, frame in sample_frames().items():
            store.upsert(layer_id, frame)
    env = {**os.environ, "GEORISK_DATA_DIR": str(tmp_path / "data")}
    env.pop("GEORISK_DATABASE_URL", None)
    output = tmp_path / "map.html"
    result = CliRunner().invoke(cli, ["map", "-o", str(output), "--lang", "en"], env=env)
    assert result.exit_code == 0, result.output
    assert "opens with no server" in result.output
    page = output.read_text(encoding="utf-8")
    assert _in_page("Hazardous-chemical plants (3)", page)
    assert "<script src=" not in page
