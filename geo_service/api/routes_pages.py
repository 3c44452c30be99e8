"""HTML pages: the landing page, the map and the API docs, all served without internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from geo_service import __version__
from geo_service.api.deps import LangDep, SettingsDep, StaticDirDep, StoreDep
from geo_service.api.errors import AssetsMissing
from geo_service.assets import FETCH_HINT, missing_files, vendor_url
from geo_service.catalogue import Catalogue
from geo_service.store import Store

# modules, not names: the map imports API helpers, so `georisk map` enters this cycle from
# the other side
from geo_service.webmap import page as webmap_page
from geo_service.webmap import vendor as webmap_vendor

router = APIRouter()

_templates = Environment(
    loader=PackageLoader("geo_service.api", "templates"), autoescape=select_autoescape()
)
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
def map_page(
    store: StoreDep, settings: SettingsDep, static_dir: StaticDirDep, lang: LangDep = "zh"
) -> HTMLResponse:
    """The risk map: every layer toggleable, in its risk colours, popups in Chinese or English.

    With a legend, the findings summary, the risk surface, population heat, search, measure and
    a drawing tool that runs a buffer query. Large layers come as vector tiles: the page stays
    light whatever the data size.
    """
    _require(static_dir, webmap_vendor.map_files(), "the map's")
    return HTMLResponse(webmap_page.render_map(store, settings, lang))


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
