"""The FastAPI application: built by ``create_app``, resources opened by its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from geo_service import __version__
from geo_service.api import (
    routes_basemaps,
    routes_downloads,
    routes_features,
    routes_layers,
    routes_pages,
    routes_query,
    routes_risk,
    routes_tiles,
)
from geo_service.api.errors import install_error_handlers
from geo_service.assets import STATIC_DIR
from geo_service.catalogue import load_catalogue
from geo_service.settings import Settings
from geo_service.store import open_store
from geo_service.tiling import TileCache


def create_app(settings: Settings | None = None, *, static_dir: Path | None = None) -> FastAPI:
    """The georisk web service; nothing is opened until the app starts.

    ``static_dir`` is the folder served under ``/static`` (default: ``geo_service/static``,
    whose ``vendor/`` holds the front-end files fetched by ``georisk assets fetch``).
    """
    settings = settings or Settings()
    static_dir = static_dir or STATIC_DIR

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        catalogue = load_catalogue(settings.catalogue_dir)
        store = open_store(settings, catalogue)
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.store = store
        app.state.static_dir = static_dir
        app.state.tile_cache = TileCache(int(settings.tile_cache_mb * 2**20))
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="georisk",
        version=__version__,
        description="Hazards beside people, on a map, graded in four colours.",
        lifespan=lifespan,
        docs_url=None,  # served by routes_pages from the vendor files, not from a CDN
        redoc_url=None,
        openapi_url="/api",  # the OGC API's service-desc
    )
    install_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=1024)  # the map page shrinks about 8×
    # risk and downloads first: their paths under /collections/findings/… are more specific
    app.include_router(routes_risk.router)
    app.include_router(routes_downloads.router)
    app.include_router(routes_features.router)
    app.include_router(routes_query.router)
    app.include_router(routes_pages.router)
    app.include_router(routes_layers.router)
    app.include_router(routes_tiles.router)
    app.include_router(routes_basemaps.router)
    app.add_api_route("/openapi.json", app.openapi, include_in_schema=False)  # FastAPI's usual URL
    app.mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static")
    return app
