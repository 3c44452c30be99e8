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
``relocation_priority`` (in ``chemical_priority``)
    An explainable 0-100 score per plant from severity, exposure, vulnerability and the dense-area
    flag, and the relocation rank; ``relocation_breakdown(ctx)`` shows each plant's parts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
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
from geo_service.risk.registry import rule_kind

__all__ = [
    "HAZARD_CLASSES",
    "ProtectivePairs",
    "ZonePairs",
    "dense_area",
    "plant_hazard_class",
    "population_rings",
    "protective_distance",
    "protective_distance_by_zone",
    "protective_distance_pairs",
    "relocation_breakdown",
    "relocation_priority",
]

log = logging.getLogger(__name__)

HAZARD_CLASSES = ("ordinary", "severe")  # rows of ``distances_m``, in this order
SCREENING = "筛查，非定量风险评价 (screening with configured distances, not a QRA)"


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


@dataclass(frozen=True)
class ZonePairs:
    """The pairs of one metric zone's plants: positions into the whole EPSG:4326 frames."""

    crs: pyproj.CRS
    plant: NDArray[np.intp]  # the zone's plants (positions in the plant frame)
    target: NDArray[np.intp]  # the targets near them (positions in the target frame)
    plants_m: gpd.GeoDataFrame  # both, projected into the zone
    targets_m: gpd.GeoDataFrame
    found: ProtectivePairs  # positions into plants_m / targets_m


def protective_distance_by_zone(
    plants: gpd.GeoDataFrame, targets: gpd.GeoDataFrame, params: Mapping[str, Any]
) -> Iterator[ZonePairs]:
    """The rule's pairs for frames in EPSG:4326: each plant measured in its own metric zone.

    Plants are grouped by the zone of their centre; the targets near each group (a generous
    lon/lat box, only a pre-filter) are projected into that zone with them, so a pair that
    straddles a zone border is measured in the plant's zone.
    """
    geometry = plants.geometry.reset_index(drop=True)
    present = ~(shapely.is_missing(geometry.values) | shapely.is_empty(geometry.values))
    table, _ = _distance_table(params)
    reach = float(np.nanmax(table)) if np.isfinite(table).any() else 0.0
    target_geoms = np.asarray(targets.geometry.array, dtype=object)
    bounds = shapely.bounds(target_geoms)
    field = str(params["target_class_field"])
    for crs, projected in to_metric_by_zone(geometry[present]).items():
        plant_pos = projected.index.to_numpy()
        target_pos = np.flatnonzero(
            _near_bounds(bounds, geometry.iloc[plant_pos].total_bounds, reach)
        )
        if not len(target_pos):
            continue
        plants_m = gpd.GeoDataFrame(
            plants.drop(columns="geometry").iloc[plant_pos].reset_index(drop=True),
            geometry=projected.to_numpy(),
            crs=crs,
        )
        targets_m = gpd.GeoDataFrame(
            {field: targets[field].to_numpy(dtype=object)[target_pos]},
            geometry=project(target_geoms[target_pos], _transformer(WGS84, crs)),
            crs=crs,
        )
        found = protective_distance_pairs(plants_m, targets_m, params)
        yield ZonePairs(crs, plant_pos, target_pos, plants_m, targets_m, found)


def project(geoms: NDArray[np.object_], transformer: pyproj.Transformer) -> NDArray[np.object_]:
    """Geometries through a transformer (new geometries), with contiguous coordinate arrays.

    ``shapely.transform(..., interleaved=False)`` hands pyproj strided columns, which it copies
    element by element: this is several times faster on a million points.
    """

    def apply(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(
            np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1])
        )
        return np.column_stack([x, y])

    if len(geoms) and (shapely.get_type_id(geoms) == 0).all():
        xy = shapely.get_coordinates(geoms)
        if len(xy) == len(geoms):  # points, none empty: make them anew, much faster than a copy
            return np.asarray(shapely.points(apply(xy)), dtype=object)
    return np.asarray(shapely.transform(geoms, apply), dtype=object)


def _pairs_by_zone(
    plants: gpd.GeoDataFrame, targets: gpd.GeoDataFrame, params: Mapping[str, Any]
) -> pd.DataFrame:
    """The pairs of the whole layers as rows, each with the line that shows it (EPSG:4326)."""
    parts = []
    for zone in protective_distance_by_zone(plants, targets, params):
        pairs = zone.found.pairs
        if not len(pairs):
            continue
        a = np.asarray(zone.plants_m.geometry.array, dtype=object)[pairs.hazard]
        b = np.asarray(zone.targets_m.geometry.array, dtype=object)[pairs.target]
        parts.append(
            pd.DataFrame(
                {
                    "plant": zone.plant[pairs.hazard],
                    "target": zone.target[pairs.target],
                    "distance_m": pairs.distance_m,
                    "threshold_m": pairs.threshold_m,
                    "red": pairs.near,
                    "hazard_class": zone.found.hazard_class[pairs.hazard],
                    "plant_polygonal": shapely.get_type_id(a) != 0,
                    "crs": _crs_label(zone.crs),
                    "geometry": project(_show_lines(a, b), _transformer(zone.crs, WGS84)),
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


# the relocation ranking reads the three kinds above; it lives in its own module
from geo_service.risk.rules.chemical_priority import (  # noqa: E402
    relocation_breakdown,
    relocation_priority,
)
