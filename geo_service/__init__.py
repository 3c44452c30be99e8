"""georisk: hazards beside people, on a map, graded in four colours.

The public API: the layer catalogue, the stores, import and validation, metric helpers, and
buffer and proximity queries.
Names load on first use, so ``georisk --help`` starts without geopandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Catalogue": "geo_service.catalogue",
    "Layer": "geo_service.catalogue",
    "load_catalogue": "geo_service.catalogue",
    "buffer_m": "geo_service.metric",
    "distance_m": "geo_service.metric",
    "metric_crs": "geo_service.metric",
    "Settings": "geo_service.settings",
    "Store": "geo_service.store",
    "open_store": "geo_service.store",
    "import_file": "geo_service.importer",
    "validate_file": "geo_service.importer",
    "BufferResult": "geo_service.query",
    "NearPairs": "geo_service.query",
    "buffer_query": "geo_service.query",
    "near_pairs": "geo_service.query",
}

__all__ = [
    "BufferResult",
    "Catalogue",
    "Layer",
    "NearPairs",
    "Settings",
    "Store",
    "__version__",
    "buffer_m",
    "buffer_query",
    "distance_m",
    "import_file",
    "load_catalogue",
    "metric_crs",
    "near_pairs",
    "open_store",
    "validate_file",
]

if TYPE_CHECKING:
    from geo_service.catalogue import Catalogue, Layer, load_catalogue
    from geo_service.importer import import_file, validate_file
    from geo_service.metric import buffer_m, distance_m, metric_crs
    from geo_service.query import BufferResult, NearPairs, buffer_query, near_pairs
    from geo_service.settings import Settings
    from geo_service.store import Store, open_store


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geo_service' has no attribute {name!r}")
