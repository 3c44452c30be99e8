"""HTML pages: the landing page and the map."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from geo_service import __version__
from geo_service.api.deps import CatalogueDep, LangDep, StaticDirDep, StoreDep
from geo_service.api.map_page import check_assets, read_map_layers, render_map

router = APIRouter(default_response_class=HTMLResponse)

_templates = Environment(
    loader=PackageLoader("geo_service.api", "templates"), autoescape=select_autoescape()
)


@router.get("/", tags=["pages"], response_class=HTMLResponse)
def index(store: StoreDep, catalogue: CatalogueDep) -> HTMLResponse:
    """What georisk is, its layers with their counts, and links to the map and the data."""
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
    check_assets(static_dir / "vendor")
    return HTMLResponse(render_map(read_map_layers(store), lang))
