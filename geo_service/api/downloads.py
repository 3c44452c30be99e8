"""A whole layer, or a filtered selection of it, written out in one file of any size.

The web service (``/collections/{id}/download``) and ``georisk export LAYER`` (``export_layer``)
both come here.
Features arrive from ``Store.iter_query`` in chunks and leave chunk by chunk, so memory holds
one chunk whatever the layer's size: GeoJSON, CSV and NDJSON as byte streams (the encoders of
the items pages), GeoPackage through an Arrow stream that GDAL writes batch by batch, with the
catalogue's field types (dates as dates, integers as integers) and the layer named as the
collection.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pyarrow as pa
import pyogrio
import shapely

from geo_service.api.cql import FilterLang
from geo_service.api.crs import CRS84, SUPPORTED
from geo_service.api.encode import csv_stream, geojson_stream, ndjson_stream
from geo_service.api.errors import ApiError
from geo_service.api.params import FilterQuery, selection
from geo_service.catalogue import FieldSpec, Layer
from geo_service.schema import geometry_to_text, list_to_text
from geo_service.store import Store

FormatName = Literal["geojson", "gpkg", "csv", "ndjson"]

#: Features per chunk: enough to keep GDAL and the encoders busy, small next to any layer.
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class DownloadFormat:
    """A file format a layer downloads in."""

    name: FormatName
    media_type: str
    extension: str
    title: str


FORMATS: dict[str, DownloadFormat] = {
    fmt.name: fmt
    for fmt in (
        DownloadFormat("geojson", "application/geo+json", "geojson", "GeoJSON"),
        DownloadFormat("gpkg", "application/geopackage+sqlite3", "gpkg", "GeoPackage"),
        DownloadFormat("csv", "text/csv", "csv", "CSV"),
        DownloadFormat("ndjson", "application/x-ndjson", "ndjson", "NDJSON"),
    )
}

_ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "list": pa.string(),  # a JSON array, as the embedded store keeps it
    "geometry": pa.string(),  # a second geometry, as WKT
}


def file_name(layer: Layer, fmt: FormatName, *, filtered: bool) -> str:
    """``<layer>.<ext>``, or ``<layer>-filtered.<ext>`` for a selection."""
    return f"{layer.id}{'-filtered' if filtered else ''}.{FORMATS[fmt].extension}"


def byte_stream(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    fmt: FormatName,
    *,
    crs: str = CRS84,
    properties: Sequence[str] | None = None,
) -> Iterator[bytes]:
    """The features as a GeoJSON FeatureCollection, CSV or NDJSON, one chunk at a time."""
    if fmt == "geojson":
        return geojson_stream(
            layer,
            chunks,
            crs=crs,
            properties=properties,
            number_matched=None,
            limit=sys.maxsize,  # a download has no page: every feature is written
            links=lambda more: [],
        )
    if fmt == "csv":
        return csv_stream(layer, chunks, crs, properties)
    if fmt == "ndjson":
        return ndjson_stream(layer, chunks, crs, properties)
    raise ValueError(f"{fmt!r} is not a streamed format")  # a GeoPackage is a file


def write_geopackage(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    path: Path,
    *,
    crs: str = CRS84,
    properties: Sequence[str] | None = None,
) -> int:
    """Write the features to a new GeoPackage at ``path``; returns how many were written.

    One layer named as the collection, fields typed as in the catalogue, geometries in ``crs``
    (longitude first for the geographic ones, as GeoPackage wants). GDAL reads the batches one
    by one from an Arrow stream and writes them in one transaction.
    """
    specs = _specs(layer, properties)
    schema = pa.schema(
        [
            pa.field("id", pa.string()),
            *(pa.field(spec.name, _ARROW_TYPES[spec.type]) for spec in specs),
            *([pa.field("source_crs", pa.string())] if properties is None else []),
            pa.field("geometry", pa.binary()),
        ]
    )
    written = Counted(chunks)
    failures: list[Exception] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for chunk in written:
                yield _batch(chunk, schema, specs, crs)
        except Exception as exc:  # GDAL would report only "Error while accessing batch"
            failures.append(exc)
            raise

    try:
        pyogrio.write_arrow(
            pa.RecordBatchReader.from_batches(schema, batches()),
            path,
            layer=layer.id,
            driver="GPKG",
            geometry_name="geometry",
            geometry_type=layer.geometry[0] if len(layer.geometry) == 1 else "Unknown",
            crs="EPSG:4326" if crs == CRS84 else SUPPORTED[crs],
            dataset_options={"VERSION": "1.3"},  # 1.4 (GDAL's default) warns in GDAL before 3.7
        )
    except Exception:
        if failures:  # the store's own error (a StoreError answers 503, not 500)
            raise failures[0] from None
        raise
    return written.count


def temporary_geopackage(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    *,
    crs: str = CRS84,
    properties: Sequence[str] | None = None,
) -> Path:
    """The features in a GeoPackage in a new temporary folder; ``remove_temporary`` drops it."""
    folder = Path(tempfile.mkdtemp(prefix="georisk-download-"))
    path = folder / f"{layer.id}.gpkg"
    try:
        write_geopackage(layer, chunks, path, crs=crs, properties=properties)
    except BaseException:
        remove_temporary(path)
        raise
    return path


def remove_temporary(path: Path) -> None:
    """Delete a file made by ``temporary_geopackage``, with its folder."""
    shutil.rmtree(path.parent, ignore_errors=True)


def write_file(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    path: Path,
    fmt: FormatName,
    *,
    crs: str = CRS84,
    properties: Sequence[str] | None = None,
) -> int:
    """Write the features to ``path`` in ``fmt``; returns how many were written.

    The file is written beside ``path`` under a hidden name and renamed into place when whole,
    so a failure (a full disk, a store error halfway) leaves no partial file and keeps any
    older file at ``path``.
    """
    # the extension kept last: GDAL checks that a GeoPackage's name ends in .gpkg
    staging = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.part{path.suffix}")
    try:
        if fmt == "gpkg":
            count = write_geopackage(layer, chunks, staging, crs=crs, properties=properties)
        else:
            counted = Counted(chunks)
            with staging.open("wb") as out:
                for block in byte_stream(layer, counted, fmt, crs=crs, properties=properties):
                    out.write(block)
            count = counted.count
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return count


class ExportError(Exception):
    """A layer export the user asked for cannot be done; the message names what is wrong."""


def export_layer(
    store: Store,
    layer_id: str,
    path: Path,
    fmt: FormatName,
    *,
    filter: str | None = None,
    bbox: str | None = None,
) -> int:
    """Write vector layer ``layer_id`` (the features ``filter`` and ``bbox`` select) to ``path``.

    ``filter`` is CQL2 text, or CQL2 JSON when it starts with ``{``; ``bbox`` is
    ``minlon,minlat,maxlon,maxlat``. Both are checked as the items pages check them. Returns
    how many features were written; ``ExportError`` names an unknown layer, a bad filter or a
    path that cannot be written, and no file is left behind then.
    """
    vector = [layer.id for layer in store.catalogue.vector_layers]
    if layer_id not in vector:
        raise ExportError(f"unknown vector layer {layer_id!r}; vector layers: {', '.join(vector)}")
    layer = store.catalogue[layer_id]
    _check_writable(path)
    lang: FilterLang = "cql2-json" if (filter or "").lstrip().startswith("{") else "cql2-text"
    try:
        chosen = selection(layer, FilterQuery(bbox=bbox, filter=filter, filter_lang=lang), None)
    except ApiError as exc:
        raise ExportError(exc.message) from None
    chunks = store.iter_query(
        layer.id, bbox=chosen.bbox, filter=chosen.filter, chunk_size=CHUNK_SIZE
    )
    try:
        return write_file(layer, chunks, path, fmt)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write it: {exc.strerror or exc}") from None


class Counted:
    """Chunks passed through, counting their features."""

    def __init__(self, chunks: Iterable[gpd.GeoDataFrame]) -> None:
        self._chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        for chunk in self._chunks:
            self.count += len(chunk)
            yield chunk


def _check_writable(path: Path) -> None:
    folder = path.parent
    if path.is_dir():
        raise ExportError(f"{path}: is a folder, not a file")
    if not folder.is_dir():
        raise ExportError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"{path}: folder {folder} is not writable")


def _specs(layer: Layer, properties: Sequence[str] | None) -> list[FieldSpec]:
    if properties is None:
        return list(layer.fields)
    return [layer.field_map[name] for name in properties if name in layer.field_map]


def _batch(
    chunk: gpd.GeoDataFrame, schema: pa.Schema, specs: list[FieldSpec], crs: str
) -> pa.RecordBatch:
    """A canonical frame as an Arrow batch of ``schema``; geometries as WKB in ``crs``."""
    columns: list[pa.Array] = [pa.array(chunk["id"].astype(str).tolist(), pa.string())]
    for spec in specs:
        values = chunk[spec.name]
        if spec.type == "list":
            values = values.map(list_to_text)
        elif spec.type == "geometry":
            values = values.map(geometry_to_text)
        elif spec.type == "date":
            columns.append(pa.array(values, from_pandas=True).cast(pa.date32()))
            continue
        columns.append(pa.array(values, _ARROW_TYPES[spec.type], from_pandas=True))
    if "source_crs" in schema.names:
        columns.append(pa.array(chunk["source_crs"], pa.string(), from_pandas=True))
    geometries = gpd.GeoSeries(chunk.geometry.values, crs=4326)
    if crs != CRS84:
        geometries = geometries.to_crs(SUPPORTED[crs])  # geopandas keeps longitude first
    wkb = shapely.to_wkb(geometries.values, output_dimension=2)
    columns.append(pa.array(wkb, pa.binary()))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
