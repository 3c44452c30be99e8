"""Import a file into a layer: read, decide the source CRS, validate, then write all or nothing.

With any error nothing is written, unless ``skip_invalid`` is asked for: then the valid features
are written and the rejected ones go to ``<file>.rejects.csv`` beside the input (WKT in the
source CRS plus a ``problems`` column), ready to fix and import again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from rasterio.errors import RasterioIOError

from geo_service.catalogue import Layer
from geo_service.chinacrs import SourceCRS, UnknownCRSError, from_crs, parse_source_crs
from geo_service.metric import WGS84
from geo_service.readers import RASTER_SUFFIXES, RawLayer, ReadError, read_vector
from geo_service.store import Store, WriteResult
from geo_service.validate import Problem, Validation, validate_frame


class ImportRefused(ValueError):
    """An import that cannot be asked for (a layer that only the analysis writes)."""


@dataclass
class ImportReport:
    """What an import (or a validation) found and did."""

    layer: str
    file: str
    features_read: int = 0
    features_valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    written: WriteResult | None = None
    rejects_file: Path | None = None
    source_crs: str | None = None

    @property
    def errors(self) -> list[Problem]:
        """Problems that stop an import."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when the file has no errors."""
        return not self.errors


def validate_file(
    layer: Layer,
    path: Path,
    *,
    crs: str | None = None,
    id_field: str | None = None,
    source_layer: str | None = None,
) -> tuple[ImportReport, Validation | None]:
    """Run every check on a vector file; writes nothing."""
    report = ImportReport(layer=layer.id, file=str(path))
    try:
        raw = read_vector(path, source_layer)
    except ReadError as exc:
        report.problems.append(Problem(str(path), None, None, None, None, str(exc)))
        return report, None
    report.features_read = len(raw.frame)
    try:
        source = _source_crs(raw, crs, path)
    except UnknownCRSError as exc:
        report.problems.append(Problem(str(path), None, None, None, None, str(exc)))
        return report, None
    report.source_crs = source.label
    validation = validate_frame(
        layer,
        raw.frame,
        source,
        file=str(path),
        id_field=id_field,
        geometry_errors=raw.geometry_errors,
    )
    report.problems.extend(validation.problems)
    report.features_valid = len(validation.valid)
    return report, validation


def import_file(
    store: Store,
    layer_id: str,
    path: Path,
    *,
    crs: str | None = None,
    id_field: str | None = None,
    source_layer: str | None = None,
    skip_invalid: bool = False,
) -> ImportReport:
    """Validate ``path`` and write it into ``layer_id`` (rasters: GeoTIFF into a raster layer)."""
    layer = store.layer(layer_id)
    if not layer.importable:
        raise ImportRefused(
            f"{layer.id} is written by the analysis (georisk analyze), not imported"
        )
    if layer.kind == "raster":
        return import_raster(store, layer, path, crs=crs)
    report, validation = validate_file(
        layer, path, crs=crs, id_field=id_field, source_layer=source_layer
    )
    if validation is None:
        return report
    if validation.errors and not skip_invalid:
        return report
    if validation.errors:
        report.rejects_file = _write_rejects(path, validation, source_layer)
    if len(validation.valid):
        report.written = store.upsert(layer.id, validation.valid)
    return report


def import_raster(
    store: Store, layer: Layer, path: Path, *, crs: str | None = None
) -> ImportReport:
    """Check a GeoTIFF (readable, a CRS, one numeric band, sane values) and store it."""
    report = ImportReport(layer=layer.id, file=str(path))
    problems = report.problems

    def fail(reason: str, band_field: str | None = None) -> ImportReport:
        problems.append(Problem(str(path), None, None, band_field, None, reason))
        return report

    if path.suffix.lower() not in RASTER_SUFFIXES:
        return fail(f"layer {layer.id} is a raster layer: give a GeoTIFF (.tif)")
    try:
        with rasterio.open(path) as src:
            file_crs = src.crs
            count, dtype = src.count, src.dtypes[0]
            data = src.read(1, masked=True)
    except RasterioIOError as exc:
        return fail(f"cannot be read as a GeoTIFF ({str(exc).splitlines()[0]})")
    source = _raster_crs(file_crs, crs)
    if source is None:
        return fail("unknown CRS: the GeoTIFF declares none and no --crs was given")
    if isinstance(source, str):
        return fail(source)
    report.source_crs = source.label
    report.features_read = int(data.count())
    if count != 1:
        return fail(f"{count} bands; {layer.id} takes one band")
    if not np.issubdtype(np.dtype(dtype), np.number):
        return fail(f"band type {dtype} is not numeric", "band 1")
    invalid = _raster_value_problem(layer, data)
    if invalid:
        return fail(invalid, "band 1")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"{layer.id}.tif"
        shutil.copyfile(path, staged)
        if file_crs is None:  # keep the CRS the user gave with the stored raster
            with rasterio.open(staged, "r+") as dst:
                dst.crs = rasterio.crs.CRS.from_wkt(source.crs.to_wkt())
        store.put_raster(layer.id, staged)
    report.features_valid = report.features_read
    report.written = WriteResult(inserted=1, updated=0)
    return report


def _source_crs(raw: RawLayer, crs: str | None, path: Path) -> SourceCRS:
    """The CRS of the numbers in the file: from ``--crs``, else from the file, else an error."""
    declared = from_crs(raw.crs) if raw.crs is not None else None
    if crs is None:
        if declared is not None:
            return declared
        if path.suffix.lower() == ".csv":
            # lon/lat CSVs without --crs are read as WGS 84, the usual meaning of lon/lat
            return from_crs(WGS84)
        raise UnknownCRSError(f"{path}: the file declares no CRS; give one with --crs")
    given = parse_source_crs(crs)
    if declared is None or (given.offset is not None and declared.crs.is_geographic):
        # AMap/Baidu exports call their shifted lon/lat WGS 84: the user's word wins
        return given
    if not given.crs.equals(declared.crs, ignore_axis_order=True):
        raise UnknownCRSError(
            f"{path}: the file declares {declared.label} but --crs says {given.label}; "
            "fix the file's CRS or drop --crs"
        )
    return declared


def _raster_crs(file_crs: object, crs: str | None) -> SourceCRS | str | None:
    if crs is not None:
        try:
            given = parse_source_crs(crs)
        except UnknownCRSError as exc:
            return str(exc)
        if given.offset is not None:
            return "gcj02/bd09 apply to vector data; rasters need a real CRS"
        if file_crs is not None and not given.crs.equals(pyproj.CRS(file_crs)):
            return f"the GeoTIFF declares {file_crs} but --crs says {given.label}"
        return given
    return None if file_crs is None else from_crs(pyproj.CRS(file_crs))


def _raster_value_problem(layer: Layer, data: np.ma.MaskedArray) -> str | None:
    if data.count() == 0:
        return "every cell is nodata"
    low, high = float(data.min()), float(data.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        return "cells hold NaN or infinity outside nodata; set a nodata value"
    if layer.raster is not None and layer.raster.unit.startswith("persons") and low < 0:
        return f"negative population ({low:g}) outside nodata"
    if layer.raster is not None and layer.raster.unit == "m" and not (low >= -500 and high <= 9000):
        return f"elevations {low:g}..{high:g} m are not terrain heights in metres"
    return None


def _write_rejects(path: Path, validation: Validation, source_layer: str | None) -> Path:
    raw = read_vector(path, source_layer).frame.reset_index(drop=True)
    rejected = raw.iloc[validation.rejected].copy()
    by_row: dict[int, list[str]] = {}
    for problem in validation.errors:
        rows = validation.rejected if problem.feature is None else [problem.feature]
        for row in rows:
            by_row.setdefault(row, []).append(
                ("" if problem.field is None else f"{problem.field}: ") + problem.reason
            )
    table = pd.DataFrame(rejected.drop(columns=rejected.geometry.name))
    for column in table.columns:  # lists as JSON, as the importer reads them back
        table[column] = table[column].map(
            lambda v: (
                json.dumps(list(v), ensure_ascii=False) if isinstance(v, (list, np.ndarray)) else v
            )
        )
    table["wkt"] = shapely.to_wkt(rejected.geometry.values, rounding_precision=-1)
    table["problems"] = ["; ".join(by_row.get(row, [])) for row in validation.rejected]
    target = path.with_name(f"{path.stem}.rejects.csv")
    table.to_csv(target, index=False)
    return target
