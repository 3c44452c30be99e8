"""Feature queries on the GeoPackage: the R-tree for the box, pandas for the filter, fids for pages.

A query with no filter, box or sort reads just its page: rows are stored in id order (every
write rewrites the table sorted by id), so page *n* is a range of features that OGR skips to.
Otherwise the query runs in two passes. The first reads, for the features in the box (OGR's
R-tree spatial filter), only the columns the filter and sort need, then evaluates the filter
(``geo_service.store.filters``) and sorts, which gives the matching feature ids (fids) in
order. The second reads whole features by fid, one page or one chunk at a time, so memory holds
one chunk of features, not the result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pygeofilter import ast

from geo_service.catalogue import Layer
from geo_service.schema import coerce, conform, empty_frame
from geo_service.store.base import BBox, Page, SortKey
from geo_service.store.filters import GEOMETRY, attributes, frame_mask, in_order, sort_order


def page(
    path: Path,
    layer: Layer,
    *,
    bbox: BBox | None,
    filter: ast.AstType | None,
    sortby: Sequence[SortKey],
    limit: int,
    offset: int,
    properties: Sequence[str] | None,
) -> Page:
    """One page of matching features; ``number_matched`` is always exact here."""
    if not _stored(path, layer):
        return Page(empty_frame(layer), 0, exact=True, more=False)
    fids = select(path, layer, bbox=bbox, filter=filter, sortby=sortby)
    if fids is None:
        total = int(pyogrio.read_info(path, layer=layer.id)["features"])
        frame = (
            _read_range(path, layer, offset, limit, properties)
            if offset < total
            else empty_frame(layer)
        )
    else:
        total = len(fids)
        frame = read_fids(path, layer, fids[offset : offset + limit], properties)
    return Page(frame, total, exact=True, more=offset + len(frame) < total)


def stream(
    path: Path,
    layer: Layer,
    *,
    bbox: BBox | None,
    filter: ast.AstType | None,
    sortby: Sequence[SortKey],
    limit: int | None,
    offset: int,
    properties: Sequence[str] | None,
    chunk_size: int,
) -> Iterator[gpd.GeoDataFrame]:
    """The matching features in frames of at most ``chunk_size`` rows."""
    if not _stored(path, layer):
        return
    fids = select(path, layer, bbox=bbox, filter=filter, sortby=sortby)
    if fids is None:
        yield from _read_sequentially(path, layer, offset, limit, properties, chunk_size)
        return
    chosen = fids[offset:] if limit is None else fids[offset : offset + limit]
    for start in range(0, len(chosen), chunk_size):
        yield read_fids(path, layer, chosen[start : start + chunk_size], properties)


def select(
    path: Path,
    layer: Layer,
    *,
    bbox: BBox | None,
    filter: ast.AstType | None,
    sortby: Sequence[SortKey],
) -> np.ndarray | None:
    """The fids of the matching features in order; None when all match in id order."""
    if bbox is None and filter is None and all(k == SortKey("id") for k in sortby):
        return None
    needed = (attributes(filter) | {key.name for key in sortby}) - {GEOMETRY, "id"}
    read_geometry = bbox is not None or GEOMETRY in attributes(filter)
    raw = pyogrio.read_dataframe(
        path,
        layer=layer.id,
        columns=["id", *sorted(needed)],
        read_geometry=read_geometry,
        bbox=bbox,
        fid_as_index=True,
        use_arrow=True,
    )
    data = {"id": raw["id"].astype(str).astype(object)}
    data |= {name: coerce(layer.field_map[name], raw[name]) for name in sorted(needed)}
    frame = gpd.GeoDataFrame(
        data,
        index=raw.index,
        geometry=raw.geometry.values if read_geometry else None,
        crs=4326 if read_geometry else None,
    )
    keep = np.ones(len(frame), dtype=bool)
    if bbox is not None and len(frame):  # the R-tree selects by envelope; keep true intersections
        keep &= shapely.intersects(frame.geometry.values, shapely.box(*bbox))
    if filter is not None and len(frame):
        keep &= frame_mask(layer, frame, filter)
    frame = frame[keep]
    return frame.index.to_numpy()[sort_order(frame, sortby)]


def read_fids(
    path: Path, layer: Layer, fids: np.ndarray, properties: Sequence[str] | None
) -> gpd.GeoDataFrame:
    """Features by fid, in the order of ``fids``, as a canonical frame."""
    if not len(fids):
        return empty_frame(layer)
    raw = pyogrio.read_dataframe(
        path,
        layer=layer.id,
        columns=_columns(layer, properties),
        fids=np.asarray(fids, dtype=np.int64),
        fid_as_index=True,
        use_arrow=True,
    )
    ids = raw["id"].astype(str).reindex(pd.Index(fids)).tolist()
    return in_order(conform(layer, raw), ids)


def _read_range(
    path: Path, layer: Layer, offset: int, limit: int, properties: Sequence[str] | None
) -> gpd.GeoDataFrame:
    """Features ``offset`` to ``offset + limit`` in id order (the order they are stored in).

    ``offset`` must be below the feature count (OGR refuses to skip past the end).
    """
    if limit <= 0:
        return empty_frame(layer)
    raw = pyogrio.read_dataframe(
        path,
        layer=layer.id,
        columns=_columns(layer, properties),
        skip_features=offset,
        max_features=limit,
        use_arrow=True,
    )
    return conform(layer, raw)


def _read_sequentially(
    path: Path,
    layer: Layer,
    offset: int,
    limit: int | None,
    properties: Sequence[str] | None,
    chunk_size: int,
) -> Iterator[gpd.GeoDataFrame]:
    """Features from ``offset`` on in id order, in frames of ``chunk_size``.

    After the first chunk each one starts past the last fid read (the primary key, so SQLite
    seeks to it): skipping to each chunk by count would cost OGR a scan from the start every
    time, quadratic in the table (~0.5 s a chunk in the middle of a million rows).
    """
    info = pyogrio.read_info(path, layer=layer.id)
    total = int(info["features"])
    left = (total if limit is None else min(total, offset + limit)) - offset
    after: int | None = None
    while left > 0:
        raw = pyogrio.read_dataframe(
            path,
            layer=layer.id,
            columns=_columns(layer, properties),
            skip_features=offset if after is None else 0,
            where=None if after is None else f'"{info["fid_column"] or "fid"}" > {after}',
            max_features=min(chunk_size, left),
            fid_as_index=True,
            use_arrow=True,
        )
        if raw.empty:
            return
        yield conform(layer, raw.reset_index(drop=True))
        after, left = int(raw.index[-1]), left - len(raw)


def _columns(layer: Layer, properties: Sequence[str] | None) -> list[str]:
    names = [f.name for f in layer.fields] if properties is None else list(properties)
    return ["id", *names, "source_crs"]


def _stored(path: Path, layer: Layer) -> bool:
    from geo_service.store.gpkg import _has_layer

    return _has_layer(path, layer.id)
