"""HTML pages: the landing page, the map and the API docs, all served without internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from geo_service import __version__
from geo_service.api.deps import LangDep, StaticDirDep, StoreDep
from geo_service.api.errors import AssetsMissing
from geo_service.api.map_page import VENDOR_CSS, VENDOR_JS, read_map_layers, render_map
from geo_service.assets import FETCH_HINT, missing_files, vendor_url
from geo_service.catalogue import Catalogue
from geo_service.store import Store

router = APIRouter()

_templates = Environment(
    loader=PackageLoader("geo_service.api", "templates"), autoescape=select_autoescape()
)
_MAP_FILES = [path for _, path in VENDOR_JS + VENDOR_CSS]
_DOCS_JS = "swagger-ui-dist/swagger-ui-bundle.js"
_DOCS_CSS = "swagger-ui-dist/swagger-ui.css"
_DOCS_ICON = "swagger-ui-dist/favicon-32x32.png"


def index_page(store: Store, catalogue: Catalogue) -> HTMLResponse:
    """What georisk is, its layers with their counts, and links to the map and the data.

    Served at ``/`` to browsers; the OGC API landing route (``routes_features``) answers JSON
    there to everyone else.
    """
    counts = store.counts()
    layers = [
        (layer, counts.get(layer.id), layer.kind == "raster" and store.raster_path(layer.id))
        for layer in catalogue
    ]
    page = _templates.get_template("index.html").render(
        layers=layers, version=__version__, catalogue_version=catalogue.version
    )
    return HTMLResponse(page)


@router.get(
    "/map",
    tags=["pages"],
    response_class=HTMLResponse,
    responses={503: {"description": "The map's front-end files are not installed"}},
)
def map_page(store: StoreDep, static_dir: StaticDirDep, lang: LangDep = "zh") -> HTMLResponse:
    """Every vector layer on one map, toggleable; popups titled in Chinese or English."""
    _require(static_dir, _MAP_FILES, "the map's")
    return HTMLResponse(render_map(read_map_layers(store), lang))


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def api_docs(request: Request, static_dir: StaticDirDep) -> HTMLResponse:
    """Swagger UI from the vendor files (FastAPI's own page loads it from a CDN)."""
    _require(static_dir, [_DOCS_JS, _DOCS_CSS], "the API docs'")
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title="georisk API",
        swagger_js_url=vendor_url(_DOCS_JS),
        swagger_css_url=vendor_url(_DOCS_CSS),
        swagger_favicon_url=vendor_url(_DOCS_ICON),
        swagger_ui_parameters={"validatorUrl": None},  # no calls to an online validator
    )


@router.get("/favicon.ico", include_in_schema=False)
def favicon(static_dir: StaticDirDep) -> FileResponse:
    """The four risk colours, so browsers asking for an icon get one (and log no 404)."""
    return FileResponse(static_dir / "favicon.svg", media_type="image/svg+xml")


def _require(static_dir: Path, paths: list[str], whose: str) -> None:
    """Raise ``AssetsMissing`` (503) naming the absent files and the command that fetches them."""
    missing = missing_files(paths, static_dir / "vendor")
    if missing:
        raise AssetsMissing(
            f"{whose} front-end files are not installed (missing {', '.join(missing)}); "
            f"{FETCH_HINT} on the server, then reload this page"
        )
