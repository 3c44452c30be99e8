"""georisk: hazards beside people, on a map, graded in four colours.

The public API: the layer catalogue, the stores, import and validation, and metric helpers.
"""

__version__ = "0.1.0"

from geo_service.catalogue import Catalogue, Layer, load_catalogue
from geo_service.metric import buffer_m, distance_m, metric_crs
from geo_service.settings import Settings
from geo_service.store import Store, open_store

__all__ = [
    "Catalogue",
    "Layer",
    "Settings",
    "Store",
    "__version__",
    "buffer_m",
    "distance_m",
    "load_catalogue",
    "metric_crs",
    "open_store",
]
