"""Four-colour grading of hazard features, and the risk surface.

Every hazard feature of a layer with a ``grading:`` section gets a score from 0 to 100 and a class:

    score = 100 · S^ws · E^we · V^wv

- **S, severity**: how bad the hazard itself is (a plant's major-hazard grade and processes, a
  pond's grade, a rail line's type);
- **E, exposure**: how much is near it (people within 1 km from the population raster, people and
  facilities in a pond's downstream corridor, a road's traffic by its class);
- **V, vulnerability**: how sensitive what is near it is (a school inside the protective distance
  counts more than a warehouse; a pond without online monitoring more than one with it).

Each factor lies in ``[floor, 1]``: it is the highest of the *terms* the layer lists for it (below),
or ``default`` (else ``floor``) when no term applies. The weights ``ws, we, wv`` say how much a
factor counts: 1 as is, 0.5 a square root (softer), 0 not at all. A feature with no finding that
still holds (closed ones do not count) scores at most ``no_findings_max``, set below the yellow
threshold: the four colours grade hidden dangers, and a feature no rule flags is not one (which
rules flag: ``flagged_by``, default all; a ranking rule's findings do not). Class:
``score ≥ classes.red`` → red, ``≥ classes.orange`` → orange, ``≥ classes.yellow`` → yellow,
else blue.

Terms, each giving a value in [0, 1] per feature (or nothing, where it does not apply), times
``times`` (default 1):

- ``{field: F, map: {value: s}}``: a category (a list field: its highest item). ``F`` may be an
  input field or one the rules compute (``population_1km``, ``head_top``).
- ``{field: F, any_of: [..] | {rule: R, param: P}, value: s}``: ``s`` where ``F`` holds any of the
  values (a list, or a rule parameter of the same layer, so a list is written once).
- ``{field: F, saturate: X}``: ``F / X``, clipped to [0, 1]; ``{field: F, ramp: [lo, hi]}``:
  ``(F − lo) / (hi − lo)``, clipped.
- ``{findings: count | max_value | sum_value, rules: [..], saturate | ramp | value}``: the number of
  the feature's findings (of those rules), or their largest / summed measured value; ``value``:
  that value where there is at least one.
- ``{findings: worst_class, rules: [..], map: {red: .., orange: ..}}``: the worst finding class.
- ``{findings: target_field, target_field: C, rules: [..], map: {..}}``: the most sensitive target
  found, read from the target layer's field ``C`` (e.g. a protection target's ``category``).

The weights, floors, maps and thresholds are a local choice (confidence S), stated with their basis
in each layer file; none of them is a regulation's number.

``risk_surface`` spreads each graded feature's score over its layer's ``surface_radius_m`` (linear
fall-off to zero there), keeps the highest value where features overlap, and stores the grid as the
``risk_surface`` raster (GeoTIFF in the data's metric CRS), for heat maps and raster tiles.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo_service.catalogue import RISK_CLASSES, Confidence, Layer
from geo_service.metric import metric_crs_for

if TYPE_CHECKING:
    from geo_service.risk.context import RuleContext
    from geo_service.store import Store

FactorName = Literal["severity", "exposure", "vulnerability"]
FACTORS: tuple[FactorName, ...] = ("severity", "exposure", "vulnerability")
SURFACE_LAYER = "risk_surface"
DEFAULT_CELL_SIZE_M = 100.0

FindingsAggregate = Literal["count", "max_value", "sum_value", "worst_class", "target_field"]


class ParamRef(BaseModel):
    """A rule parameter of the same layer, e.g. the severe processes of the distance rule."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    param: str


class Term(BaseModel):
    """One way to read a factor from a feature's fields or its findings."""

    model_config = ConfigDict(extra="forbid")

    field: str | None = None
    findings: FindingsAggregate | None = None
    rules: list[str] | None = None
    target_field: str | None = None
    map: dict[Any, float] | None = None
    any_of: list[Any] | ParamRef | None = None
    value: float | None = Field(default=None, ge=0, le=1)
    saturate: float | None = Field(default=None, gt=0)
    ramp: tuple[float, float] | None = None
    times: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_way(self) -> Term:
        if (self.field is None) == (self.findings is None):
            raise ValueError("a term reads either a `field` or the `findings`")
        if self.ramp is not None and not self.ramp[1] > self.ramp[0]:
            raise ValueError(f"ramp {list(self.ramp)}: the top must exceed the bottom")
        if self.map is not None:
            self.map = {_key(k): float(v) for k, v in self.map.items()}
        ways = {
            name
            for name in ("map", "any_of", "saturate", "ramp", "value")
            if getattr(self, name) is not None
        }
        if self.any_of is not None:
            ways.discard("value")  # any_of takes a value (default 1)
        if self.findings in ("worst_class", "target_field"):
            allowed = {"map"}
        elif self.findings is not None:
            allowed = {"saturate", "ramp", "value"}
        else:
            allowed = {"map", "any_of", "saturate", "ramp"}
        if len(ways) != 1 or not ways <= allowed:
            raise ValueError(
                f"a {'findings: ' + self.findings if self.findings else 'field'} term takes "
                f"exactly one of {sorted(allowed)}, got {sorted(ways) or 'none'}"
            )
        if (self.findings == "target_field") != (self.target_field is not None):
            raise ValueError("`target_field` goes with `findings: target_field` (and only there)")
        return self


class Factor(BaseModel):
    """Severity, exposure or vulnerability: the highest of its terms, within [floor, 1]."""

    model_config = ConfigDict(extra="forbid")

    floor: float = Field(default=0.0, ge=0, le=1)
    default: float | None = Field(default=None, ge=0, le=1)
    terms: list[Term] = Field(default_factory=list)


class Thresholds(BaseModel):
    """Lowest score of each class (blue is everything below yellow)."""

    model_config = ConfigDict(extra="forbid")

    red: float
    orange: float
    yellow: float

    @model_validator(mode="after")
    def _descending(self) -> Thresholds:
        if not 100 >= self.red > self.orange > self.yellow > 0:
            raise ValueError("class thresholds need 100 ≥ red > orange > yellow > 0")
        return self


class GradingSpec(BaseModel):
    """A hazard layer's ``grading:`` section."""

    model_config = ConfigDict(extra="forbid")

    basis: str
    confidence: Confidence
    weights: dict[FactorName, float]
    classes: Thresholds
    no_findings_max: float = Field(ge=0, le=100)
    flagged_by: list[str] | None = Field(
        default=None,
        description="Rules whose findings make a feature a hidden danger (default: every rule); "
        "a ranking rule's findings, say, do not.",
    )
    surface_radius_m: float = Field(gt=0)
    severity: Factor = Field(default_factory=Factor)
    exposure: Factor = Field(default_factory=Factor)
    vulnerability: Factor = Field(default_factory=Factor)

    @model_validator(mode="after")
    def _weights(self) -> GradingSpec:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights are 0 or more")
        return self


def grading_spec(layer: Layer) -> GradingSpec | None:
    """The layer's grading, checked against its fields and rules; None when it has none."""
    if layer.kind != "vector" or not layer.grading:
        return None
    try:
        spec = GradingSpec.model_validate(layer.grading)
    except ValidationError as exc:
        raise ValueError(f"layers/{layer.id}.yaml grading: {exc}") from None
    rule_ids = {rule.id for rule in layer.rules}
    unknown_flags = sorted(set(spec.flagged_by or ()) - rule_ids)
    if unknown_flags:
        raise ValueError(
            f"layers/{layer.id}.yaml grading.flagged_by: unknown rules {unknown_flags}"
        )
    for name in FACTORS:
        for term in getattr(spec, name).terms:
            if term.field is not None and term.field not in layer.field_map:
                raise ValueError(f"layers/{layer.id}.yaml grading.{name}: no field {term.field!r}")
            unknown = sorted(set(term.rules or ()) - rule_ids)
            if isinstance(term.any_of, ParamRef):
                unknown += [] if term.any_of.rule in rule_ids else [term.any_of.rule]
            if unknown:
                raise ValueError(f"layers/{layer.id}.yaml grading.{name}: unknown rules {unknown}")
    return spec


def grade(
    ctx: RuleContext, layer: Layer, findings: pd.DataFrame, values: dict[str, pd.Series]
) -> dict[str, pd.Series]:
    """``risk_score`` (0–100) and ``risk_class`` of every feature of ``layer``, by feature id.

    ``findings``: the layer's findings that hold (any frame with the findings columns);
    ``values``: fields the rules computed this run (e.g. ``population_1km``), by feature id.
    """
    parts = factors(ctx, layer, findings, values)
    return {"risk_score": parts["risk_score"], "risk_class": parts["risk_class"]}


def factors(
    ctx: RuleContext, layer: Layer, findings: pd.DataFrame, values: dict[str, pd.Series]
) -> pd.DataFrame:
    """The score broken into its parts: severity, exposure, vulnerability, flagged, score, class."""
    spec = grading_spec(layer)
    if spec is None:
        raise ValueError(f"layer {layer.id} has no grading section")
    frame = ctx.frame(layer.id)
    ids = pd.Index(frame["id"].astype(str), name="id")
    mine = findings[findings["hazard_id"].isin(ids)] if len(findings) else findings
    fields = frame.set_index(ids)
    parts = pd.DataFrame(index=ids)
    score = np.full(len(ids), 100.0)
    for name in FACTORS:
        factor: Factor = getattr(spec, name)
        terms = [_term(ctx, layer, term, fields, mine, values) for term in factor.terms]
        value = pd.concat(terms, axis=1).max(axis=1) if terms else pd.Series(np.nan, index=ids)
        fallback = factor.default if factor.default is not None else factor.floor
        parts[name] = value.fillna(fallback).clip(factor.floor, 1.0).astype(float)
        score *= parts[name].to_numpy() ** spec.weights.get(name, 1.0)
    flagging = mine if spec.flagged_by is None else mine[mine["rule"].isin(spec.flagged_by)]
    parts["flagged"] = (
        ids.isin(flagging["hazard_id"]) if len(flagging) else np.zeros(len(ids), bool)
    )
    score = np.where(parts["flagged"], score, np.minimum(score, spec.no_findings_max))
    score = np.round(score, 2)  # the class follows the score as shown
    parts["risk_score"] = pd.Series(score, index=ids).astype("Float64")
    parts["risk_class"] = _classify(score, spec.classes, ids)
    return parts


def risk_surface(store: Store, cell_size_m: float | None = None, path: Path | None = None) -> Path:
    """Grid the graded features' scores into the ``risk_surface`` raster; returns the GeoTIFF.

    Each feature's score falls off linearly with distance to 0 at its layer's
    ``surface_radius_m``; overlapping features keep the highest value. The grid is in the metric
    CRS of the features' centre with ``cell_size_m`` cells (default: the ``risk_surface`` layer's
    ``grading.cell_size_m``, else 100 m). Written to ``path`` when given (else a temporary file)
    and stored in ``store``.
    """
    cell = float(cell_size_m or _default_cell_size(store))
    if not cell > 0:
        raise ValueError(f"the cell size must be positive, got {cell_size_m}")
    sources = _surface_sources(store)
    every = gpd.GeoSeries(
        np.concatenate([s[0] for s in sources]) if sources else [shapely.Point(0, 0)], crs=4326
    )
    crs = metric_crs_for(every)
    reach = max((s[2] for s in sources), default=0.0)
    projected = every.to_crs(crs)
    bounds = projected.total_bounds if len(projected) else np.zeros(4)
    minx = math.floor((bounds[0] - reach) / cell) * cell
    miny = math.floor((bounds[1] - reach) / cell) * cell
    width = max(1, math.ceil((bounds[2] + reach - minx) / cell))
    height = max(1, math.ceil((bounds[3] + reach - miny) / cell))
    maxy = miny + height * cell
    grid = np.zeros(width * height, dtype="float64")
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    centres = shapely.points(minx + (cols.ravel() + 0.5) * cell, maxy - (rows.ravel() + 0.5) * cell)
    start = 0
    for geoms, scores, radius in sources:
        metric = projected.to_numpy()[start : start + len(geoms)]
        start += len(geoms)
        cell_index, feature = shapely.STRtree(metric).query(
            centres, predicate="dwithin", distance=radius
        )
        dist = shapely.distance(centres[cell_index], metric[feature])
        np.maximum.at(grid, cell_index, scores[feature] * np.clip(1 - dist / radius, 0, 1))
    transform = Affine(cell, 0.0, minx, 0.0, -cell, maxy)
    return _write_surface(store, grid.reshape(height, width), transform, crs, path)


# -- terms -------------------------------------------------------------------------------------


def _term(
    ctx: RuleContext,
    layer: Layer,
    term: Term,
    fields: pd.DataFrame,
    findings: pd.DataFrame,
    values: dict[str, pd.Series],
) -> pd.Series:
    ids = fields.index
    if term.field is not None:
        raw = values.get(term.field)
        raw = fields[term.field] if raw is None else raw.reindex(ids)
        result = _score_values(layer, term, raw, layer.field_map[term.field].type == "list")
    else:
        result = _findings_term(ctx, term, findings)
    return (result.reindex(ids).astype(float) * term.times).rename(None)


def _score_values(layer: Layer, term: Term, raw: pd.Series, is_list: bool) -> pd.Series:
    """A field's values scored by the term (a list field: its best item)."""
    if term.saturate is not None or term.ramp is not None:
        numbers = pd.to_numeric(raw.astype(object), errors="coerce").astype(float)
        return _scale(numbers, term)
    items = raw.explode() if is_list else raw
    keys = items.map(_key)
    if term.map is not None:
        scored = keys.map(term.map)
    else:
        wanted = [_key(v) for v in _any_of(layer, term)]
        value = 1.0 if term.value is None else term.value
        scored = pd.Series(np.where(keys.isin(wanted), value, np.nan), index=keys.index)
    return scored.astype(float).groupby(level=0).max()


def _findings_term(ctx: RuleContext, term: Term, findings: pd.DataFrame) -> pd.Series:
    chosen = findings if term.rules is None else findings[findings["rule"].isin(term.rules)]
    if chosen.empty:
        return pd.Series(dtype=float)
    by_hazard = chosen.groupby("hazard_id")
    if term.findings == "worst_class":
        rank = chosen["risk_class"].map({c: i for i, c in enumerate(RISK_CLASSES)})
        worst = rank.groupby(chosen["hazard_id"]).min().map(dict(enumerate(RISK_CLASSES)))
        return worst.map(term.map or {}).astype(float)
    if term.findings == "target_field":
        category = _target_values(ctx, chosen, str(term.target_field))
        return (
            category.map(_key).map(term.map or {}).astype(float).groupby(chosen["hazard_id"]).max()
        )
    if term.findings == "count":
        numbers = by_hazard.size().astype(float)
    elif term.findings == "max_value":
        numbers = by_hazard["value"].max().astype(float)
    else:
        numbers = by_hazard["value"].sum().astype(float)
    if term.value is not None:
        return pd.Series(np.where(numbers > 0, term.value, np.nan), index=numbers.index)
    return _scale(numbers, term)


def _target_values(ctx: RuleContext, findings: pd.DataFrame, field: str) -> pd.Series:
    """The target's ``field`` of each finding (None where the target layer has no such field)."""
    out = pd.Series([None] * len(findings), index=findings.index, dtype=object)
    for target_layer, rows in findings.groupby(findings["target_layer"].fillna("")):
        if target_layer not in ctx.catalogue or field not in ctx.catalogue[target_layer].field_map:
            continue
        targets = ctx.frame(str(target_layer))
        lookup = pd.Series(targets[field].to_numpy(dtype=object), index=targets["id"].astype(str))
        lookup = lookup[~lookup.index.duplicated()]
        out[rows.index] = rows["target_id"].map(lookup).to_numpy(dtype=object)
    return out


def _scale(numbers: pd.Series, term: Term) -> pd.Series:
    low, high = term.ramp if term.ramp is not None else (0.0, float(term.saturate or 1.0))
    return ((numbers - low) / (high - low)).clip(0.0, 1.0)


def _any_of(layer: Layer, term: Term) -> list[Any]:
    if isinstance(term.any_of, ParamRef):
        value = layer.rule(term.any_of.rule).params.get(term.any_of.param)
        if not isinstance(value, list):
            raise ValueError(
                f"layers/{layer.id}.yaml grading: rule {term.any_of.rule} has no list parameter "
                f"{term.any_of.param!r}"
            )
        return value
    return list(term.any_of or ())


def _key(value: Any) -> str | None:
    """One spelling for a category value, whether YAML, pandas or a store gave it."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _classify(score: np.ndarray, classes: Thresholds, index: pd.Index) -> pd.Series:
    names = np.select(
        [score >= classes.red, score >= classes.orange, score >= classes.yellow],
        ["red", "orange", "yellow"],
        default="blue",
    )
    return pd.Series(names.astype(object), index=index)


# -- the surface -------------------------------------------------------------------------------


def _default_cell_size(store: Store) -> float:
    if SURFACE_LAYER in store.catalogue:
        return float(store.catalogue[SURFACE_LAYER].grading.get("cell_size_m", DEFAULT_CELL_SIZE_M))
    return DEFAULT_CELL_SIZE_M


def _surface_sources(store: Store) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(geometries, scores, radius) of each graded layer's scored features."""
    sources = []
    for layer in store.catalogue.vector_layers:
        spec = grading_spec(layer)
        if spec is None or "risk_score" not in layer.field_map:
            continue
        frame = store.read(layer.id)
        scores = frame["risk_score"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        keep = (scores > 0) & ~shapely.is_missing(frame.geometry.values)
        if keep.any():
            geoms = np.asarray(frame.geometry.values, dtype=object)[keep]
            sources.append((geoms, scores[keep], spec.surface_radius_m))
    return sources


def _write_surface(
    store: Store, grid: np.ndarray, transform: Affine, crs: Any, path: Path | None
) -> Path:
    with tempfile.TemporaryDirectory(prefix="georisk-surface-") as tmp:
        target = Path(path) if path is not None else Path(tmp) / "risk_surface.tif"
        with rasterio.open(
            target,
            "w",
            driver="GTiff",
            width=grid.shape[1],
            height=grid.shape[0],
            count=1,
            dtype="float32",
            crs=crs,
            transform=transform,
            compress="deflate",
        ) as dst:
            dst.write(grid.astype("float32"), 1)
            dst.update_tags(1, unit="risk score 0-100")
        store.put_raster(SURFACE_LAYER, target)
        if path is not None:
            return target
    stored = store.raster_path(SURFACE_LAYER)
    if stored is None:
        raise RuntimeError("the store kept no risk surface")  # a store bug
    return stored
