"""Buffer and proximity queries: what lies within a distance of a place, a feature, or a layer.

``buffer_query`` answers "what lies within 1 km of this plant?": the features of each collection
within ``distance_m`` metres of a geometry (or of a stored feature), each with its exact distance,
and a summary (counts per collection and per category, the buffer's area, the people inside).
``near_pairs`` answers "which plants have a school within 500 m?": every pair of features of two
layers within the distance, with the shortest line between them.

Each collection costs one indexed store query: the features intersecting a search area (the
buffer widened by ``_MARGIN``, which covers the difference between measuring zones) go through
the store's spatial index (GiST on PostGIS, the R-tree in the GeoPackage) together with the
CQL2 filter, then each is measured exactly (``metric.distance_m``: on the spheroid for points,
in the local Gauss–Krüger or UTM zone otherwise) and kept when within the distance, a feature
exactly at it included. Both stores therefore answer the same features with the same distances.

A feature's *category* is the value of its layer's ``category_field`` in the catalogue. People
come from the catalogue's exposure raster (``kind: raster``, ``role: exposure``) when one is
stored, partial cells weighted by the part covered (``risk.exposure``); else ``population`` is
None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray
from pygeofilter import ast, values
from shapely.geometry.base import BaseGeometry

from geo_service import metric
from geo_service.catalogue import Catalogue, Layer
from geo_service.metric import GEOD, WGS84, buffer_m, to_metric_by_zone
from geo_service.risk.proximity import AT_DISTANCE_ALLOWANCE_M, pairs_within
from geo_service.store import Store

__all__ = [
    "BufferResult",
    "NearPairs",
    "QueryError",
    "TooManyFeatures",
    "UnknownFeature",
    "buffer_query",
    "near_pairs",
]

#: The search area reaches this fraction, plus ``_MARGIN_M``, past the distance: the buffer is
#: drawn in the zone of the query geometry, distances in the zone of each pair (or on the
#: spheroid), which differ by less than 0.2 % across a zone; exact distances decide.
_MARGIN = 0.005
_MARGIN_M = 1.0
_NAME_FIELD = "name"  # the catalogue's convention for a feature's display name
_MISSING = "(none)"  # the category of a feature whose category field is empty
_GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
}


class QueryError(ValueError):
    """A query that cannot be answered as asked; the message names the parameter and value."""


class UnknownFeature(QueryError):
    """The feature a query is centred on does not exist."""


class TooManyFeatures(QueryError):
    """More features or pairs match than the configured cap allows (never silently cut)."""


class _Overflow(Exception):
    """More features than the room left (raised as soon as it is known)."""


@dataclass(frozen=True)
class BufferResult:
    """What lies within ``distance_m`` of ``geometry``, per collection, nearest first.

    ``features[collection]`` is a canonical frame of the layer with a ``distance_m`` column;
    ``buffer`` is the area within the distance (EPSG:4326), ``area_m2`` its area on the
    spheroid, ``population`` the people inside it (None without a population raster).
    """

    geometry: BaseGeometry
    distance_m: float
    buffer: BaseGeometry
    area_m2: float
    population: float | None
    features: dict[str, gpd.GeoDataFrame]
    layers: dict[str, Layer]

    @property
    def number_returned(self) -> int:
        """How many features lie within the distance, all collections together."""
        return sum(len(frame) for frame in self.features.values())

    @property
    def summary(self) -> dict[str, Any]:
        """Counts per collection and per category, the buffer's area and the people inside."""
        return {
            "distance_m": self.distance_m,
            "area_m2": round(self.area_m2, 1),
            "collections": {
                name: _collection_summary(self.layers[name], frame)
                for name, frame in self.features.items()
            },
            "population": None if self.population is None else round(self.population, 1),
        }

    def to_geojson(self) -> dict[str, Any]:
        """An RFC 7946 FeatureCollection; ``summary`` and ``numberReturned`` are foreign members."""
        features = [
            _feature(self.layers[name], row)
            for name, frame in self.features.items()
            for row in _features(self.layers[name], frame)
        ]
        return {
            "type": "FeatureCollection",
            "features": features,
            "summary": self.summary,
            "numberReturned": len(features),
        }


@dataclass(frozen=True)
class NearPairs:
    """Pairs of features of two layers within ``distance_m`` of each other.

    ``frame`` has ``from_id``, ``from_name``, ``from_category``, ``to_id``, ``to_name``,
    ``to_category``, ``distance_m`` and, as geometry, the shortest line from the first feature to
    the second (EPSG:4326); ordered by ``from_id``, then distance, then ``to_id``.
    """

    from_layer: str
    to_layer: str
    distance_m: float
    frame: gpd.GeoDataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def to_geojson(self, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Pairs ``offset`` to ``offset + limit`` as RFC 7946 Features (the line as geometry)."""
        part = self.frame.iloc[offset : None if limit is None else offset + limit]
        lines = shapely.to_geojson(np.asarray(part.geometry.values, dtype=object))
        out = []
        for row, line in zip(part.itertuples(index=False), lines, strict=True):
            properties = {
                "from_collection": self.from_layer,
                "from_id": row.from_id,
                "from_name": row.from_name,
                "from_category": row.from_category,
                "to_collection": self.to_layer,
                "to_id": row.to_id,
                "to_name": row.to_name,
                "to_category": row.to_category,
                "distance_m": round(float(row.distance_m), 3),
            }
            out.append(
                {
                    "type": "Feature",
                    "id": f"{row.from_id}~{row.to_id}",
                    "geometry": json.loads(line),
                    "properties": properties,
                }
            )
        return out

    @property
    def summary(self) -> dict[str, Any]:
        """How many pairs, and how many features of each side take part in one."""
        return {
            "from": self.from_layer,
            "to": self.to_layer,
            "distance_m": self.distance_m,
            "pairs": len(self.frame),
            "from_features": int(self.frame["from_id"].nunique()),
            "to_features": int(self.frame["to_id"].nunique()),
        }


def buffer_query(
    store: Store,
    *,
    geometry: BaseGeometry | None = None,
    feature: tuple[str, str] | None = None,
    distance_m: float,
    collections: Sequence[str] | None = None,
    filter: str | Mapping[str, Any] | None = None,
    filter_lang: str | None = None,
    max_distance_m: float | None = None,
    max_features: int | None = None,
) -> BufferResult:
    """The features within ``distance_m`` metres of ``geometry`` or of ``feature``.

    ``geometry`` is in EPSG:4326 (lon/lat); ``feature`` is ``(collection, id)`` of a stored
    feature, which is itself left out of the answer. ``collections`` defaults to every vector
    input layer; ``filter`` (CQL2 text, or CQL2 JSON as a mapping or with
    ``filter_lang="cql2-json"``) applies to each collection and must be valid for each. A point
    with ``distance_m=0`` finds what covers it; a polygon with 0 finds what lies inside it.
    Raises ``QueryError`` (``UnknownFeature``, ``TooManyFeatures``) naming what is wrong.
    """
    distance = _checked_distance(distance_m, max_distance_m)
    if (geometry is None) == (feature is None):
        raise QueryError("give either geometry or feature (collection, id), not both or neither")
    exclude: tuple[str, str] | None = None
    if feature is not None:
        geometry, exclude = _feature_geometry(store, feature), feature
    assert geometry is not None
    subject = check_lonlat(geometry, "geometry")
    layers = _collections(store.catalogue, collections)
    filters = {layer.id: _filter(layer, filter, filter_lang) for layer in layers}
    search = _reach(gpd.GeoSeries([subject], crs=WGS84), distance).iloc[0]
    found: dict[str, gpd.GeoDataFrame] = {}
    for layer in layers:
        room = None if max_features is None else max_features - sum(map(len, found.values()))
        if room is not None and exclude is not None and exclude[0] == layer.id:
            room += 1  # the reference feature itself is found, then left out
        try:
            frame = _within(store, layer, subject, search, distance, filters[layer.id], room)
        except _Overflow:
            raise TooManyFeatures(
                f"more than {max_features} features lie within {distance:g} m (counting up to "
                f"{layer.id}); the answer would be cut short, so it is refused: name fewer "
                "collections, add a filter or use a shorter distance_m"
            ) from None
        if exclude is not None and exclude[0] == layer.id:
            frame = frame[frame["id"] != exclude[1]].reset_index(drop=True)
        found[layer.id] = frame
    area = _buffer(subject, distance)
    return BufferResult(
        geometry=subject,
        distance_m=distance,
        buffer=area,
        area_m2=abs(float(GEOD.geometry_area_perimeter(area)[0])) if not area.is_empty else 0.0,
        population=_population(store, area),
        features=found,
        layers={layer.id: layer for layer in layers},
    )


def near_pairs(
    store: Store,
    from_layer: str,
    to_layer: str,
    distance_m: float,
    filter: str | Mapping[str, Any] | None = None,
    *,
    filter_lang: str | None = None,
    from_filter: str | Mapping[str, Any] | None = None,
    max_distance_m: float | None = None,
    max_pairs: int | None = None,
) -> NearPairs:
    """Every pair (a feature of ``from_layer``, a feature of ``to_layer``) within ``distance_m``.

    ``filter`` selects the ``to_layer`` features, ``from_filter`` the ``from_layer`` ones (CQL2
    as for ``buffer_query``). The from-features are grouped by metric zone; for each group the
    to-features in reach are read through the spatial index, paired by
    ``risk.proximity.pairs_within`` and measured exactly (``metric.distance_m``). A feature is
    never paired with itself. Raises ``TooManyFeatures`` past ``max_pairs``.
    """
    distance = _checked_distance(distance_m, max_distance_m)
    source = _collections(store.catalogue, [from_layer], "from")[0]
    target = _collections(store.catalogue, [to_layer], "to")[0]
    wanted_from, wanted_to = _wanted(source), _wanted(target)
    from_node = _filter(source, from_filter, filter_lang, "from-filter")
    sources = _read(store, source, None, from_node, wanted_from)
    to_node = _filter(target, filter, filter_lang)
    reach = distance * (1 + _MARGIN) + _MARGIN_M
    geometry = sources.geometry
    present = ~(shapely.is_missing(geometry.values) | shapely.is_empty(geometry.values))
    parts = []
    for crs, projected in to_metric_by_zone(geometry[present]).items():
        west, south, east, north = projected.total_bounds
        box = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True).transform_bounds(
            west - reach, south - reach, east + reach, north + reach, densify_pts=21
        )
        targets = _read(store, target, box, to_node, wanted_to)
        if len(targets):
            chosen = sources.loc[projected.index]
            parts.append(_zone_pairs(chosen, projected, targets, reach, (source, target)))
    pairs = pd.concat(parts, ignore_index=True) if parts else _no_pairs()
    exact = _measure(pairs["from_geometry"].to_numpy(), pairs["to_geometry"].to_numpy())
    keep = exact <= distance + AT_DISTANCE_ALLOWANCE_M
    if source.id == target.id:
        keep &= (pairs["from_id"] != pairs["to_id"]).to_numpy(bool)
    pairs = pairs.assign(distance_m=exact)[keep]
    if max_pairs is not None and len(pairs) > max_pairs:
        raise TooManyFeatures(
            f"{len(pairs)} pairs of {source.id} and {target.id} lie within {distance:g} m, "
            f"more than the {max_pairs} allowed; use a filter or a shorter distance_m"
        )
    return NearPairs(source.id, target.id, distance, _pair_frame(pairs))


def check_lonlat(geometry: BaseGeometry, name: str) -> BaseGeometry:
    """``geometry`` if it is a valid, non-empty lon/lat geometry; else ``QueryError`` naming it."""
    kind = geometry.geom_type
    if kind not in _GEOMETRY_TYPES:
        raise QueryError(f"{name}: a {kind} is not supported; use one of {sorted(_GEOMETRY_TYPES)}")
    if geometry.is_empty:
        raise QueryError(f"{name}: the {kind} is empty")
    xy = shapely.get_coordinates(geometry)
    if not np.isfinite(xy).all():
        raise QueryError(f"{name}: coordinates must be finite numbers")
    lon, lat = xy[:, 0], xy[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        bad = xy[(np.abs(lon) > 180) | (np.abs(lat) > 90)][0]
        raise QueryError(
            f"{name}: position ({bad[0]:g}, {bad[1]:g}) is outside lon -180..180, lat -90..90 "
            "(EPSG:4326, longitude first)"
        )
    if not geometry.is_valid:
        raise QueryError(f"{name}: invalid {kind}: {shapely.is_valid_reason(geometry)}")
    return geometry


# -- buffer query -------------------------------------------------------------------------------


def _measure(a: Any, b: Any) -> NDArray[np.float64]:
    """``metric.distance_m`` pair by pair: point pairs on the spheroid even among other shapes.

    ``metric.distance_m`` takes the spheroid only when every pair is two points; a point beside a
    polygon in the same chunk would otherwise be measured in the zone (a few mm per km off).
    """
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    points = (shapely.get_type_id(a) == 0) & (shapely.get_type_id(b) == 0)
    out = np.empty(len(a))
    for part in (points, ~points):
        if part.any():
            out[part] = metric.distance_m(a[part], b[part])
    return out


def _checked_distance(value: float, maximum: float | None) -> float:
    try:
        distance = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"distance_m {value!r}: not a number") from None
    if not np.isfinite(distance) or distance < 0:
        raise QueryError(f"distance_m {value!r}: must be a finite number of metres, 0 or more")
    if maximum is not None and distance > maximum:
        raise QueryError(f"distance_m {value!r}: at most {maximum:g} m is allowed")
    return distance


def _feature_geometry(store: Store, feature: tuple[str, str]) -> BaseGeometry:
    collection, feature_id = feature
    if collection not in store.catalogue:
        raise UnknownFeature(f"feature.collection {collection!r}: no such collection")
    layer = _collections(store.catalogue, [collection], "feature.collection")[0]
    found = store.read(layer.id, ids=[str(feature_id)])
    geometry = found.geometry.iloc[0] if len(found) else None
    if geometry is None or geometry.is_empty:
        raise UnknownFeature(
            f"feature.featureId {feature_id!r}: not found in collection {layer.id!r}"
        )
    return geometry


def _collections(
    catalogue: Catalogue, names: Iterable[str] | None, parameter: str = "collections"
) -> list[Layer]:
    """The vector layers named (default: every input layer), each once, in the order given."""
    if names is None:
        return [layer for layer in catalogue.vector_layers if layer.importable]
    chosen = list(dict.fromkeys(str(name).strip() for name in names))
    if not chosen:
        raise QueryError(f"{parameter}: name at least one collection")
    vector = [layer.id for layer in catalogue.vector_layers]
    for name in chosen:
        if name not in catalogue:
            known = ", ".join(sorted(vector))
            raise QueryError(f"{parameter}: unknown collection {name!r}; known: {known}")
        if catalogue[name].kind != "vector":
            raise QueryError(f"{parameter}: {name!r} is a raster layer, not a feature collection")
    return [catalogue[name] for name in chosen]


def _filter(
    layer: Layer,
    text: str | Mapping[str, Any] | None,
    lang: str | None,
    parameter: str = "filter",
) -> ast.AstType | None:
    """The CQL2 filter checked against ``layer``; ``QueryError`` naming the collection if bad."""
    from geo_service.api.cql import parse_filter
    from geo_service.api.errors import ApiError

    if text is None:
        return None
    if lang not in (None, "cql2-text", "cql2-json"):
        raise QueryError(f"filter-lang {lang!r}: expected cql2-text or cql2-json")
    if not isinstance(text, str):
        lang, text = "cql2-json", json.dumps(text)
    try:
        return parse_filter(layer, text, "cql2-json" if lang == "cql2-json" else "cql2-text")
    except ApiError as exc:
        where = "" if layer.id in exc.message else f" (in collection {layer.id!r})"
        named = "" if parameter == "filter" else f"{parameter}: "
        raise QueryError(named + exc.message + where) from None


def _reach(geometries: gpd.GeoSeries, distance: float) -> gpd.GeoSeries:
    """The area a candidate must touch: the buffer widened by the margin."""
    return buffer_m(geometries, distance * (1 + _MARGIN) + _MARGIN_M)


def _within(
    store: Store,
    layer: Layer,
    subject: BaseGeometry,
    search: BaseGeometry,
    distance: float,
    node: ast.AstType | None,
    room: int | None,
) -> gpd.GeoDataFrame:
    """The layer's features within ``distance`` of ``subject``, nearest first, measured.

    Raises ``_Overflow`` as soon as more than ``room`` are found.
    """
    from geo_service.api.cql import combine

    touches = ast.GeometryIntersects(
        ast.Attribute("geometry"), values.Geometry(shapely.geometry.mapping(search))
    )
    kept: list[gpd.GeoDataFrame] = []
    count = 0
    for chunk in store.iter_query(layer.id, bbox=search.bounds, filter=combine(node, touches)):
        measured = _measure(chunk.geometry.values, np.full(len(chunk), subject, dtype=object))
        inside = measured <= distance + AT_DISTANCE_ALLOWANCE_M
        kept.append(chunk.assign(distance_m=measured)[inside])
        count += int(inside.sum())
        if room is not None and count > room:
            raise _Overflow
    if not kept:
        return _empty(layer)
    frame = pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0]
    return frame.sort_values(["distance_m", "id"], kind="stable").reset_index(drop=True)


def _empty(layer: Layer) -> gpd.GeoDataFrame:
    from geo_service.schema import empty_frame

    return empty_frame(layer).assign(distance_m=np.zeros(0))


def _buffer(subject: BaseGeometry, distance: float) -> BaseGeometry:
    """The area within ``distance``: a polygon itself at 0, else its metric buffer."""
    if distance == 0:
        return subject if subject.geom_type.endswith("Polygon") else shapely.Polygon()
    buffered: BaseGeometry = buffer_m(gpd.GeoSeries([subject], crs=WGS84), distance).iloc[0]
    return buffered


def _population(store: Store, area: BaseGeometry) -> float | None:
    """People inside ``area`` from the first stored exposure raster; None when none is stored."""
    from geo_service.risk.exposure import population_in

    for layer in store.catalogue:
        if layer.kind == "raster" and layer.role == "exposure":
            path = store.raster_path(layer.id)
            if path is not None:
                return float(population_in(path, gpd.GeoSeries([area], crs=WGS84))[0])
    return None


def _collection_summary(layer: Layer, frame: gpd.GeoDataFrame) -> dict[str, Any]:
    field = layer.category_field
    by_category: dict[str, int] = {}
    if field is not None and len(frame):
        labels = frame[field].astype(object).where(frame[field].notna(), _MISSING).astype(str)
        counts = labels.value_counts()
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        by_category = {str(name): int(n) for name, n in ordered}
    return {"count": len(frame), "category_field": field, "by_category": by_category}


def _features(layer: Layer, frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    from geo_service.api.geojson import feature_collection

    features: list[dict[str, Any]] = feature_collection(layer, frame, system_columns=False)[
        "features"
    ]
    for feature, measured in zip(features, frame["distance_m"], strict=True):
        feature["properties"]["distance_m"] = round(float(measured), 3)
    return features


def _feature(layer: Layer, feature: dict[str, Any]) -> dict[str, Any]:
    feature["properties"]["collection"] = layer.id
    return feature


# -- proximity pairs ----------------------------------------------------------------------------


def _wanted(layer: Layer) -> list[str]:
    """The fields a pair shows: the name and the category, where the layer has them."""
    names = [_NAME_FIELD, layer.category_field]
    return [name for name in dict.fromkeys(names) if name is not None and name in layer.field_map]


def _read(
    store: Store,
    layer: Layer,
    bbox: tuple[float, float, float, float] | None,
    node: ast.AstType | None,
    properties: list[str],
) -> gpd.GeoDataFrame:
    chunks = list(store.iter_query(layer.id, bbox=bbox, filter=node, properties=properties))
    if not chunks:
        return _empty(layer).drop(columns="distance_m")
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def _zone_pairs(
    sources: gpd.GeoDataFrame,
    sources_m: gpd.GeoSeries,
    targets: gpd.GeoDataFrame,
    reach: float,
    layers: tuple[Layer, Layer],
) -> pd.DataFrame:
    """Candidate pairs of one zone's sources, found in that zone's metres (``pairs_within``)."""
    crs = sources_m.crs
    targets_m = targets.geometry.to_crs(crs)
    found = pairs_within(
        np.asarray(sources_m.values, dtype=object),
        np.zeros(len(sources_m), dtype=np.intp),
        np.asarray(targets_m.values, dtype=object),
        np.zeros(len(targets_m), dtype=np.intp),
        np.array([[reach]]),
    )
    h, t = found.hazard, found.target
    lines_m = shapely.shortest_line(
        np.asarray(sources_m.values, dtype=object)[h], np.asarray(targets_m.values, dtype=object)[t]
    )
    lines = gpd.GeoSeries(lines_m, crs=crs).to_crs(WGS84)
    src, dst = sources.iloc[h].reset_index(drop=True), targets.iloc[t].reset_index(drop=True)
    return pd.DataFrame(
        {
            "from_id": src["id"].to_numpy(),
            "from_geometry": src.geometry.to_numpy(),
            "to_id": dst["id"].to_numpy(),
            "to_geometry": dst.geometry.to_numpy(),
            "line": lines.to_numpy(),
            "from_name": _column(src, _NAME_FIELD),
            "to_name": _column(dst, _NAME_FIELD),
            "from_category": _column(src, layers[0].category_field),
            "to_category": _column(dst, layers[1].category_field),
        }
    )


def _column(frame: pd.DataFrame, name: str | None) -> np.ndarray:
    if name is None or name not in frame:
        return np.full(len(frame), None, dtype=object)
    return np.asarray(frame[name].astype(object).where(frame[name].notna(), None), dtype=object)


def _no_pairs() -> pd.DataFrame:
    names = ["from_id", "from_geometry", "to_id", "to_geometry", "line"]
    names += ["from_name", "to_name", "from_category", "to_category"]
    return pd.DataFrame({name: np.empty(0, dtype=object) for name in names})


def _pair_frame(pairs: pd.DataFrame) -> gpd.GeoDataFrame:
    ordered = pairs.sort_values(["from_id", "distance_m", "to_id"], kind="stable")
    columns = ["from_id", "from_name", "from_category", "to_id", "to_name", "to_category"]
    return gpd.GeoDataFrame(
        {name: ordered[name].to_numpy(dtype=object) for name in columns}
        | {"distance_m": ordered["distance_m"].to_numpy(dtype=float)},
        geometry=gpd.GeoSeries(ordered["line"].to_numpy(dtype=object), crs=WGS84).values,
        crs=WGS84,
    )
