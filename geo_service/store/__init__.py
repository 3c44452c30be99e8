"""Stores behind one interface: the embedded GeoPackage (default) and PostGIS."""

from __future__ import annotations

from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.settings import Settings
from geo_service.store.base import BBox, Page, SortKey, Store, StoreError, WriteResult

__all__ = ["BBox", "Page", "SortKey", "Store", "StoreError", "WriteResult", "open_store"]


def open_store(settings: Settings | None = None, catalogue: Catalogue | None = None) -> Store:
    """The store the settings name: PostGIS when ``database_url`` is set, else the GeoPackage."""
    settings = settings or Settings()
    catalogue = catalogue or load_catalogue(settings.catalogue_dir)
    if settings.database_url:
        from geo_service.store.postgis import PostGISStore  # needs a server: import only then

        return PostGISStore(catalogue, settings.database_url)
    from geo_service.store.gpkg import GeoPackageStore

    return GeoPackageStore(catalogue, settings.data_dir)
