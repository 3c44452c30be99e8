"""The map in a real browser with no internet: every request not to georisk is blocked.

Runs ``georisk serve`` (uvicorn) on a free loopback port, on the demo region (built and analysed once
per module), and opens /map in headless Chromium (Debian's ``chromium`` package, driven by
Playwright; never ``playwright install``). The inline threshold is low, so buildings come as
vector tiles. One browser and one server serve every test of the module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    sync_playwright,
)
from shapely.geometry import Point

from geo_service.assets import fetch_assets
from geo_service.demo import build_demo
from geo_service.risk.engine import analyze
from geo_service.settings import Settings
from geo_service.store import Store, open_store
from geo_service.webmap.standalone import standalone_map

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INLINE_MAX = 1000  # buildings (3,988 in the demo) come as tiles
MARKUP_NAME = "红星化工 <b>有限公司</b>"
TOOLS = {  # each control's element
    "fullscreen": ".leaflet-control-zoom-fullscreen",
    "measure": ".leaflet-control-measure",
    "draw": ".leaflet-draw.leaflet-control",
    "layers": ".leaflet-control-layers",
    "search": ".georisk-search",
}
TIMEOUT_MS = 30_000  # two cores shared with other work: generous, never reached when all is well


@dataclass(frozen=True)
class Demo:
    """The demo store the server reads, its settings and the server's address."""

    store: Store
    settings: Settings
    url: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo region, analysed, plus one plant named with markup, served by uvicorn."""
    fetch_assets()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("georisk-browser"), map_inline_max_features=INLINE_MAX
    )
    with open_store(settings) as store:
        build_demo(store, seed=2020)
        analyze(store)
        _add_markup_plant(store)
        with _serve(settings) as url:
            yield Demo(store, settings, url)


def _add_markup_plant(store: Store) -> None:
    """A plant east of the region, alone there (so a click reaches it), named with HTML."""
    plant = store.read("chemical_plants", limit=1)
    _, south, east, north = store.extent("admin_areas") or (0.0, 0.0, 0.0, 0.0)
    plant["id"] = "markup-plant"
    plant["name"] = MARKUP_NAME
    plant["risk_class"] = "red"
    plant["geometry"] = Point(east + 0.01, (south + north) / 2)
    store.upsert("chemical_plants", plant)


@contextmanager
def _serve(settings: Settings) -> Iterator[str]:
    """``georisk serve`` in its own process (the test's own Python stays free to drive the
    browser); the base URL while inside."""
    with socket.socket() as probe:  # a free port (released just before the server takes it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "GEORISK_DATA_DIR": str(settings.data_dir),
        "GEORISK_MAP_INLINE_MAX_FEATURES": str(settings.map_inline_max_features),
    }
    env.pop("GEORISK_DATABASE_URL", None)
    command = [sys.executable, "-m", "geo_service", "-q", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/healthz"):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("georisk serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        yield playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )


@dataclass
class Trouble:
    """What went wrong while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Trouble]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    trouble = Trouble()

    def only_local(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.hostname == "127.0.0.1" or url.scheme == "file":
            route.continue_()
        else:
            trouble.blocked.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            trouble.console_errors.append(message.text)

    def on_failed(request: Request) -> None:
        trouble.failed.append(f"{request.url}: {request.failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            trouble.failed.append(f"{response.url}: {response.status}")

    page.route("**/*", only_local)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: trouble.page_errors.append(str(exc)))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    yield page, trouble
    context.close()


# -- helpers -------------------------------------------------------------------------------


def _paths(tab: Page, layer_id: str) -> int:
    """SVG paths drawn in a layer's pane (inline features, or the features of loaded tiles)."""
    return tab.locator(f".leaflet-georisk-{layer_id}-pane path").count()


def _map_call(tab: Page, expression: str, *args: Any) -> Any:
    """Evaluate ``expression`` with ``map`` bound to the folium map (to place the mouse)."""
    script = (
        "([args]) => { const map = window[Object.keys(window).find(k => k.startsWith('map_'))];"
        f" return {expression}; }}"
    )
    return tab.evaluate(script, [list(args)])


def _screen_point(tab: Page, lon: float, lat: float) -> tuple[float, float]:
    """Where on the page the point ``lon, lat`` is drawn."""
    point = _map_call(
        tab,
        "(() => { const p = map.latLngToContainerPoint([args[1], args[0]]);"
        " const box = map.getContainer().getBoundingClientRect();"
        " return [box.left + p.x, box.top + p.y]; })()",
        lon,
        lat,
    )
    return float(point[0]), float(point[1])


def _centre_on(tab: Page, lon: float, lat: float, zoom: int) -> None:
    _map_call(tab, "map.setView([args[1], args[0]], args[2], {animate: false})", lon, lat, zoom)
    tab.wait_for_load_state("networkidle")


def _overlay_labels(tab: Page) -> list[str]:
    labels = tab.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    return [label.strip() for label in labels]


def _popup_text(tab: Page) -> str:
    """The text of the open popup, once its content has come (a closed one fades out first)."""
    tab.wait_for_function(
        "() => document.querySelectorAll('.leaflet-popup-content').length === 1"
        " && !document.querySelector('.leaflet-popup-content .georisk-message')"
    )
    return tab.locator(".leaflet-popup-content").inner_text()


def _clean(trouble: Trouble) -> None:
    assert trouble.blocked == [], "the page asked for something outside georisk"
    assert trouble.failed == []
    assert trouble.console_errors == []
    assert trouble.page_errors == []


# -- the served map -------------------------------------------------------------------------


def test_map_loads_offline_and_draws_every_layer(demo: Demo, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tile_answers: list[int] = []
    tab.on(
        "response",
        lambda r: tile_answers.append(r.status) if "/buildings/tiles/" in r.url else None,
    )
    tab.goto(f"{demo.url}/map", wait_until="networkidle")

    assert tab.locator(".leaflet-container").count() == 1
    counts = demo.store.counts()
    labels = _overlay_labels(tab)
    assert f"危险化学品生产企业 ({counts['chemical_plants']})" in labels
    assert f"建筑物 ({counts['buildings']:,} · 矢量瓦片)" in labels
    assert {"风险强度面", "人口热力"} <= set(labels)
    # inline point layers: one path per feature; the tiled buildings: paths from their tiles
    assert _paths(tab, "chemical_plants") == counts["chemical_plants"]
    assert _paths(tab, "protection_targets") == counts["protection_targets"]
    # the lists' own layers (style.visible false) are offered but start switched off
    measures = tab.get_by_label(f"制度措施清单 ({counts['measures']})")
    assert not measures.is_checked() and _paths(tab, "measures") == 0
    measures.check()
    assert _paths(tab, "measures") == counts["measures"]
    tab.wait_for_function(
        "() => document.querySelectorAll('.leaflet-georisk-buildings-pane path').length > 100"
    )
    assert tile_answers and set(tile_answers) <= {200, 204, 304}
    # the risk surface's PNG tiles load
    assert tab.locator('img.leaflet-tile-loaded[src*="/risk_surface/map/tiles/"]').count() > 0

    # legend: the four risk colours; summary: the store's findings by colour
    legend = tab.locator(".georisk-legend .georisk-risk-classes li").all_inner_texts()
    assert [item.strip() for item in legend] == [
        "红（重大风险）",
        "橙（较大风险）",
        "黄（一般风险）",
        "蓝（低风险）",
    ]
    findings = demo.store.read("findings")
    red = tab.locator('.georisk-summary tr[data-class="red"] td').inner_text()
    assert red == f"{int((findings['risk_class'] == 'red').sum()):,}"

    # the tools are there; population heat draws when switched on
    for tool in ("fullscreen", "measure", "draw", "layers", "search"):
        assert tab.locator(TOOLS[tool]).count() == 1, tool
    tab.get_by_label("人口热力").check()
    assert tab.locator("canvas.leaflet-heatmap-layer").count() == 1

    # an overlay switched off disappears from the map
    tab.get_by_label(f"危险化学品生产企业 ({counts['chemical_plants']})").uncheck()
    assert _paths(tab, "chemical_plants") == 0
    _clean(trouble)


def test_a_click_opens_a_popup_with_attributes_as_text(
    demo: Demo, page: tuple[Page, Trouble]
) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/map", wait_until="networkidle")
    plant = demo.store.read("chemical_plants", ids=["markup-plant"]).geometry.iloc[0]
    tab.mouse.click(*_screen_point(tab, plant.x, plant.y))
    text = _popup_text(tab)
    assert "危险化学品生产企业" in text
    assert MARKUP_NAME in text  # shown as text, not run as markup
    assert tab.locator(".leaflet-popup-content b").count() == 0
    assert "风险等级" in text and "red" in text
    _clean(trouble)


def test_a_click_on_a_tiled_feature_fetches_its_attributes(
    demo: Demo, page: tuple[Page, Trouble]
) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/map", wait_until="networkidle")
    for label in _overlay_labels(tab):  # only the buildings left, so the click reaches them
        if not label.startswith("建筑物"):
            tab.get_by_label(label, exact=True).uncheck()
    buildings = demo.store.read("buildings")
    named = buildings[buildings["name"].notna()]
    largest = named.loc[named.geometry.to_crs(3857).area.idxmax()]
    inside = largest.geometry.representative_point()
    _centre_on(tab, inside.x, inside.y, 18)
    tab.wait_for_function(
        "() => document.querySelectorAll('.leaflet-georisk-buildings-pane path').length > 0"
    )
    tab.mouse.click(*_screen_point(tab, inside.x, inside.y))
    text = _popup_text(tab)
    assert "建筑物" in text and largest["name"] in text and largest["id"] in text
    _clean(trouble)


def test_drawing_a_circle_runs_a_buffer_query(demo: Demo, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/map", wait_until="networkidle")
    # the protection target nearest the middle of the town: buildings all around it
    town = demo.store.read("buildings").geometry.union_all().centroid
    nearest = demo.store.near("protection_targets", town, 10_000).geometry.iloc[0]
    school = nearest.representative_point()
    x, y = _screen_point(tab, school.x, school.y)  # at the first view, all tiles loaded

    tab.locator(".leaflet-draw-draw-circle").click()
    with tab.expect_response("**/query/buffer") as answer:
        tab.mouse.move(x, y)
        tab.mouse.down()
        tab.mouse.move(x + 20, y, steps=5)
        tab.mouse.up()
    request = answer.value.request.post_data_json
    result = answer.value.json()
    assert request["geometry"]["type"] == "Point" and request["distance_m"] > 200
    tab.locator(".georisk-query-summary").wait_for()

    # the panel counts what lies within the drawn circle, as the store measures it
    centre = Point(request["geometry"]["coordinates"])
    for layer_id in ("protection_targets", "buildings"):
        inside = len(demo.store.near(layer_id, centre, request["distance_m"]))
        assert inside > 0
        row = tab.locator(f'.georisk-query-summary tr[data-collection="{layer_id}"] td')
        assert row.inner_text() == f"{inside:,}"
    assert result["summary"]["population"] > 0
    people = tab.locator(".georisk-query-summary tr").last.locator("td").inner_text()
    assert people == f"{round(result['summary']['population']):,}"
    # what was found is highlighted on the map
    assert tab.locator(".leaflet-georisk-found-pane path").count() >= len(result["features"])
    _clean(trouble)


def test_search_finds_features_by_name(demo: Demo, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/map", wait_until="networkidle")
    search = tab.locator(".georisk-search input")

    search.fill("红星化工")  # an inline layer, searched in the page
    result = tab.locator(".georisk-results button", has_text="危险化学品生产企业")
    assert result.inner_text() == f"{MARKUP_NAME} · 危险化学品生产企业"
    result.click()
    assert MARKUP_NAME in _popup_text(tab)

    building = demo.store.read("buildings").dropna(subset=["name"]).iloc[0]
    search.fill(building["name"])  # a tiled layer, searched by the server (CQL2 LIKE)
    found = tab.locator(".georisk-results button", has_text=f"{building['name']} · 建筑物")
    found.first.click()
    assert building["id"] in _popup_text(tab)
    _clean(trouble)


def test_map_in_english(demo: Demo, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/map?lang=en", wait_until="networkidle")
    plants = demo.store.count("chemical_plants")
    assert f"Hazardous-chemical plants ({plants})" in _overlay_labels(tab)
    plant = demo.store.read("chemical_plants", ids=["markup-plant"]).geometry.iloc[0]
    tab.mouse.click(*_screen_point(tab, plant.x, plant.y))
    text = _popup_text(tab)
    assert "Hazardous-chemical plants" in text and "Risk class" in text
    assert tab.locator(".georisk-legend").inner_text().count("(major)") == 1
    _clean(trouble)


def test_standalone_file_opens_from_disk(
    demo: Demo, page: tuple[Page, Trouble], tmp_path: Path
) -> None:
    tab, trouble = page
    settings = demo.settings.model_copy(update={"map_standalone_max_features": 1000})
    path = tmp_path / "map.html"
    path.write_text(standalone_map(demo.store, settings, "zh"), encoding="utf-8")
    tab.goto(path.as_uri(), wait_until="load")
    counts = demo.store.counts()
    labels = _overlay_labels(tab)
    assert f"建筑物 (前 1,000 / 共 {counts['buildings']:,})" in labels
    assert _paths(tab, "chemical_plants") == counts["chemical_plants"]
    assert _paths(tab, "buildings") == 1000
    assert tab.locator(".leaflet-draw").count() == 0  # no server: no buffer query
    plant = demo.store.read("chemical_plants", ids=["markup-plant"]).geometry.iloc[0]
    tab.mouse.click(*_screen_point(tab, plant.x, plant.y))
    assert MARKUP_NAME in _popup_text(tab)
    _clean(trouble)


def test_api_docs_render_offline(demo: Demo, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{demo.url}/docs", wait_until="networkidle")
    tab.locator(".opblock").first.wait_for(state="visible")
    paths = tab.locator(".opblock-summary-path").all_inner_texts()
    assert "/layers/{layer_id}.geojson" in [p.replace("\u200b", "") for p in paths]
    _clean(trouble)
