"""What a rule sees: the layers (read once, shared), the rasters, and other rules' results."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyproj

from geo_service.catalogue import Catalogue
from geo_service.metric import metric_crs
from geo_service.store import Store


class RuleContext:
    """One analysis run's view of the store.

    ``frame(layer_id)`` reads a layer once per run; ``shared`` carries results between rule kinds
    (a rule kind that reads another's result declares it in ``after``), keyed
    ``"<kind>:<layer>"``, e.g. ``shared["dense_area:chemical_plants"]`` → a boolean Series by id.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalogue: Catalogue = store.catalogue
        self.shared: dict[str, Any] = {}
        self._frames: dict[str, gpd.GeoDataFrame] = {}

    def frame(self, layer_id: str) -> gpd.GeoDataFrame:
        """The layer's features (EPSG:4326, canonical form), read once per run."""
        if layer_id not in self._frames:
            self._frames[layer_id] = self.store.read(layer_id)
        return self._frames[layer_id]

    def forget(self, layer_id: str) -> None:
        """Drop a layer read before it was written during the run; ``frame`` reads it again."""
        self._frames.pop(layer_id, None)

    def raster_path(self, layer_id: str) -> Path | None:
        """A local GeoTIFF of a raster layer, or None when the store has none."""
        return self.store.raster_path(layer_id)

    @cached_property
    def metric_crs(self) -> pyproj.CRS:
        """One metric CRS for the data's extent (the zone of its centre).

        Right for a city or a county; rules on data spread over several zones use
        ``geo_service.metric.to_metric_by_zone`` or ECEF coordinates instead.
        """
        bounds = [
            frame.total_bounds
            for layer in self.catalogue.vector_layers
            if layer.importable and len(frame := self.frame(layer.id))
        ]
        if not bounds:
            return metric_crs(0.0, 0.0)
        minx = min(b[0] for b in bounds)
        miny = min(b[1] for b in bounds)
        maxx = max(b[2] for b in bounds)
        maxy = max(b[3] for b in bounds)
        return metric_crs((minx + maxx) / 2, (miny + maxy) / 2)
