"""The canonical in-memory form of a layer: one GeoDataFrame shape every store reads and writes.

Columns: ``id`` (text), the layer's catalogue fields in catalogue order, ``source_crs`` (the CRS the
features were imported from, e.g. ``EPSG:4547`` or ``gcj02``), and ``geometry`` in EPSG:4326.
Types: string → str or None; integer → ``Int64``; number → ``Float64``; boolean → ``boolean``;
date → ``datetime64[ms]``; list → a Python list of str; geometry (a second geometry such as a
pond's outline) → a shapely geometry in EPSG:4326, kept as WKT text by the stores. Rows are
ordered by ``id``. Both stores pass what they read through ``conform``, so they hand out
identical frames for identical data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from geo_service.catalogue import FieldSpec, Layer

SYSTEM_COLUMNS = ("id", "source_crs")


def columns(layer: Layer) -> list[str]:
    """Attribute columns of a layer in canonical order (without geometry)."""
    return ["id", *(f.name for f in layer.fields), "source_crs"]


def empty_frame(layer: Layer) -> gpd.GeoDataFrame:
    """A canonical frame with no rows."""
    frame = gpd.GeoDataFrame(
        {name: pd.Series([], dtype=object) for name in columns(layer)},
        geometry=gpd.GeoSeries([], crs=4326),
        crs=4326,
    )
    return conform(layer, frame)


def conform(layer: Layer, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Bring a frame read from any store into canonical form (columns, dtypes, row order)."""
    data: dict[str, Any] = {"id": _objects(frame["id"].astype(str).tolist())}
    for spec in layer.fields:
        raw = frame[spec.name] if spec.name in frame else pd.Series([None] * len(frame))
        data[spec.name] = coerce(spec, pd.Series(raw.to_numpy(dtype=object)))
    source = frame["source_crs"] if "source_crs" in frame else pd.Series([None] * len(frame))
    data["source_crs"] = _objects(map(_text_or_none, source))
    geometry = frame.geometry
    if geometry.crs is None:
        geometry = geometry.set_crs(4326)
    out = gpd.GeoDataFrame(data, geometry=geometry.to_crs(4326).to_numpy(), crs=4326)
    return out.sort_values("id", kind="stable").reset_index(drop=True)


def coerce(spec: FieldSpec, values: pd.Series) -> pd.Series:
    """Values of one field in their canonical dtype (values must already be valid)."""
    if spec.type == "string":
        return _objects(map(_text_or_none, values), values.index)
    if spec.type == "integer":
        ints = [None if _missing(v) else int(v) for v in values]
        return pd.Series(ints, index=values.index, dtype="Int64")
    if spec.type == "number":
        floats = [None if _missing(v) else float(v) for v in values]
        return pd.Series(floats, index=values.index, dtype="Float64")
    if spec.type == "boolean":
        flags = [None if _missing(v) else _as_bool(v) for v in values]
        return pd.Series(flags, index=values.index, dtype="boolean")
    if spec.type == "date":
        return pd.to_datetime(values.map(lambda v: None if _missing(v) else v)).astype(
            "datetime64[ms]"
        )
    if spec.type == "geometry":
        return _objects(map(as_geometry, values), values.index)
    return _objects(map(as_list, values), values.index)


def as_list(value: Any) -> list[str] | None:
    """A list field's value from a list, a JSON array text, or a comma/semicolon-separated text."""
    if _missing(value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        parsed = json.loads(text)
        return [str(v) for v in parsed]
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def as_geometry(value: Any) -> BaseGeometry | None:
    """A geometry field's value from a geometry, WKT, WKB or a GeoJSON geometry (dict or text)."""
    if isinstance(value, BaseGeometry):
        return None if value.is_empty else value
    if _missing(value):
        return None
    if isinstance(value, bytes):
        return shapely.from_wkb(value)
    if isinstance(value, dict):
        return shapely.geometry.shape(value)
    text = str(value).strip()
    return shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)


def geometry_to_text(value: Any) -> str | None:
    """How a geometry field is stored: WKT, coordinates to 1e-9° (sub-millimetre)."""
    return None if value is None else shapely.to_wkt(value, rounding_precision=9)


def list_to_text(value: Any) -> str | None:
    """How a list is stored in a store without array columns: a JSON array text."""
    return None if value is None else json.dumps(list(value), ensure_ascii=False)


def _objects(values: Iterable[Any], index: pd.Index | None = None) -> pd.Series:
    # an object Series keeps None as None; pandas 3 would infer `str` and turn None into NaN,
    # and only when the column holds some text, so a frame's dtypes would depend on its rows
    return pd.Series(list(values), index=index, dtype=object)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _text_or_none(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "y", "t", "是"}
    return bool(value)
