"""Reading vector files of every format georisk takes into a raw GeoDataFrame.

Nothing is checked here beyond being able to read the file: the values come back as the file
holds them (CSV as text), so validation can report each bad value with its feature and field.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".zip", ".parquet", ".geoparquet", ".csv"}
RASTER_SUFFIXES = {".tif", ".tiff"}

_LON_NAMES = ("lon", "lng", "longitude", "long", "x", "经度")
_LAT_NAMES = ("lat", "latitude", "y", "纬度")
_WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")


class ReadError(Exception):
    """A file that cannot be read at all; the message names the file and why."""


@dataclass
class RawLayer:
    """A file's features as read: values untouched, the file's own CRS if it declares one."""

    frame: gpd.GeoDataFrame
    crs: pyproj.CRS | None
    # per-row reasons the geometry could not be read (CSV only): row index -> (column, value, why)
    geometry_errors: dict[int, tuple[str, object, str]]


def read_vector(path: Path, source_layer: str | None = None) -> RawLayer:
    """Read a GeoJSON, GeoPackage, Shapefile (or zipped), GeoParquet or CSV file."""
    if not path.exists():
        raise ReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise ReadError(
            f"{path}: unsupported format {suffix or '(no extension)'}; "
            f"use one of {', '.join(sorted(VECTOR_SUFFIXES))}"
        )
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix in {".parquet", ".geoparquet"}:
            frame = gpd.read_parquet(path)
            return RawLayer(frame, _crs_of(frame), {})
        return _read_ogr(path, source_layer)
    except ReadError:
        raise
    except Exception as exc:  # any reader failure means the file is unreadable for the user
        raise ReadError(f"{path}: cannot be read ({_first_line(exc)})") from exc


def _read_ogr(path: Path, source_layer: str | None) -> RawLayer:
    target = str(path)
    if path.suffix.lower() == ".zip":
        target = _zipped_shapefile(path)
    layers = [str(row[0]) for row in pyogrio.list_layers(target)]
    if source_layer is None and len(layers) > 1:
        raise ReadError(
            f"{path}: holds several layers ({', '.join(layers)}); choose one with --source-layer"
        )
    if source_layer is not None and source_layer not in layers:
        raise ReadError(f"{path}: no layer {source_layer!r}; it holds {', '.join(layers)}")
    with warnings.catch_warnings():
        # pyogrio warns when a text column is not JSON; the values are validated later anyway
        warnings.simplefilter("ignore", UserWarning)
        frame = pyogrio.read_dataframe(target, layer=source_layer or layers[0])
    return RawLayer(frame, _crs_of(frame), {})


def _zipped_shapefile(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        shapefiles = [n for n in archive.namelist() if n.lower().endswith(".shp")]
    if len(shapefiles) != 1:
        found = ", ".join(shapefiles) or "none"
        raise ReadError(f"{path}: a zip must hold exactly one .shp file (found: {found})")
    return f"/vsizip/{path}/{shapefiles[0]}"


def _read_csv(path: Path) -> RawLayer:
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    lower = {c.lower().strip(): c for c in table.columns}
    wkt_col = next((lower[n] for n in _WKT_NAMES if n in lower), None)
    lon_col = next((lower[n] for n in _LON_NAMES if n in lower), None)
    lat_col = next((lower[n] for n in _LAT_NAMES if n in lower), None)
    errors: dict[int, tuple[str, object, str]] = {}
    if wkt_col is not None:
        text = table[wkt_col].to_numpy(dtype=object)
        geoms = shapely.from_wkt(text, on_invalid="ignore")
        for i in np.flatnonzero(pd.isna(geoms) & (table[wkt_col].str.strip() != "")):
            errors[int(i)] = (wkt_col, text[i], "not valid WKT")
        table = table.drop(columns=[wkt_col])
    elif lon_col is not None and lat_col is not None:
        lon = pd.to_numeric(table[lon_col].str.strip(), errors="coerce")
        lat = pd.to_numeric(table[lat_col].str.strip(), errors="coerce")
        for column, values in ((lon_col, lon), (lat_col, lat)):
            for i in np.flatnonzero(values.isna()):
                errors.setdefault(int(i), (column, table[column].iat[int(i)], "not a number"))
        geoms = shapely.points(lon.to_numpy(), lat.to_numpy())
        geoms[lon.isna().to_numpy() | lat.isna().to_numpy()] = None
        table = table.drop(columns=[lon_col, lat_col])
    else:
        raise ReadError(
            f"{path}: no geometry columns; a CSV needs lon/lat columns "
            f"({'/'.join(_LON_NAMES[:3])}, {'/'.join(_LAT_NAMES[:2])}) or a WKT column (wkt)"
        )
    frame = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms))
    return RawLayer(frame, None, errors)


def _crs_of(frame: gpd.GeoDataFrame) -> pyproj.CRS | None:
    return None if frame.crs is None else pyproj.CRS(frame.crs)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
