"""The map in a real browser with no internet: every request not to 127.0.0.1 is blocked.

Runs the app with uvicorn on a free loopback port and opens /map in headless Chromium (Debian's
``chromium`` package, driven by Playwright; never ``playwright install``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    Route,
    sync_playwright,
)
from test_api import sample_frames

from geo_service.api import create_app
from geo_service.assets import fetch_assets
from geo_service.settings import Settings
from geo_service.store import open_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RED = "#e53935"  # chemical_plants' colour for risk_class red (plant p1)


@pytest.fixture(scope="session")
def vendor_assets() -> None:
    """The map's front-end files, fetched from the npm registry when not yet present."""
    fetch_assets()


@pytest.fixture(scope="module")
def server(vendor_assets: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app under uvicorn in a background thread; yields its base URL."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("georisk-browser"))
    with open_store(settings) as store:
        for layer_id, frame in sample_frames().items():
            store.upsert(layer_id, frame)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn takes the socket over
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    app_server = uvicorn.Server(config)
    thread = threading.Thread(target=app_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    app_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
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
    page = context.new_page()
    trouble = Trouble()

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
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

    page.route("**/*", only_loopback)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: trouble.page_errors.append(str(exc)))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    yield page, trouble
    context.close()


def test_map_renders_offline_with_layers_and_popups(
    server: str, page: tuple[Page, Trouble], tmp_path: Path
) -> None:
    tab, trouble = page
    tab.goto(f"{server}/map", wait_until="networkidle")

    assert tab.locator(".leaflet-container").count() == 1
    drawn = tab.locator("path.leaflet-interactive")
    # 3 plants + 2 targets + 1 railway + 1 admin area, every one an SVG path
    assert drawn.count() == 7
    labels = tab.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    assert "危险化学品生产企业 (3)" in [label.strip() for label in labels]

    tab.locator(f'path.leaflet-interactive[stroke="{RED}"]').click()
    popup = tab.locator(".leaflet-popup-content")
    popup.wait_for(state="visible", timeout=5_000)
    text = popup.inner_text()
    assert "危险化学品生产企业" in text
    assert "红星化工 <b>有限公司</b>" in text  # shown as text, not run as markup
    assert popup.locator("b").count() == 0
    assert "重大危险源等级" in text and "nitration、chlorination" in text
    assert "搬迁期限" in text and "2022-12-31" in text
    tab.screenshot(path=str(tmp_path / "map.png"))

    # an overlay switched off disappears from the map
    tab.get_by_label("危险化学品生产企业 (3)").uncheck()
    assert drawn.count() == 4

    assert trouble.blocked == [], "the page asked for something outside georisk"
    assert trouble.failed == []
    assert trouble.console_errors == []
    assert trouble.page_errors == []


def test_map_in_english(server: str, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{server}/map?lang=en", wait_until="networkidle")
    labels = tab.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    assert "Hazardous-chemical plants (3)" in [label.strip() for label in labels]
    tab.locator(f'path.leaflet-interactive[stroke="{RED}"]').click()
    popup = tab.locator(".leaflet-popup-content")
    popup.wait_for(state="visible", timeout=5_000)
    assert "Major hazard source grade" in popup.inner_text()
    assert "Inside a chemical park" in popup.inner_text() and "no" in popup.inner_text()
    assert trouble == Trouble()


def test_api_docs_render_offline(server: str, page: tuple[Page, Trouble]) -> None:
    tab, trouble = page
    tab.goto(f"{server}/docs", wait_until="networkidle")
    tab.locator(".opblock").first.wait_for(state="visible", timeout=10_000)
    paths = tab.locator(".opblock-summary-path").all_inner_texts()
    assert "/layers/{layer_id}.geojson" in [p.replace("\u200b", "") for p in paths]
    assert trouble == Trouble()
