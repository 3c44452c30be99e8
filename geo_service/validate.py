"""Checking a layer's features against the catalogue, reporting every problem at once.

Each problem names the file, the feature (its position in the file and its id), the field, the
value and the reason. Checks run column by column, vectorised; a feature with any error is
rejected whole. Repairs (an invalid polygon made valid) are reported as notes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.catalogue import FieldSpec, Layer
from geo_service.chinacrs import SourceCRS, to_wgs84
from geo_service.derive import apply_derivations
from geo_service.metric import WGS84
from geo_service.schema import as_geometry, as_list, conform

# Where coordinates of this project's data are expected; used only to spot swapped lat/lon.
_CHINA = (73.0, 3.0, 136.5, 54.0)
_GEOMETRY = "geometry"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or repaired) in an input file."""

    file: str
    feature: int | None  # position in the file, from 0; None for the file as a whole
    feature_id: str | None
    field: str | None
    value: Any
    reason: str
    severity: Literal["error", "note"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.feature is not None:
            where += f": feature {self.feature}"
            if self.feature_id is not None:
                where += f" (id {self.feature_id})"
        if self.field is not None:
            where += f", field {self.field}"
        value = "" if self.value is None else f" [value: {_shorten(self.value)}]"
        return f"{where}: {self.reason}{value}"


@dataclass
class Validation:
    """The outcome: valid features in canonical form, the problems, the rejected rows."""

    valid: gpd.GeoDataFrame
    problems: list[Problem]
    rejected: list[int] = field(default_factory=list)  # positions of rejected features

    @property
    def errors(self) -> list[Problem]:
        """Problems that reject a feature (or the file)."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def notes(self) -> list[Problem]:
        """Repairs and remarks that reject nothing."""
        return [p for p in self.problems if p.severity == "note"]


def validate_frame(
    layer: Layer,
    raw: gpd.GeoDataFrame,
    source: SourceCRS,
    *,
    file: str,
    id_field: str | None = None,
    geometry_errors: dict[int, tuple[str, object, str]] | None = None,
) -> Validation:
    """Check ``raw`` (as read, coordinates in ``source``) against ``layer``."""
    raw, renamed = _restore_shapefile_names(layer, raw.reset_index(drop=True))
    checker = _Checker(layer, raw, source, file)
    if renamed:
        pairs = ", ".join(f"{short} → {full}" for short, full in renamed.items())
        checker.file_problem(None, f"Shapefile-truncated column names read as {pairs}", "note")
    checker.check_ids(id_field or layer.id_field)
    for row, (column, value, reason) in (geometry_errors or {}).items():
        checker.error(np.array([row]), column, value, reason)
    geometry = checker.check_geometry()
    checker.check_fields()
    return checker.result(geometry)


class _Checker:
    """Collects problems for one frame; every check marks bad rows in ``self.bad``."""

    def __init__(self, layer: Layer, raw: gpd.GeoDataFrame, source: SourceCRS, file: str) -> None:
        self.layer, self.raw, self.source, self.file = layer, raw, source, file
        self.problems: list[Problem] = []
        self.bad = np.zeros(len(raw), dtype=bool)
        self.ids = np.full(len(raw), None, dtype=object)
        self.parsed: dict[str, pd.Series] = {}

    # -- recording ---------------------------------------------------------------------------

    def error(self, rows: np.ndarray, column: str | None, values: Any, reason: str) -> None:
        self._record(rows, column, values, reason, "error")
        self.bad[rows] = True

    def note(self, rows: np.ndarray, column: str | None, values: Any, reason: str) -> None:
        self._record(rows, column, values, reason, "note")

    def file_problem(self, column: str | None, reason: str, severity: str = "error") -> None:
        kind: Literal["error", "note"] = "error" if severity == "error" else "note"
        self.problems.append(Problem(self.file, None, None, column, None, reason, kind))
        if kind == "error":
            self.bad[:] = True

    def _record(
        self, rows: np.ndarray, column: str | None, values: Any, reason: str, severity: str
    ) -> None:
        values_seq = np.broadcast_to(np.asarray(values, dtype=object), rows.shape)
        kind: Literal["error", "note"] = "error" if severity == "error" else "note"
        for row, value in zip(rows.tolist(), values_seq, strict=True):
            self.problems.append(
                Problem(self.file, row, self.ids[row], column, value, reason, kind)
            )

    # -- ids ---------------------------------------------------------------------------------

    def check_ids(self, id_field: str) -> None:
        if id_field in self.raw:
            ids = self.raw[id_field].map(_id_text).to_numpy(dtype=object)
            self.ids[:] = ids
            missing = np.flatnonzero(pd.isna(ids))
            self.error(missing, id_field, None, "missing id")
        else:
            self.ids[:] = _derived_ids(self.layer, self.raw)
            self.file_problem(
                None,
                f"no {id_field!r} column: ids derived from each feature's geometry and name, "
                "so re-importing the same features updates them",
                severity="note",
            )
        present = pd.Series(self.ids).dropna()
        dupes = present[present.duplicated(keep=False)]
        for value, group in dupes.groupby(dupes):
            rows = group.index.to_numpy()
            self.error(
                rows, id_field, value, f"duplicate id (features {', '.join(map(str, rows))})"
            )

    # -- geometry ----------------------------------------------------------------------------

    def check_geometry(self) -> np.ndarray:
        """Geometries in EPSG:4326, repaired where possible; None where rejected."""
        geoms = np.asarray(self.raw.geometry.values, dtype=object)
        missing = pd.isna(geoms)
        missing[~missing] = shapely.is_empty(geoms[~missing])
        self.error(np.flatnonzero(missing & ~self.bad), _GEOMETRY, None, "missing geometry")
        present = ~missing
        types = np.array([g.geom_type if p else "" for g, p in zip(geoms, present, strict=True)])
        wrong = present & ~np.array([self.layer.accepts(t) for t in types], dtype=bool)
        allowed = "/".join(self.layer.geometry)
        self.error(
            np.flatnonzero(wrong),
            _GEOMETRY,
            types[wrong],
            f"wrong geometry type; layer takes {allowed}",
        )
        ok = present & ~wrong
        self._check_coordinates(geoms, ok)
        ok &= ~self.bad
        three_d = np.zeros(len(geoms), dtype=bool)
        three_d[ok] = shapely.has_z(geoms[ok])
        self.note(np.flatnonzero(three_d), _GEOMETRY, None, "3-D coordinates: heights dropped")
        out = np.full(len(geoms), None, dtype=object)
        out[ok] = self._to_wgs84(shapely.force_2d(geoms[ok]))
        return self._repair(out, ok)

    def _check_coordinates(self, geoms: np.ndarray, ok: np.ndarray) -> None:
        rows = np.flatnonzero(ok)
        if not len(rows):
            return
        bounds = shapely.bounds(geoms[rows])
        finite = np.all(np.isfinite(bounds), axis=1)
        self.error(rows[~finite], _GEOMETRY, None, "coordinates are not finite numbers")
        rows, bounds = rows[finite], bounds[finite]
        minx, miny, maxx, maxy = bounds.T
        if self.source.is_geographic:
            out = (minx < -180) | (maxx > 180) | (miny < -90) | (maxy > 90)
            swapped = _inside(miny, minx, maxy, maxx, _CHINA) & ~_inside(
                minx, miny, maxx, maxy, _CHINA
            )
            for mask, reason in (
                (swapped, "coordinates look like lat/lon swapped (longitude first, please)"),
                (out & ~swapped, "coordinates out of range for longitude/latitude"),
            ):
                self.error(rows[mask], _GEOMETRY, _corner(bounds[mask]), reason)
        else:
            degrees_like = (np.abs(minx) <= 180) & (np.abs(maxx) <= 180) & (np.abs(maxy) <= 90)
            self.error(
                rows[degrees_like],
                _GEOMETRY,
                _corner(bounds[degrees_like]),
                f"coordinates look like degrees but the CRS is {self.source.label} (metres)",
            )
            rows, bounds = rows[~degrees_like], bounds[~degrees_like]
            if len(rows):
                transformed = shapely.bounds(self._to_wgs84(geoms[rows]))
                bad = ~np.all(np.isfinite(transformed), axis=1) | (
                    np.abs(transformed[:, [0, 2]]) > 180
                ).any(axis=1)
                self.error(
                    rows[bad],
                    _GEOMETRY,
                    _corner(bounds[bad]),
                    f"coordinates out of range for {self.source.label}",
                )

    def _to_wgs84(self, geoms: np.ndarray) -> np.ndarray:
        if self.source.offset is not None:
            offset = self.source.offset
            return shapely.transform(geoms, lambda x, y: to_wgs84(offset, x, y), interleaved=False)
        if self.source.crs.equals(WGS84, ignore_axis_order=True):
            return geoms
        return np.asarray(
            gpd.GeoSeries(geoms, crs=self.source.crs).to_crs(WGS84).values, dtype=object
        )

    def _repair(self, geoms: np.ndarray, ok: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(ok)
        invalid = rows[~shapely.is_valid(geoms[rows])]
        for row in invalid:
            reason = shapely.is_valid_reason(geoms[row])
            fixed = _keep_dimension(shapely.make_valid(geoms[row]), geoms[row])
            if fixed is None or not self.layer.accepts(fixed.geom_type):
                self.error(
                    np.array([row]),
                    _GEOMETRY,
                    None,
                    f"invalid geometry that cannot be repaired ({reason})",
                )
                geoms[row] = None
            else:
                self.note(np.array([row]), _GEOMETRY, None, f"invalid geometry repaired ({reason})")
                geoms[row] = fixed
        return geoms

    # -- attributes --------------------------------------------------------------------------

    def check_fields(self) -> None:
        known = {self.layer.id_field, *(f.name for f in self.layer.fields), self.raw.geometry.name}
        for spec in self.layer.fields:
            if spec.name not in self.raw:
                if spec.required:
                    self.file_problem(spec.name, "required field is missing from the file")
                continue
            if spec.computed:
                self.file_problem(
                    spec.name, "computed by the analysis; the file's values are ignored", "note"
                )
                continue
            self._check_field(spec, self.raw[spec.name].reset_index(drop=True))
        extra = [c for c in self.raw.columns if c not in known and c != "source_crs"]
        if extra:
            self.file_problem(
                None,
                f"columns not in the catalogue are ignored: {', '.join(map(str, extra))}",
                "note",
            )

    def _check_field(self, spec: FieldSpec, values: pd.Series) -> None:
        blank = values.map(_is_blank).to_numpy(dtype=bool)
        if spec.required:
            self.error(np.flatnonzero(blank), spec.name, None, "required value is missing")
        parsed, wrong_type = _parse(spec, values, blank)
        self.parsed[spec.name] = parsed
        self.error(
            np.flatnonzero(wrong_type), spec.name, values[wrong_type], f"not a valid {spec.type}"
        )
        ok = ~blank & ~wrong_type
        for mask, reason in _constraints(spec, parsed, ok):
            self.error(np.flatnonzero(mask), spec.name, values[mask], reason)
        if spec.type == "geometry":
            self.parsed[spec.name] = self._second_geometry(spec, parsed, ok)

    def _second_geometry(self, spec: FieldSpec, parsed: pd.Series, ok: np.ndarray) -> pd.Series:
        """A geometry field in EPSG:4326, made valid (with a note) like the feature geometry."""
        shapes = parsed.to_numpy(dtype=object).copy()
        rows = np.flatnonzero(ok & ~self.bad)
        shapes[rows] = self._to_wgs84(shapely.force_2d(shapes[rows]))
        for row in rows[~shapely.is_valid(shapes[rows])]:
            reason = shapely.is_valid_reason(shapes[row])
            fixed = _keep_dimension(shapely.make_valid(shapes[row]), shapes[row])
            if fixed is None:
                self.error(np.array([row]), spec.name, None, f"invalid geometry ({reason})")
            else:
                self.note(np.array([row]), spec.name, None, f"invalid geometry repaired ({reason})")
                shapes[row] = fixed
        return pd.Series(shapes, index=parsed.index)

    # -- result ------------------------------------------------------------------------------

    def result(self, geometry: np.ndarray) -> Validation:
        good = ~self.bad
        columns: dict[str, Any] = {"id": self.ids[good]}
        for name, parsed in self.parsed.items():
            columns[name] = parsed[good].to_numpy(dtype=object)
        frame = gpd.GeoDataFrame(
            columns, geometry=gpd.GeoSeries(geometry[good], crs=WGS84), crs=WGS84
        )
        frame["source_crs"] = self.source.label
        valid = apply_derivations(self.layer, conform(self.layer, frame))
        problems = sorted(
            self.problems,
            key=lambda p: (-1 if p.feature is None else p.feature, p.severity != "error"),
        )
        return Validation(valid, problems, np.flatnonzero(self.bad).tolist())


def _parse(spec: FieldSpec, values: pd.Series, blank: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """Values parsed to the field's type, and which non-blank ones failed to parse."""
    present = values.where(~blank)
    if spec.type == "integer":
        # as float64 so nullable inputs (Int64 with NA) give plain NaN, never a masked NA
        numbers = pd.to_numeric(present.map(_strip), errors="coerce").astype("float64")
        wrong = ~blank & (numbers.isna().to_numpy() | (numbers % 1 != 0).to_numpy())
        return numbers, wrong
    if spec.type == "number":
        numbers = pd.to_numeric(present.map(_strip), errors="coerce").astype("float64")
        return numbers, ~blank & numbers.isna().to_numpy()
    if spec.type == "boolean":
        flags = present.map(_as_bool_or_none)
        return flags, ~blank & flags.isna().to_numpy()
    if spec.type == "date":
        dates = pd.to_datetime(present.map(_strip), errors="coerce", format="mixed")
        return dates, ~blank & dates.isna().to_numpy()
    if spec.type == "list":
        lists = present.map(_list_or_none)
        return lists, ~blank & lists.isna().to_numpy()
    if spec.type == "geometry":
        shapes = present.map(_geometry_or_none)
        return shapes, ~blank & shapes.isna().to_numpy()
    return present.map(lambda v: None if v is None or v is np.nan else str(v).strip()), np.zeros(
        len(values), dtype=bool
    )


def _constraints(
    spec: FieldSpec, parsed: pd.Series, ok: np.ndarray
) -> list[tuple[np.ndarray, str]]:
    """Masks of values that parse but break the field's enum, bounds or pattern."""
    checks = []
    if spec.enum is not None:
        allowed = set(map(str, spec.enum))
        outside = ok & ~parsed.map(lambda v: str(v) in allowed).to_numpy(dtype=bool)
        checks.append((outside, f"not one of {', '.join(map(str, spec.enum))}"))
    if spec.items_enum is not None:
        allowed_items = set(spec.items_enum)
        outside = ok & ~parsed.map(lambda v: v is None or set(v) <= allowed_items).to_numpy(
            dtype=bool
        )
        checks.append((outside, f"items must be among {', '.join(spec.items_enum)}"))
    if spec.minimum is not None:
        checks.append(
            (
                ok & (parsed.to_numpy(dtype=float, na_value=np.nan) < spec.minimum),
                f"below the minimum {spec.minimum:g}",
            )
        )
    if spec.maximum is not None:
        checks.append(
            (
                ok & (parsed.to_numpy(dtype=float, na_value=np.nan) > spec.maximum),
                f"above the maximum {spec.maximum:g}",
            )
        )
    if spec.geometry_types is not None:
        allowed_types = set(spec.geometry_types)
        wrong = ok & ~parsed.map(
            lambda g: g is None or g.geom_type.removeprefix("Multi") in allowed_types
        ).to_numpy(dtype=bool)
        checks.append((wrong, f"wrong geometry type; field takes {'/'.join(spec.geometry_types)}"))
    if spec.pattern is not None:
        regex = re.compile(spec.pattern)
        mismatch = ok & ~parsed.map(lambda v: bool(regex.fullmatch(str(v)))).to_numpy(dtype=bool)
        checks.append((mismatch, f"does not match the pattern {spec.pattern}"))
    return checks


def _restore_shapefile_names(
    layer: Layer, raw: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """Map column names a Shapefile cut to 10 characters back to the catalogue's field names."""
    names = [f.name for f in layer.fields]
    renamed = {}
    for column in raw.columns:
        if column in names or len(str(column)) != 10:
            continue
        matches = [n for n in names if n.startswith(str(column))]
        if len(matches) == 1 and matches[0] not in raw.columns:
            renamed[column] = matches[0]
    return raw.rename(columns=renamed), renamed


def _derived_ids(layer: Layer, raw: gpd.GeoDataFrame) -> np.ndarray:
    """Stable ids from geometry (to 1e-7°) and name, for files that carry none."""
    geoms = np.asarray(raw.geometry.values, dtype=object)
    names = raw["name"].astype(str).to_numpy() if "name" in raw else np.full(len(raw), "")
    present = geoms.copy()
    present[pd.isna(geoms)] = None
    wkb = shapely.to_wkb(shapely.set_precision(present, 1e-7))
    return np.array(
        [
            f"{layer.id}-{hashlib.sha1((w or b'') + n.encode()).hexdigest()[:12]}"
            for w, n in zip(wkb, names, strict=True)
        ],
        dtype=object,
    )


def _keep_dimension(fixed: Any, original: Any) -> Any:
    """The parts of a repaired geometry with the original's dimension (make_valid may add lines)."""
    dimension = shapely.get_dimensions(original)
    if shapely.get_dimensions(fixed) == dimension and fixed.geom_type != "GeometryCollection":
        return fixed
    parts = [p for p in shapely.get_parts(fixed) if shapely.get_dimensions(p) == dimension]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return None if merged.is_empty else merged


def _inside(
    minx: np.ndarray, miny: np.ndarray, maxx: np.ndarray, maxy: np.ndarray, box: tuple[float, ...]
) -> np.ndarray:
    west, south, east, north = box
    return (minx >= west) & (maxx <= east) & (miny >= south) & (maxy <= north)


def _corner(bounds: np.ndarray) -> np.ndarray:
    return np.array([f"({b[0]:.6g}, {b[1]:.6g})" for b in bounds], dtype=object)


def _id_text(value: Any) -> str | None:
    if _is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_blank(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    return isinstance(value, str) and value.strip() == ""


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _as_bool_or_none(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"true", "t", "yes", "y", "1", "是"}:
        return True
    if text in {"false", "f", "no", "n", "0", "否"}:
        return False
    return None


def _list_or_none(value: Any) -> list[str] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        return as_list(value)
    except ValueError:
        return None


def _geometry_or_none(value: Any) -> Any:
    try:
        return as_geometry(value)
    except (shapely.errors.ShapelyError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _shorten(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
