"""The one interface both stores implement: features in canonical frames, rasters as files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
from pygeofilter.ast import AstType
from shapely.geometry.base import BaseGeometry

from geo_service.catalogue import Catalogue, Layer
from geo_service.metric import distance_m

if TYPE_CHECKING:
    from geo_service.tiling.vector import TilePolicy

BBox = tuple[float, float, float, float]


class StoreError(Exception):
    """A store could not do what was asked; the message is fit for a user."""


@dataclass(frozen=True)
class WriteResult:
    """What a write did."""

    inserted: int
    updated: int


@dataclass(frozen=True)
class SortKey:
    """One ``sortby`` key: a field (or ``id``), ascending unless ``descending``."""

    name: str
    descending: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a query's features, and how many match in all.

    ``number_matched`` is a count when ``exact``, else an estimate (a large PostGIS table is
    never counted in full); ``more`` says whether features follow the page.
    """

    frame: gpd.GeoDataFrame
    number_matched: int | None
    exact: bool
    more: bool


class Store(ABC):
    """A place that keeps the catalogue's layers.

    Every write is atomic: it happens whole or not at all. Features go in and come out as
    canonical frames (``geo_service.schema``); rasters are kept as GeoTIFF files.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def layer(self, layer_id: str) -> Layer:
        """The catalogue layer ``layer_id``; KeyError when unknown."""
        return self.catalogue[layer_id]

    @abstractmethod
    def upsert(self, layer_id: str, frame: gpd.GeoDataFrame) -> WriteResult:
        """Insert features, or update those whose ``id`` is already stored."""

    @abstractmethod
    def replace(self, layer_id: str, frame: gpd.GeoDataFrame) -> WriteResult:
        """Make ``frame`` the whole content of the layer."""

    @abstractmethod
    def read(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        ids: list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> gpd.GeoDataFrame:
        """Features ordered by id; those intersecting ``bbox`` (lon/lat) or with ``ids``."""

    @abstractmethod
    def query(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        filter: AstType | None = None,
        sortby: Sequence[SortKey] = (),
        limit: int = 10,
        offset: int = 0,
        properties: Sequence[str] | None = None,
        exact_count: bool = False,
    ) -> Page:
        """One page of the features intersecting ``bbox`` (lon/lat) and matching ``filter``.

        ``filter`` is a pygeofilter AST in the dialect of ``geo_service.store.filters``; rows
        come in ``sortby`` order, then by id. ``properties`` names the fields to read (the
        others come back empty); None reads them all. ``exact_count`` counts the matches even
        on a large table, where ``number_matched`` is otherwise an estimate.
        """

    def iter_query(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        filter: AstType | None = None,
        sortby: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int = 0,
        properties: Sequence[str] | None = None,
        chunk_size: int = 1000,
    ) -> Iterator[gpd.GeoDataFrame]:
        """The features ``query`` selects, in frames of at most ``chunk_size`` rows.

        Memory stays flat however many features match. This default asks page after page;
        the stores override it with one scan.
        """
        start, remaining = non_negative(offset, "offset"), limit
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            page = self.query(
                layer_id,
                bbox=bbox,
                filter=filter,
                sortby=sortby,
                limit=size,
                offset=start,
                properties=properties,
            )
            if len(page.frame):
                yield page.frame
            if not page.more:
                return
            start += len(page.frame)
            remaining = None if remaining is None else remaining - len(page.frame)

    @abstractmethod
    def count(self, layer_id: str, *, bbox: BBox | None = None) -> int:
        """How many features the layer holds (intersecting ``bbox`` when given)."""

    @abstractmethod
    def delete(self, layer_id: str, ids: list[str]) -> int:
        """Remove the features with ``ids``; returns how many were removed."""

    @abstractmethod
    def put_raster(self, layer_id: str, path: Path) -> None:
        """Keep the GeoTIFF at ``path`` as the raster layer ``layer_id`` (replacing any)."""

    @abstractmethod
    def raster_path(self, layer_id: str) -> Path | None:
        """A local GeoTIFF of raster layer ``layer_id``, or None when none is stored."""

    @abstractmethod
    def data_version(self) -> str:
        """A token that changes whenever any stored data changes."""

    def near(self, layer_id: str, geometry: BaseGeometry, distance: float) -> gpd.GeoDataFrame:
        """Features within ``distance`` metres of ``geometry`` (EPSG:4326), nearest first.

        The result carries a ``distance_m`` column. This default reads the candidates in a
        bounding box widened by the distance and measures each exactly in metres; PostGIS
        overrides it with ``ST_DWithin`` on geography.
        """
        minx, miny, maxx, maxy = geometry.bounds
        # degrees per metre shrink with latitude; widen by 1 % so no candidate is missed
        lat = min(max(abs(miny), abs(maxy)), 89.0)
        dlat = distance / 110_574 * 1.01
        dlon = distance / (111_320 * np.cos(np.radians(lat + dlat))) * 1.01
        candidates = self.read(layer_id, bbox=(minx - dlon, miny - dlat, maxx + dlon, maxy + dlat))
        measured = distance_m(candidates.geometry.values, np.full(len(candidates), geometry))
        found = candidates.assign(distance_m=measured)[measured <= distance]
        return found.sort_values(["distance_m", "id"], kind="stable").reset_index(drop=True)

    def tile(
        self,
        layer_id: str,
        z: int,
        x: int,
        y: int,
        *,
        properties: list[str] | None = None,
        policy: TilePolicy | None = None,
    ) -> bytes:
        """The Mapbox Vector Tile of the layer at ``z/x/y`` of WebMercatorQuad.

        One MVT layer named as the layer, thinned as ``geo_service.tiling.vector`` describes;
        ``properties`` names the fields carried (default: all). ``b""`` for an empty tile. This
        default reads the features near the tile (bounding box) and encodes them in Python;
        PostGIS overrides it with one ``ST_AsMVT`` query.
        """
        from geo_service.tiling.grid import TileAddress
        from geo_service.tiling.vector import DEFAULT_POLICY, encode_frame, tile_fields

        layer, policy = self.layer(layer_id), policy or DEFAULT_POLICY
        if layer.kind != "vector":
            raise StoreError(f"layer {layer_id!r} is a raster layer: it holds no features")
        tile = TileAddress.checked(z, x, y)
        fields = tile_fields(layer, properties)
        box = tile.frame(policy.extent).lonlat_bounds(policy.buffer)
        frame = self.read(layer_id, bbox=box)
        return encode_frame(layer, frame, tile, fields=fields, policy=policy)

    def extent(self, layer_id: str) -> BBox | None:
        """``(west, south, east, north)`` of the layer's features; None when it has none."""
        geometries = self.read(layer_id).geometry
        geometries = geometries[~(geometries.isna() | geometries.is_empty)]
        if not len(geometries):
            return None
        west, south, east, north = (float(v) for v in geometries.total_bounds)
        return west, south, east, north

    def counts(self) -> dict[str, int]:
        """Feature count of every vector layer."""
        return {layer.id: self.count(layer.id) for layer in self.catalogue.vector_layers}

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_unique_ids(layer: Layer, frame: gpd.GeoDataFrame) -> None:
    """Refuse a write that names one id twice (which row would win is not defined)."""
    dupes = frame["id"][frame["id"].duplicated()].unique()
    if len(dupes):
        shown = ", ".join(map(str, dupes[:5]))
        raise StoreError(f"{layer.id}: duplicate ids in one write: {shown}")


def non_negative(value: int, name: str) -> int:
    """A paging value (limit, offset) as an int, refused when negative or not whole."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or number != value:
        raise StoreError(f"{name} must be a whole number, 0 or more, got {value!r}")
    return number
