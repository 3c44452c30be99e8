"""Hazardous-chemical plants (plan item (三), 退城入园): who is too close, how many, what first.

Four rule kinds; every number they use is a param of the rule in ``layers/chemical_plants.yaml``.
All of it is a screening with configured distances, not a quantitative risk assessment (QRA).

``protective_distance``
    A protection target inside the protective distance for its category and the plant's hazard
    class. A plant is *severe* when it runs a process in ``severe_processes`` or has a major
    hazard source of a grade in ``severe_major_hazard_grades``, else *ordinary*. The distance is
    ``distances_m[hazard class][category]``, measured from the plant's site boundary (its point
    when it has no outline) to the target's nearest point, in metres in the metric zone of the
    plant. A target exactly at the distance is inside. Red within ``red_within_fraction`` of the
    distance, else orange. One finding per (plant, target), drawn as the shortest line.
``population_rings``
    People within each radius of ``radii_m`` of the plant (its boundary for a site polygon) from
    the population raster, partial cells weighted by the part covered. Values only
    (``population_500m``, ``population_1km``, ``population_3km``): the people around a plant are
    the *exposure* that the dense-area rule, the ranking and the risk grading weigh; they are not
    a hidden danger of their own, so the rule writes no findings.
``dense_area``
    Inside a densely populated area: ``method: density`` (persons per km² within ``radius_m`` of
    the site ≥ ``min_density_per_km2``) or ``method: polygon`` (inside an area of
    ``urban_area_layer`` matching ``urban_area_filter``). A finding (``risk_class``) for the plants
    the plan names: sizes in ``applies_to_sizes``, and large plants with a major hazard source
    when ``applies_to_large_with_major_hazard`` (standing in for "large with major hidden
    dangers"), unless their ``relocation_status`` is in ``resolved_statuses``.
``relocation_priority``
    An explainable score per plant, ``score = 100 × Σ wᵢ·partᵢ / Σ wᵢ`` over four parts in [0, 1]:

    - severity = (p + g) / 2, where p = 1 when the plant runs a severe process (as defined by
      its protective-distance rule) else 0, and g = (5 − grade) / 4 for a major hazard source of
      grade 1–4 (1 → 1.0 … 4 → 0.25), 0 without one;
    - exposure = min(1, ``exposure_field`` / ``exposure_saturation_persons``) — people within
      1 km by default;
    - vulnerability = min(1, Σ ``vulnerability_weights[category]`` over the targets inside its
      protective distance / ``vulnerability_saturation``);
    - dense_area = 1 inside a densely populated area, else 0.

    ``relocation_rank`` 1 = first, by score (ties by id); plants whose status is in
    ``unranked_statuses``, and plants already in a chemical park unless
    ``rank_plants_in_chemical_park``, get no rank. One finding per ranked plant carries the parts;
    its class follows ``class_breaks``. ``relocation_breakdown(ctx)`` gives the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

from geo_service.catalogue import Layer, Rule
from geo_service.metric import WGS84, buffer_m, to_metric_by_zone
from geo_service.risk.context import RuleContext
from geo_service.risk.exposure import population_in, population_within
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.proximity import Pairs, pairs_within
from geo_service.risk.registry import RULE_KINDS, rule_kind

__all__ = [
    "HAZARD_CLASSES",
    "ProtectivePairs",
    "dense_area",
    "plant_hazard_class",
    "population_rings",
    "protective_distance",
    "protective_distance_pairs",
    "relocation_breakdown",
    "relocation_priority",
]

log = logging.getLogger(__name__)

HAZARD_CLASSES = ("ordinary", "severe")  # rows of ``distances_m``, in this order
SCREENING = "筛查，非定量风险评价 (screening with configured distances, not a QRA)"
_PRIORITY_AFTER = ("protective_distance", "population_rings", "dense_area")


@dataclass(frozen=True)
class ProtectivePairs:
    """Plants and targets inside their protective distance (positions into the two frames)."""

    pairs: Pairs  # ``pairs.near``: inside ``red_within_fraction`` of the distance, red
    hazard_class: NDArray[np.intp]  # per plant: index into HAZARD_CLASSES, -1 not checked
    categories: tuple[str, ...]  # columns of the distance table
    target_class: NDArray[np.intp]  # per target: index into ``categories``, -1 none configured


# -- protective distance ------------------------------------------------------------------------


def protective_distance_pairs(
    plants: gpd.GeoDataFrame,
    targets: gpd.GeoDataFrame,
    params: Mapping[str, Any],
    *,
    workers: int | None = None,
) -> ProtectivePairs:
    """The core of ``protective_distance`` on frames in one metric CRS (what the bench times).

    Classifies the plants (severe/ordinary) and the targets (``target_class_field``), finds every
    pair inside its configured distance, and marks those within ``red_within_fraction`` red.
    """
    for name, frame in (("plants", plants), ("targets", targets)):
        crs = frame.crs
        if crs is None or not pyproj.CRS(crs).is_projected:
            raise ValueError(
                f"protective_distance_pairs: {name} must be in a metric CRS, got {crs}"
            )
    if not pyproj.CRS(plants.crs).equals(pyproj.CRS(targets.crs)):
        raise ValueError(f"plants in {plants.crs} but targets in {targets.crs}")
    table, categories = _distance_table(params)
    hazard = plant_hazard_class(plants, params)
    codes, uniques = pd.factorize(targets[params["target_class_field"]])
    column = {c: i for i, c in enumerate(categories)}
    lookup = np.array([column.get(u, -1) for u in uniques] + [-1], dtype=np.intp)
    target_class = lookup[codes]  # a missing category (code -1) lands on the trailing -1
    pairs = pairs_within(
        np.asarray(plants.geometry.array, dtype=object),
        hazard,
        np.asarray(targets.geometry.array, dtype=object),
        target_class,
        table,
        near_fraction=float(params["red_within_fraction"]),
        workers=workers,
    )
    return ProtectivePairs(pairs, hazard, categories, target_class)


def plant_hazard_class(plants: pd.DataFrame, params: Mapping[str, Any]) -> NDArray[np.intp]:
    """Per plant: 1 (severe), 0 (ordinary) or -1 (status in ``skip_statuses``: not checked)."""
    severe = _severe_process(plants, params) | plants["major_hazard_grade"].isin(
        list(params["severe_major_hazard_grades"])
    ).to_numpy(dtype=bool)
    hazard = np.where(severe, HAZARD_CLASSES.index("severe"), HAZARD_CLASSES.index("ordinary"))
    skipped = plants["relocation_status"].isin(list(params.get("skip_statuses", [])))
    return np.where(skipped.to_numpy(dtype=bool), -1, hazard).astype(np.intp)


@rule_kind("protective_distance")
def protective_distance(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Protection targets inside the protective distance of each plant (one finding a pair)."""
    params = rule.params
    target_layer = str(params["target_layer"])
    plants, targets = ctx.frame(layer.id), ctx.frame(target_layer)
    hazard = plant_hazard_class(plants, params)
    ctx.shared[f"protective_distance:{layer.id}"] = {
        "plants": pd.DataFrame(
            {
                "hazard_class": [HAZARD_CLASSES[h] if h >= 0 else None for h in hazard],
                "severe_process": _severe_process(plants, params),
            },
            index=pd.Index(plants["id"], name="id"),
        ),
        "pairs": pd.DataFrame(
            columns=[
                "hazard_id",
                "target_id",
                "category",
                "distance_m",
                "threshold_m",
                "risk_class",
            ]
        ),
    }
    if plants.empty or targets.empty:
        return RuleResult(no_findings())
    found = _pairs_by_zone(plants, targets, params)
    if found.empty:
        return RuleResult(no_findings())
    field = str(params["target_class_field"])
    found["hazard_id"] = plants["id"].to_numpy()[found["plant"]]
    found["target_id"] = targets["id"].to_numpy()[found["target"]]
    found["category"] = targets[field].to_numpy(dtype=object)[found["target"]]
    found["risk_class"] = np.where(found["red"], "red", "orange")
    found = found.sort_values(["hazard_id", "target_id"], kind="stable").reset_index(drop=True)
    ctx.shared[f"protective_distance:{layer.id}"]["pairs"] = found[
        ["hazard_id", "target_id", "category", "distance_m", "threshold_m", "risk_class"]
    ]
    plant_rows = plants.iloc[found["plant"]]
    fraction = float(params["red_within_fraction"])
    evidence = [
        {
            "plant_hazard_class": h,
            "severe_because": _severe_reasons(proc, grade, params),
            "target_category": cat,
            "distance_m": round(float(d), 2),
            "protective_distance_m": float(t),
            "red_within_m": round(fraction * float(t), 2),
            "measured_from": "site boundary" if poly else "plant point",
            "metric_crs": crs,
            "method": SCREENING,
        }
        for h, proc, grade, cat, d, t, poly, crs in zip(
            np.asarray(HAZARD_CLASSES)[found["hazard_class"]],
            plant_rows["processes"],
            plant_rows["major_hazard_grade"],
            found["category"],
            found["distance_m"],
            found["threshold_m"],
            found["plant_polygonal"],
            found["crs"],
            strict=True,
        )
    ]
    findings = findings_frame(
        rule,
        layer,
        hazard_ids=found["hazard_id"].to_numpy(),
        hazard_names=plant_rows["name"].to_numpy(),
        geometries=found["geometry"].to_numpy(),
        values=found["distance_m"].to_numpy(),
        thresholds=found["threshold_m"].to_numpy(),
        unit="m",
        risk_classes=found["risk_class"].to_numpy(),
        target_layer=target_layer,
        target_ids=found["target_id"].to_numpy(),
        target_names=targets["name"].to_numpy(dtype=object)[found["target"]]
        if "name" in targets
        else None,
        evidence=evidence,
    )
    return RuleResult(findings)


def _pairs_by_zone(
    plants: gpd.GeoDataFrame, targets: gpd.GeoDataFrame, params: Mapping[str, Any]
) -> pd.DataFrame:
    """Pairs of the whole layers: each plant measured in its own metric zone, lines in 4326."""
    present = ~(
        shapely.is_missing(plants.geometry.values) | shapely.is_empty(plants.geometry.values)
    )
    table, _ = _distance_table(params)
    reach = float(np.nanmax(table)) if np.isfinite(table).any() else 0.0
    parts = []
    t_bounds = shapely.bounds(np.asarray(targets.geometry.array, dtype=object))
    geometry = plants.geometry.reset_index(drop=True)
    for crs, projected in to_metric_by_zone(geometry[present]).items():
        plant_pos = projected.index.to_numpy()
        near = _near_bounds(t_bounds, geometry.iloc[plant_pos].total_bounds, reach)
        if not near.any():
            continue
        target_pos = np.flatnonzero(near)
        forward = _transformer(WGS84, crs)
        plants_m = gpd.GeoDataFrame(
            plants.drop(columns="geometry").iloc[plant_pos].reset_index(drop=True),
            geometry=projected.to_numpy(),
            crs=crs,
        )
        target_geoms = np.asarray(targets.geometry.array, dtype=object)[target_pos]
        targets_m = gpd.GeoDataFrame(
            {
                params["target_class_field"]: targets[params["target_class_field"]].to_numpy(
                    dtype=object
                )[target_pos]
            },
            geometry=shapely.transform(target_geoms, forward.transform, interleaved=False),
            crs=crs,
        )
        core = protective_distance_pairs(plants_m, targets_m, params)
        pairs = core.pairs
        if not len(pairs):
            continue
        a = np.asarray(plants_m.geometry.array, dtype=object)[pairs.hazard]
        b = np.asarray(targets_m.geometry.array, dtype=object)[pairs.target]
        lines = _show_lines(a, b)
        back = _transformer(crs, WGS84)
        parts.append(
            pd.DataFrame(
                {
                    "plant": plant_pos[pairs.hazard],
                    "target": target_pos[pairs.target],
                    "distance_m": pairs.distance_m,
                    "threshold_m": pairs.threshold_m,
                    "red": pairs.near,
                    "hazard_class": core.hazard_class[pairs.hazard],
                    "plant_polygonal": shapely.get_type_id(a) != 0,
                    "crs": _crs_label(crs),
                    "geometry": shapely.transform(lines, back.transform, interleaved=False),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _show_lines(a: NDArray[np.object_], b: NDArray[np.object_]) -> NDArray[np.object_]:
    """The shortest line from each plant to its target; inside a site, centre to target."""
    lines = shapely.shortest_line(a, b)
    flat = shapely.length(lines) == 0
    if flat.any():
        lines[flat] = shapely.linestrings(
            np.stack(
                [
                    shapely.get_coordinates(shapely.point_on_surface(a[flat])),
                    shapely.get_coordinates(shapely.point_on_surface(b[flat])),
                ],
                axis=1,
            )
        )
    return np.asarray(lines, dtype=object)


def _near_bounds(
    bounds: NDArray[np.float64], box: NDArray[np.float64], reach_m: float
) -> NDArray[np.bool_]:
    """Targets whose bounds come within ``reach_m`` of ``box`` (lon/lat): a generous pre-filter."""
    west, south, east, north = box
    dlat = 1.2 * reach_m / 110_574.0 + 1e-9
    widest = min(89.0, max(abs(south), abs(north)) + dlat)
    dlon = 1.2 * reach_m / (111_320.0 * np.cos(np.radians(widest))) + 1e-9
    return np.asarray(
        (bounds[:, 2] >= west - dlon)
        & (bounds[:, 0] <= east + dlon)
        & (bounds[:, 3] >= south - dlat)
        & (bounds[:, 1] <= north + dlat)
    )


def _distance_table(params: Mapping[str, Any]) -> tuple[NDArray[np.float64], tuple[str, ...]]:
    """``distances_m`` as a (hazard class × category) array, NaN where none is configured."""
    config = params["distances_m"]
    unknown = set(config) - set(HAZARD_CLASSES)
    if unknown:
        raise ValueError(f"distances_m: unknown plant hazard classes {sorted(unknown)}")
    categories = tuple(dict.fromkeys(c for h in HAZARD_CLASSES for c in config.get(h, {})))
    table = np.full((len(HAZARD_CLASSES), len(categories)), np.nan)
    for i, h in enumerate(HAZARD_CLASSES):
        for j, c in enumerate(categories):
            if c in config.get(h, {}):
                table[i, j] = float(config[h][c])
    return table, categories


def _severe_process(plants: pd.DataFrame, params: Mapping[str, Any]) -> NDArray[np.bool_]:
    """Whether each plant runs one of ``severe_processes`` (vectorised over the list column)."""
    if plants.empty:
        return np.zeros(0, dtype=bool)
    items = plants["processes"].reset_index(drop=True).explode()
    hit = items.isin(list(params["severe_processes"]))
    return hit.groupby(level=0).any().reindex(range(len(plants)), fill_value=False).to_numpy()


def _severe_reasons(processes: Any, grade: Any, params: Mapping[str, Any]) -> list[str]:
    reasons = sorted(set(processes or []) & set(params["severe_processes"]))
    if not pd.isna(grade) and int(grade) in set(params["severe_major_hazard_grades"]):
        reasons.append(f"major hazard source grade {int(grade)}")
    return reasons


@lru_cache(maxsize=32)
def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def _crs_label(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


# -- population rings ---------------------------------------------------------------------------


@rule_kind("population_rings")
def population_rings(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """People within each ring radius of every plant, from the population raster (no findings)."""
    plants = ctx.frame(layer.id)
    radii = [float(r) for r in rule.params["radii_m"]]
    names = [_ring_field(r) for r in radii]
    index = pd.Index(plants["id"], name="id")
    raster = ctx.raster_path(str(rule.params.get("population_layer", "population")))
    if raster is None or plants.empty:
        if raster is None and not plants.empty:
            log.warning("rule %s: no population raster loaded; the rings stay empty", rule.id)
        ctx.shared[f"population_rings:{layer.id}"] = pd.DataFrame(
            {n: pd.Series(pd.NA, index=index, dtype="Int64") for n in names}
        )
        return RuleResult(no_findings())
    geoms = plants.geometry
    present = ~(shapely.is_missing(geoms.values) | shapely.is_empty(geoms.values))
    values = {}
    for name, radius in zip(names, radii, strict=True):
        persons = np.rint(population_within(raster, geoms, radius)).astype("int64")
        values[name] = pd.Series(persons, index=index, dtype="Int64").where(present, pd.NA)
    ctx.shared[f"population_rings:{layer.id}"] = pd.DataFrame(values)
    return RuleResult(no_findings(), feature_values=values)


def _ring_field(radius_m: float) -> str:
    """``population_500m``, ``population_1km``, ``population_3km``."""
    if radius_m >= 1000 and radius_m % 1000 == 0:
        return f"population_{int(radius_m // 1000)}km"
    return f"population_{radius_m:g}m"


# -- densely populated area ---------------------------------------------------------------------


@rule_kind("dense_area")
def dense_area(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Plants inside a densely populated area (density over a radius, or an urban polygon)."""
    params = rule.params
    plants = ctx.frame(layer.id)
    key = f"dense_area:{layer.id}"
    index = pd.Index(plants["id"], name="id")
    if plants.empty:
        ctx.shared[key] = pd.Series(False, index=index, dtype=bool)
        return RuleResult(no_findings())
    method = params["method"]
    if method == "density":
        measured = _density(ctx, rule, plants)
        dense = measured["density"].to_numpy() >= float(params["min_density_per_km2"])
    elif method == "polygon":
        measured = _urban_polygon(ctx, rule, plants)
        dense = measured["area_id"].notna().to_numpy()
    else:
        raise ValueError(f"rule {rule.id}: method must be `density` or `polygon`, not {method!r}")
    ctx.shared[key] = pd.Series(dense, index=index, dtype=bool)

    size = plants["size"].to_numpy(dtype=object)
    grade = plants["major_hazard_grade"]
    small = np.isin(size, list(params["applies_to_sizes"]))
    large = (
        (size == "large")
        & grade.notna().to_numpy()
        & bool(params.get("applies_to_large_with_major_hazard", False))
    )
    resolved = plants["relocation_status"].isin(list(params.get("resolved_statuses", [])))
    hit = np.flatnonzero(dense & (small | large) & ~resolved.to_numpy(dtype=bool))
    if not len(hit):
        return RuleResult(no_findings())
    rows, m = plants.iloc[hit], measured.iloc[hit]
    evidence = [
        {
            "method": method,
            **{str(k): _plain(v) for k, v in measured_row.items() if k != "geometry"},
            "size": s,
            "major_hazard_grade": None if pd.isna(g) else int(g),
            "applies_because": f"size {s}"
            if s in params["applies_to_sizes"]
            else f"large with a grade-{int(g)} major hazard source",
            "relocation_status": st,
            "screening": SCREENING,
        }
        for measured_row, s, g, st in zip(
            m.to_dict("records"),
            rows["size"],
            rows["major_hazard_grade"],
            rows["relocation_status"],
            strict=True,
        )
    ]
    polygon = method == "polygon"
    findings = findings_frame(
        rule,
        layer,
        hazard_ids=rows["id"].to_numpy(),
        hazard_names=rows["name"].to_numpy(),
        geometries=m["geometry"].to_numpy(),
        values=m["density"].to_numpy(dtype=float),
        thresholds=np.nan if polygon else float(params["min_density_per_km2"]),
        unit="persons/km²",
        risk_classes=str(params.get("risk_class", "red")),
        target_layer=str(params["urban_area_layer"]) if polygon else None,
        target_ids=m["area_id"].to_numpy() if polygon else None,
        target_names=m["area_name"].to_numpy() if polygon else None,
        evidence=evidence,
    )
    return RuleResult(findings)


def _density(ctx: RuleContext, rule: Rule, plants: gpd.GeoDataFrame) -> pd.DataFrame:
    """Persons per km² within ``radius_m`` of each site; the measuring area as the geometry."""
    population_layer = str(rule.params.get("population_layer", "population"))
    raster = ctx.raster_path(population_layer)
    if raster is None:
        raise ValueError(
            f"rule {rule.id}: method `density` needs the population raster "
            f"(layer {population_layer}), and none is loaded"
        )
    radius = float(rule.params["radius_m"])
    areas = buffer_m(plants.geometry, radius)
    persons = population_in(raster, areas)
    area_km2 = np.zeros(len(areas))
    for part in to_metric_by_zone(areas).values():
        area_km2[part.index.to_numpy()] = part.area.to_numpy() / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(area_km2 > 0, persons / area_km2, 0.0)
    return pd.DataFrame(
        {
            "radius_m": radius,
            "persons": np.round(persons, 1),
            "area_km2": np.round(area_km2, 4),
            "density": density,
            "min_density_per_km2": float(rule.params["min_density_per_km2"]),
            "geometry": areas.to_numpy(),
        }
    )


def _urban_polygon(ctx: RuleContext, rule: Rule, plants: gpd.GeoDataFrame) -> pd.DataFrame:
    """The urban area holding each plant's site (its representative point), if any."""
    params = rule.params
    areas = ctx.frame(str(params["urban_area_layer"]))
    chosen = np.ones(len(areas), dtype=bool)
    for field, wanted in dict(params.get("urban_area_filter", {})).items():
        chosen &= (areas[field] == wanted).fillna(False).to_numpy(dtype=bool)
    areas = areas[chosen].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "area_id": pd.Series([None] * len(plants), dtype=object),
            "area_name": pd.Series([None] * len(plants), dtype=object),
            "density": np.nan,
            "geometry": np.full(len(plants), None, dtype=object),
        }
    )
    geoms = np.asarray(plants.geometry.array, dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(areas) and present.any():
        points = shapely.point_on_surface(geoms[present])
        inside, area = shapely.STRtree(areas.geometry.values).query(points, predicate="within")
        first = pd.Series(area).groupby(inside).min()  # lowest area row when areas overlap
        rows = np.flatnonzero(present)[first.index.to_numpy()]
        out.loc[rows, "area_id"] = areas["id"].to_numpy()[first.to_numpy()]
        out.loc[rows, "area_name"] = areas["name"].to_numpy()[first.to_numpy()]
        out.loc[rows, "geometry"] = areas.geometry.to_numpy()[first.to_numpy()]
    raster = ctx.raster_path(str(params.get("population_layer", "population")))
    if raster is not None and "radius_m" in params:  # density as information, not the test
        out["density"] = _density(ctx, rule, plants)["density"].to_numpy()
    inside_rows = out["area_id"].notna().to_numpy()
    out.loc[~inside_rows, "geometry"] = geoms[~inside_rows]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


# -- relocation priority ------------------------------------------------------------------------

PARTS = ("severity", "exposure", "vulnerability", "dense_area")


@rule_kind("relocation_priority", after=_PRIORITY_AFTER)
def relocation_priority(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Rank the plants for relocation by an explainable score (one finding per ranked plant)."""
    table = _breakdown(ctx, layer, rule)
    ctx.shared[f"relocation_priority:{layer.id}"] = table
    values = {"relocation_rank": table["relocation_rank"].astype("Int64")}
    ranked = table[table["relocation_rank"].notna()]
    if ranked.empty:
        return RuleResult(no_findings(), feature_values=values)
    breaks = {str(k): float(v) for k, v in rule.params["class_breaks"].items()}
    weights = _weights(rule)
    records = [{str(k): v for k, v in r.items()} for r in ranked.reset_index().to_dict("records")]
    evidence = [
        {
            "rank": int(r["relocation_rank"]),
            "score": round(float(r["score"]), 1),
            "parts": {p: round(float(r[p]), 3) for p in PARTS},
            "points": {p: round(float(r[f"points_{p}"]), 1) for p in PARTS},
            "weights": weights,
            "inputs": {
                "severe_process": bool(r["severe_process"]),
                "major_hazard_grade": _int_or_none(r["major_hazard_grade"]),
                "people": _int_or_none(r["people"]),
                "targets_inside": dict(r["targets_inside"]),
                "dense_area": bool(r["in_dense_area"]),
            },
            "notes": list(r["notes"]),
            "formula": "score = 100 × Σ w·part / Σ w (parts in the rule's note)",
        }
        for r in records
    ]
    geometry = ctx.frame(layer.id).set_index("id").geometry
    findings = findings_frame(
        rule,
        layer,
        hazard_ids=ranked.index.to_numpy(),
        hazard_names=ranked["name"].to_numpy(),
        geometries=geometry.reindex(ranked.index).to_numpy(),
        values=ranked["score"].to_numpy(dtype=float),
        thresholds=None,
        unit="score",
        risk_classes=[_score_class(float(s), breaks) for s in ranked["score"]],
        evidence=evidence,
    )
    return RuleResult(findings, feature_values=values)


def relocation_breakdown(ctx: RuleContext, layer_id: str = "chemical_plants") -> pd.DataFrame:
    """Each plant's relocation score in its parts (0-1), points, score (0-100) and rank.

    Columns: the inputs (``severe_process``, ``major_hazard_grade``, ``people``,
    ``targets_inside``, ``in_dense_area``), the parts ``severity``, ``exposure``,
    ``vulnerability``, ``dense_area`` (0-1), their ``points_*`` (weight × part × 100, summing to
    ``score``), ``relocation_rank`` (1 first; empty when not ranked) and ``notes``. Runs the rules
    the score reads when this context has not run them yet. Indexed by plant id, ranked first.
    """
    layer = ctx.catalogue[layer_id]
    rules = [r for r in layer.rules if r.kind == "relocation_priority"]
    if not rules:
        raise ValueError(f"layer {layer_id} declares no relocation_priority rule")
    return _breakdown(ctx, layer, rules[0])


def _breakdown(ctx: RuleContext, layer: Layer, rule: Rule) -> pd.DataFrame:
    params = rule.params
    _run_missing_inputs(ctx, layer)
    plants = ctx.frame(layer.id)
    ids = pd.Index(plants["id"], name="id")
    notes: list[list[str]] = [[] for _ in range(len(plants))]

    def note_all(text: str, which: NDArray[np.bool_] | None = None) -> None:
        for n, hit in zip(
            notes, np.ones(len(notes), bool) if which is None else which, strict=True
        ):
            if hit:
                n.append(text)

    # severity: a severe process (as the protective-distance rule defines it) and the grade
    protective = ctx.shared.get(f"protective_distance:{layer.id}")
    if protective is None:
        note_all("no protective_distance rule: no severe process, no targets counted")
        severe = np.zeros(len(plants), dtype=bool)
        pairs = pd.DataFrame({"hazard_id": [], "category": []})
    else:
        severe = protective["plants"]["severe_process"].reindex(ids, fill_value=False)
        severe, pairs = severe.to_numpy(dtype=bool), protective["pairs"]
    grade = plants["major_hazard_grade"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        grade_part = np.where((grade >= 1) & (grade <= 4), (5 - grade) / 4, 0.0)

    # exposure: people within the ring, saturating
    field = str(params.get("exposure_field", "population_1km"))
    rings = ctx.shared.get(f"population_rings:{layer.id}")
    if rings is not None and field in rings:
        people = rings[field].reindex(ids).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    else:
        people = np.full(len(plants), np.nan)
    note_all(f"no {field} (no population raster?): exposure counts as 0", np.isnan(people))
    saturation = float(params["exposure_saturation_persons"])

    # vulnerability: weighted targets inside the protective distance, saturating
    weight_of = {str(k): float(v) for k, v in params["vulnerability_weights"].items()}
    counts = pd.crosstab(pairs["hazard_id"], pairs["category"]).reindex(ids, fill_value=0)
    weighted = sum(
        (counts[c].to_numpy() * weight_of.get(str(c), 0.0) for c in counts.columns),
        start=np.zeros(len(plants)),
    )

    # dense area
    flags = ctx.shared.get(f"dense_area:{layer.id}")
    if flags is None:
        note_all("no dense_area rule: not counted as inside a dense area")
        in_dense = np.zeros(len(plants), dtype=bool)
    else:
        in_dense = flags.reindex(ids, fill_value=False).to_numpy(dtype=bool)

    parts = {
        "severity": (severe.astype(float) + grade_part) / 2,
        "exposure": np.minimum(1.0, np.nan_to_num(people) / saturation),
        "vulnerability": np.minimum(1.0, weighted / float(params["vulnerability_saturation"])),
        "dense_area": in_dense.astype(float),
    }
    weights = _weights(rule)
    total = sum(weights.values())
    table = pd.DataFrame(
        {
            "name": plants["name"].to_numpy(dtype=object),
            "relocation_status": plants["relocation_status"].to_numpy(dtype=object),
            "in_chemical_park": plants["in_chemical_park"].to_numpy(dtype=object),
            "severe_process": severe,
            "major_hazard_grade": plants["major_hazard_grade"].to_numpy(dtype=object),
            "people": pd.array(np.where(np.isnan(people), np.nan, people), dtype="Int64"),
            "targets_inside": [
                {str(c): int(n) for c, n in zip(counts.columns, row, strict=True) if n}
                for row in counts.to_numpy()
            ],
            "in_dense_area": in_dense,
            **parts,
            **{f"points_{p}": 100 * weights.get(p, 0.0) * parts[p] / total for p in PARTS},
        },
        index=ids,
    )
    # to a millionth of a point, so that a score on a class break is not lost to float round-off
    table["score"] = table[[f"points_{p}" for p in PARTS]].sum(axis=1).round(6)
    table["notes"] = notes

    unranked = table["relocation_status"].isin(list(params.get("unranked_statuses", [])))
    if not params.get("rank_plants_in_chemical_park", False):
        unranked |= table["in_chemical_park"].fillna(False).astype(bool)
    order = table[~unranked].sort_values("score", ascending=False, kind="stable")  # ties: by id
    table["relocation_rank"] = pd.Series(
        np.arange(1, len(order) + 1), index=order.index, dtype="Int64"
    ).reindex(ids)
    return table.sort_values(["relocation_rank", "score"], ascending=[True, False], kind="stable")


def _run_missing_inputs(ctx: RuleContext, layer: Layer) -> None:
    """Run the layer's rules whose results the score reads, if this context has not yet."""
    for rule in layer.rules:
        if rule.kind in _PRIORITY_AFTER and f"{rule.kind}:{layer.id}" not in ctx.shared:
            RULE_KINDS[rule.kind].run(ctx, layer, rule)


def _weights(rule: Rule) -> dict[str, float]:
    weights = {str(k): float(v) for k, v in rule.params["weights"].items()}
    if set(weights) - set(PARTS) or sum(weights.values()) <= 0 or min(weights.values()) < 0:
        raise ValueError(
            f"rule {rule.id}: weights {weights}: parts are {', '.join(PARTS)}, "
            "each weight ≥ 0 and their sum positive"
        )
    return weights


def _score_class(score: float, breaks: Mapping[str, float]) -> str:
    for risk_class in ("red", "orange", "yellow"):
        if risk_class in breaks and score >= breaks[risk_class]:
            return risk_class
    return "blue"


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
