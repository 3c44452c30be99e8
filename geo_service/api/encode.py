"""Features out: GeoJSON pages, and GeoJSON, CSV and NDJSON streamed chunk by chunk.

A stream holds one chunk of features in memory at a time (the store hands them out in chunks),
so a response of any size costs the same memory. Geometries leave in the requested CRS, in its
axis order; properties are the requested ones, typed as in ``geo_service.api.geojson``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import shapely

from geo_service.api.crs import CRS84, geometries_from_crs84
from geo_service.api.geojson import feature_collection
from geo_service.catalogue import Layer

Links = Callable[[bool], list[dict[str, str]]]  # the page's links, given whether more follow


def features(
    layer: Layer, frame: gpd.GeoDataFrame, crs: str, properties: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The frame's features as GeoJSON Feature dicts: geometry in ``crs``, chosen properties."""
    return list(feature_collection(layer, _prepared(layer, frame, crs, properties))["features"])


def page_document(
    features_: list[dict[str, Any]], number_matched: int | None, links: list[dict[str, str]]
) -> dict[str, Any]:
    """A FeatureCollection page with the OGC paging members."""
    document: dict[str, Any] = {"type": "FeatureCollection", "features": features_}
    if number_matched is not None:
        document["numberMatched"] = number_matched
    document |= {"numberReturned": len(features_), "timeStamp": _now(), "links": links}
    return document


def geojson_stream(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    *,
    crs: str,
    properties: Sequence[str] | None,
    number_matched: int | None,
    limit: int,
    links: Links,
) -> Iterator[bytes]:
    """A FeatureCollection written feature by feature; ``chunks`` may hold ``limit + 1`` rows.

    The row past ``limit`` only tells that another page follows; it is not written. The paging
    members come last, once the number written is known.
    """
    yield b'{"type":"FeatureCollection","features":['
    written = 0
    more = False
    for chunk in chunks:
        room = limit - written
        if len(chunk) > room:
            more, chunk = True, chunk.iloc[:room]
        encoded = [_json(feature) for feature in features(layer, chunk, crs, properties)]
        if encoded:
            yield (b"," if written else b"") + b",".join(encoded)
            written += len(encoded)
    tail: dict[str, Any] = {} if number_matched is None else {"numberMatched": number_matched}
    tail |= {"numberReturned": written, "timeStamp": _now(), "links": links(more)}
    yield b"]," + _json(tail)[1:]


def ndjson_stream(
    layer: Layer, chunks: Iterable[gpd.GeoDataFrame], crs: str, properties: Sequence[str] | None
) -> Iterator[bytes]:
    """One GeoJSON Feature per line."""
    for chunk in chunks:
        lines = [_json(feature) for feature in features(layer, chunk, crs, properties)]
        if lines:
            yield b"\n".join(lines) + b"\n"


def csv_stream(
    layer: Layer, chunks: Iterable[gpd.GeoDataFrame], crs: str, properties: Sequence[str] | None
) -> Iterator[bytes]:
    """A header, then one row per feature: id, the properties, the geometry as WKT in ``crs``.

    Lists are JSON arrays, dates ISO 8601, missing values empty. Starts with a UTF-8 byte order
    mark so spreadsheet programs read Chinese text right.
    """
    names = _names(layer, properties)
    yield "\ufeff".encode() + _csv_row(["id", *names, "geometry"])
    for chunk in chunks:
        prepared = _prepared(layer, chunk, crs, properties)
        wkts = shapely.to_wkt(
            np.asarray(prepared.geometry.values, dtype=object), rounding_precision=-1
        )
        rows = [
            [feature["id"], *(_cell(feature["properties"].get(name)) for name in names), wkt or ""]
            for feature, wkt in zip(
                feature_collection(layer, prepared)["features"], wkts, strict=True
            )
        ]
        if rows:
            yield b"".join(_csv_row(row) for row in rows)


def _prepared(
    layer: Layer, frame: gpd.GeoDataFrame, crs: str, properties: Sequence[str] | None
) -> gpd.GeoDataFrame:
    """Only the chosen property columns, geometries moved to ``crs``."""
    if crs == CRS84:
        return frame if properties is None else frame[["id", *properties, "geometry"]]
    keep = ["id", *_names(layer, properties)]
    geometries = geometries_from_crs84(np.asarray(frame.geometry.values, dtype=object), crs)
    return gpd.GeoDataFrame(frame[keep], geometry=geometries, crs=None)


def _names(layer: Layer, properties: Sequence[str] | None) -> list[str]:
    if properties is None:
        return [f.name for f in layer.fields] + ["source_crs"]
    return list(properties)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv_row(values: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


T = TypeVar("T")


def primed(chunks: Iterator[T]) -> Iterator[T]:
    """``chunks`` with the first read now, so a store failure answers an error, not a cut stream."""
    first = next(chunks, None)
    return chain([] if first is None else [first], chunks)
