"""Rule kinds for tailings ponds: head-top ponds (头顶库) and the dam-failure runout corridor.

Both follow the tailings' way down: the steepest-descent path on the DEM from the toe of the
starter dam (``geo_service.risk.flowpath``), measured in metres of *path length*, never a ring.

``downstream_path`` takes the first ``path_length_m`` of the path and widens it into a corridor
of ``corridor_half_width_m`` on each side, with flat ends: it starts at the toe and ends where
the path length does, so nothing behind the dam (upstream) and nothing past the length counts.
Residents (buildings, protection targets, people from the population raster) and important
facilities (roads, railways, schools, water intakes…) touching the corridor make the pond
head-top; each one found is a finding whose value is the path length from the toe to the
target's first point in the corridor. A path that stops at DEM nodata or the DEM's edge before
its length, with nothing found on the part traced, leaves ``head_top`` undecided (null) and
says so in a finding on the DEM.

``runout_corridor`` sizes the runout of a failure from the pond's capacity and dam height
(Concha Larrauri & Lall 2018), traces the same path that far (and to the low and high ends of
the range), and counts the people in the corridor: one finding per pond, its class from the
people exposed.

A pond's point is the toe of its starter dam, where its path starts. Results for grading go
into ``ctx.shared`` under ``"downstream_path:<layer>"`` and ``"runout_corridor:<layer>"``:
frames indexed by pond id (head-top, grade, people; runout distances and people).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray
from shapely import ops

from geo_service.catalogue import Layer, Rule
from geo_service.derive import DERIVATIONS
from geo_service.metric import WGS84, metric_crs
from geo_service.risk.context import RuleContext
from geo_service.risk.exposure import population_in
from geo_service.risk.flowpath import FlowPath, trace_paths
from geo_service.risk.flowpath import transformer as _transformer
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.registry import rule_kind

# a target touching the corridor's edge is inside it (the 1 km is inclusive): 1 mm of slack
# absorbs the rounding of reprojection
_TOUCH_M = 1e-3
_PAD_DEG = 1e-5  # ~1 m: the index box around a corridor, widened so touching targets are in it
_SEGMENT_M = 5.0  # targets are sampled this finely along their part inside the corridor
_NAME_COLUMNS = ("name", "road_name", "line_name")


@rule_kind("downstream_path")
def downstream_path(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Head-top ponds: residents or facilities within the first kilometre of the flow path."""
    params = rule.params
    ponds = ctx.frame(layer.id)
    grade = _grade(layer, ponds)
    if ponds.empty:
        ctx.shared[f"downstream_path:{layer.id}"] = pd.DataFrame(index=pd.Index([], name="id"))
        return RuleResult(no_findings(), {"head_top": pd.Series(dtype=object), "grade": grade})
    dem = _dem(ctx, rule)
    length = float(params["path_length_m"])
    half_width = float(params["corridor_half_width_m"])
    toes = _toes(ponds)
    corridors = [
        Corridor.along(path, half_width)
        for path in trace_paths(dem, shapely.get_coordinates(toes), length)
    ]
    hits = _hits(ctx, params, corridors)
    people = _people(ctx, corridors)
    min_people = float(params["min_population"])

    found = np.zeros(len(ponds), dtype=bool)
    found[hits["pond"].to_numpy(dtype=int)] = True
    crowded = people >= min_people  # NaN (no population raster) compares false
    found |= crowded
    complete = np.array([c.path.stop == "length" for c in corridors])
    verdict = np.array(
        [True if f else (False if c else None) for f, c in zip(found, complete, strict=True)],
        dtype=object,
    )
    head_top = pd.Series(verdict, index=ponds["id"].to_numpy(), dtype=object)
    ctx.shared[f"downstream_path:{layer.id}"] = pd.DataFrame(
        {
            "head_top": head_top.to_numpy(),
            "grade": grade.to_numpy(),
            "people_in_corridor": people,
            "path_length_m": [c.path.length_m for c in corridors],
            "stop": [c.path.stop for c in corridors],
            "corridor": [c.polygon_wgs84 for c in corridors],
        },
        index=pd.Index(ponds["id"].to_numpy(), name="id"),
    )
    evidence = [_path_evidence(c, half_width, people[i], toes[i]) for i, c in enumerate(corridors)]
    rows = _target_rows(hits, evidence)
    rows += _population_rows(corridors, people, crowded, min_people, evidence)
    rows += _undecided_rows(corridors, ~found & ~complete, length, evidence)
    findings = _findings(rule, layer, ponds, rows, params)
    return RuleResult(findings, {"head_top": head_top, "grade": grade})


@rule_kind("runout_corridor")
def runout_corridor(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """The empirical dam-failure runout as a corridor down the flow path, and the people in it."""
    params = rule.params
    ponds = ctx.frame(layer.id)
    capacity = pd.to_numeric(ponds.get("total_capacity_m3"), errors="coerce").to_numpy(float)
    height = pd.to_numeric(ponds.get("dam_height_m"), errors="coerce").to_numpy(float)
    sized = np.isfinite(capacity) & np.isfinite(height) & (capacity > 0) & (height > 0)
    ctx.shared[f"runout_corridor:{layer.id}"] = pd.DataFrame(index=pd.Index([], name="id"))
    if not sized.any():
        return RuleResult(no_findings())
    ponds = ponds[sized].reset_index(drop=True)
    dem = _dem(ctx, rule)
    population = ctx.raster_path("population")
    runout = runout_km(capacity[sized], height[sized], params) * 1_000.0
    low = runout * float(params["range_factor_low"])
    high = runout * float(params["range_factor_high"])
    half_width = float(params["corridor_half_width_m"])
    cap = float(params["max_trace_m"])
    toes = _toes(ponds)
    paths = trace_paths(dem, shapely.get_coordinates(toes), np.minimum(high, cap))
    reach = np.column_stack([low, runout, high])
    corridors = [
        [Corridor.along(path.cut(d), half_width) for d in reach[i]] for i, path in enumerate(paths)
    ]
    people = np.full(reach.shape, np.nan)
    if population is not None:
        areas = gpd.GeoSeries([c.polygon_wgs84 for row in corridors for c in row], crs=4326)
        people = population_in(population, areas).reshape(reach.shape)
    ctx.shared[f"runout_corridor:{layer.id}"] = pd.DataFrame(
        {
            "runout_m": runout,
            "runout_low_m": low,
            "runout_high_m": high,
            "traced_m": [p.length_m for p in paths],
            "people_low": people[:, 0],
            "people": people[:, 1],
            "people_high": people[:, 2],
        },
        index=pd.Index(ponds["id"].to_numpy(), name="id"),
    )
    if population is None:
        return RuleResult(no_findings())  # people are the measure: none without the raster
    classes, thresholds = _people_class(people[:, 1], params["people_classes"])
    evidence = [
        {
            **_runout_evidence(capacity[sized][i], height[sized][i], params),
            "runout_km": round(runout[i] / 1_000, 2),
            "runout_range_km": [round(low[i] / 1_000, 2), round(high[i] / 1_000, 2)],
            "traced_m": round(paths[i].length_m, 1),
            "trace_stop": _stop_label(paths[i], cap),
            "people_range": [round(people[i, 0], 1), round(people[i, 2], 1)],
            "corridor_half_width_m": half_width,
            "toe": _lonlat(toes[i]),
            "flats_crossed": paths[i].flats_crossed,
            "pits_filled": paths[i].pits_filled,
        }
        for i in range(len(ponds))
    ]
    findings = findings_frame(
        rule,
        layer,
        hazard_ids=ponds["id"].to_numpy(),
        hazard_names=_names(ponds),
        geometries=[row[1].geometry_wgs84(toes[i]) for i, row in enumerate(corridors)],
        values=np.round(people[:, 1], 1),
        thresholds=thresholds,
        unit="persons",
        risk_classes=classes,
        target_layer="population",
        target_ids=["runout_corridor"] * len(ponds),
        evidence=evidence,
    )
    return RuleResult(findings.sort_values("hazard_id", kind="stable").reset_index(drop=True))


def runout_km(
    capacity_m3: NDArray[np.float64], height_m: NDArray[np.float64], params: dict[str, Any]
) -> NDArray[np.float64]:
    """Concha Larrauri & Lall (2018) runout D_max (km) from total capacity (m³) and dam height (m).

    V_F = a·V_T^b (released volume, 10⁶ m³), H_f = H·(V_F/V_T)·V_F, D_max = c·H_f^d.
    """
    volume = np.asarray(capacity_m3, dtype=float) / 1e6
    released = float(params["a"]) * volume ** float(params["b"])
    factor = np.asarray(height_m, dtype=float) * (released / volume) * released
    return np.asarray(float(params["c"]) * factor ** float(params["d"]))


# -- the corridor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Corridor:
    """A path, as a line in its own metric zone, widened into a corridor with flat ends.

    ``path_length_at`` maps a distance along the metric line to the path length (metres on the
    DEM), so a target's position is given in the same metres the path was cut by.
    """

    path: FlowPath
    crs: pyproj.CRS
    line: shapely.LineString | None  # None when the path has no length
    polygon: shapely.Polygon
    line_m: NDArray[np.float64]  # metric distance along the line at each vertex
    start: shapely.Point  # the toe in EPSG:4326

    @classmethod
    def along(cls, path: FlowPath, half_width: float) -> Corridor:
        """The corridor ``half_width`` metres each side of ``path``."""
        lonlat = path.lonlat()
        crs = metric_crs(float(lonlat[0, 0]), float(lonlat[0, 1]))
        x, y = _transformer(WGS84, crs)(lonlat[:, 0], lonlat[:, 1])
        xy = np.column_stack([x, y])
        start = shapely.Point(lonlat[0])
        if path.steps == 0:
            return cls(path, crs, None, shapely.Polygon(), np.zeros(1), start)
        line = shapely.LineString(xy)
        polygon = shapely.buffer(line, half_width, cap_style="flat", quad_segs=16)
        line_m = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        return cls(path, crs, line, polygon, line_m, start)

    @cached_property
    def polygon_wgs84(self) -> shapely.Geometry:
        """The corridor in EPSG:4326."""
        return shapely.transform(self.polygon, _transformer(self.crs, WGS84), interleaved=False)

    def geometry_wgs84(self, toe: shapely.Geometry) -> shapely.Geometry:
        """The corridor in EPSG:4326, or the toe when the path has no length."""
        return toe if self.line is None else self.polygon_wgs84

    def to_metric(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Geometries in EPSG:4326 in the corridor's zone."""
        return np.asarray(
            shapely.transform(geoms, _transformer(WGS84, self.crs), interleaved=False)
        )

    def path_length_at(self, along: NDArray[np.float64]) -> NDArray[np.float64]:
        """Path length (DEM metres) at distances along the metric line."""
        return np.interp(along, self.line_m, self.path.run_m)

    def route_to(self, along: float, target_point: shapely.Point) -> shapely.Geometry:
        """The path from the toe to ``along`` metres, then across to the target (EPSG:4326)."""
        assert self.line is not None
        coords = np.vstack(
            [
                shapely.get_coordinates(ops.substring(self.line, 0.0, along)),
                shapely.get_coordinates(target_point),
            ]
        )
        keep = np.r_[True, np.hypot(*np.diff(coords, axis=0).T) > 1e-6]
        coords = coords[keep]
        geometry = shapely.LineString(coords) if len(coords) > 1 else shapely.Point(coords[0])
        return shapely.transform(geometry, _transformer(self.crs, WGS84), interleaved=False)


def _hits(ctx: RuleContext, params: dict[str, Any], corridors: list[Corridor]) -> pd.DataFrame:
    """Every target touching a corridor: pond index, target, path length to it, its route."""
    facility_categories = set(params.get("facility_target_categories", []))
    layers = [(lid, "resident") for lid in params.get("resident_layers", [])]
    layers += [(lid, "facility") for lid in params.get("facility_layers", [])]
    rows: list[dict[str, Any]] = []
    for layer_id, role in layers:
        targets = ctx.frame(layer_id)
        if targets.empty:
            continue
        geoms = np.asarray(targets.geometry.values, dtype=object)
        roles = np.full(len(targets), role, dtype=object)
        if "category" in targets:
            roles[targets["category"].isin(facility_categories).to_numpy()] = "facility"
        names = _names(targets)
        tree = shapely.STRtree(geoms)
        for pond, corridor in enumerate(corridors):
            if corridor.line is None:
                continue
            west, south, east, north = shapely.bounds(corridor.polygon_wgs84)
            box = shapely.box(west - _PAD_DEG, south - _PAD_DEG, east + _PAD_DEG, north + _PAD_DEG)
            candidates = tree.query(box)
            if not len(candidates):
                continue
            metric = corridor.to_metric(geoms[candidates])
            inside = shapely.dwithin(metric, corridor.polygon, _TOUCH_M)
            along, offsets, ends = _positions(corridor, metric[inside])
            lengths = corridor.path_length_at(along)
            for k, index in enumerate(candidates[inside]):
                rows.append(
                    {
                        "pond": pond,
                        "target_layer": layer_id,
                        "target_id": targets["id"].iat[index],
                        "target_name": names[index],
                        "role": roles[index],
                        "value": float(lengths[k]),
                        "offset_m": float(offsets[k]),
                        "geometry": corridor.route_to(float(along[k]), ends[k]),
                    }
                )
    columns = ["pond", "target_layer", "target_id", "target_name", "role", "value", "offset_m"]
    return pd.DataFrame(rows, columns=[*columns, "geometry"])


def _positions(
    corridor: Corridor, targets: NDArray[np.object_]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.object_]]:
    """Where each target first meets the corridor: distance along the line, offset, the point.

    The part of the target inside the (slightly widened) corridor is sampled every few metres;
    the sample nearest the toe along the line gives the target's position, and the point of
    that part nearest to the path there is where the finding's line ends.
    """
    assert corridor.line is not None
    inside = shapely.intersection(targets, shapely.buffer(corridor.polygon, _TOUCH_M))
    inside = np.where(shapely.is_empty(inside), targets, inside)  # touching within rounding
    coords, owner = shapely.get_coordinates(
        shapely.segmentize(inside, _SEGMENT_M), return_index=True
    )
    along = np.full(len(targets), np.inf)
    np.minimum.at(along, owner, shapely.line_locate_point(corridor.line, shapely.points(coords)))
    on_path = shapely.line_interpolate_point(corridor.line, along)
    ends = shapely.get_point(shapely.shortest_line(on_path, inside), 1)
    offsets = shapely.distance(targets, corridor.line)
    return along, np.round(offsets, 1), ends


def _people(ctx: RuleContext, corridors: list[Corridor]) -> NDArray[np.float64]:
    """People in each corridor from the population raster; NaN without one."""
    raster = ctx.raster_path("population")
    if raster is None:
        return np.full(len(corridors), np.nan)
    return population_in(raster, gpd.GeoSeries([c.polygon_wgs84 for c in corridors], crs=4326))


# -- findings --------------------------------------------------------------------------------


def _path_evidence(
    corridor: Corridor, half_width: float, people: float, toe: shapely.Point
) -> dict[str, Any]:
    path = corridor.path
    return {
        "path_length_m": round(path.length_m, 1),
        "steps": path.steps,
        "flats_crossed": path.flats_crossed,
        "pits_filled": path.pits_filled,
        "path_stop": path.stop,
        "nodata_reached": path.stop == "nodata",
        "dem_edge_reached": path.stop == "edge",
        "people_in_corridor": None if np.isnan(people) else round(float(people), 1),
        "corridor_half_width_m": half_width,
        "corridor_crs": corridor.crs.to_string(),
        "toe": _lonlat(toe),
    }


def _target_rows(hits: pd.DataFrame, evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "pond": int(hit["pond"]),
            "target_layer": hit["target_layer"],
            "target_id": hit["target_id"],
            "target_name": hit["target_name"],
            "value": round(float(hit["value"]), 1),
            "kind": "target",
            "geometry": hit["geometry"],
            "evidence": {
                **evidence[int(hit["pond"])],
                "target_role": hit["role"],
                "offset_from_path_m": float(hit["offset_m"]),
            },
        }
        for hit in hits.to_dict("records")
    ]


def _population_rows(
    corridors: list[Corridor],
    people: NDArray[np.float64],
    crowded: NDArray[np.bool_],
    min_people: float,
    evidence: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return [
        {
            "pond": i,
            "target_layer": "population",
            "target_id": "corridor",
            "target_name": None,
            "value": round(float(people[i]), 1),
            "threshold": min_people,
            "unit": "persons",
            "kind": "population",
            "geometry": corridors[i].polygon_wgs84,
            "evidence": evidence[i],
        }
        for i in np.flatnonzero(crowded)
    ]


def _undecided_rows(
    corridors: list[Corridor],
    undecided: NDArray[np.bool_],
    length: float,
    evidence: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return [
        {
            "pond": i,
            "target_layer": "dem",
            "target_id": f"path_{corridors[i].path.stop}",
            "target_name": None,
            "value": round(corridors[i].path.length_m, 1),
            "kind": "undecided",
            "geometry": corridors[i].geometry_wgs84(corridors[i].start),
            "evidence": {
                **evidence[i],
                "note": f"path stopped before {length:g} m: verify on site",
            },
        }
        for i in np.flatnonzero(undecided)
    ]


def _findings(
    rule: Rule,
    layer: Layer,
    ponds: gpd.GeoDataFrame,
    rows: list[dict[str, Any]],
    params: dict[str, Any],
) -> gpd.GeoDataFrame:
    if not rows:
        return no_findings()
    table = pd.DataFrame(rows)
    ponds_at = table["pond"].to_numpy(dtype=int)
    kind = table["kind"].to_numpy()
    classes = np.where(kind == "undecided", params["undecided_class"], params["risk_class"])
    threshold = table.get("threshold", pd.Series(np.nan, index=table.index)).to_numpy(float)
    threshold = np.where(np.isnan(threshold), float(params["path_length_m"]), threshold)
    unit = table.get("unit", pd.Series(None, index=table.index, dtype=object)).fillna("m")
    frame = findings_frame(
        rule,
        layer,
        hazard_ids=ponds["id"].to_numpy()[ponds_at],
        hazard_names=_names(ponds)[ponds_at],
        geometries=table["geometry"].to_numpy(),
        values=table["value"].to_numpy(float),
        thresholds=threshold,
        unit="m",
        risk_classes=classes,
        target_layer=None,
        target_ids=table["target_id"].to_numpy(),
        target_names=table["target_name"].to_numpy(),
        evidence=list(table["evidence"]),
    )
    frame["target_layer"] = table["target_layer"].to_numpy()
    frame["unit"] = unit.to_numpy()
    order = frame.sort_values(["hazard_id", "target_layer", "target_id"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _people_class(
    people: NDArray[np.float64], bounds: dict[str, float]
) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
    """Class of each count from ``{class: lower bound}``: the highest bound reached; else blue."""
    classes = np.full(len(people), "blue", dtype=object)
    thresholds = np.zeros(len(people))
    for name, lower in sorted(bounds.items(), key=lambda item: float(item[1])):
        reached = people >= float(lower)
        classes[reached] = name
        thresholds[reached] = float(lower)
    return classes, thresholds


def _runout_evidence(capacity: float, height: float, params: dict[str, Any]) -> dict[str, Any]:
    volume = capacity / 1e6
    released = float(params["a"]) * volume ** float(params["b"])
    return {
        "capacity_1e6m3": round(volume, 3),
        "dam_height_m": height,
        "released_1e6m3": round(released, 3),
        "h_f": round(height * (released / volume) * released, 3),
    }


def _stop_label(path: FlowPath, cap: float) -> str:
    if path.stop == "length" and path.length_m >= cap:
        return "max_trace_m"
    return path.stop


# -- inputs ----------------------------------------------------------------------------------


def _dem(ctx: RuleContext, rule: Rule) -> Path:
    dem = ctx.raster_path("dem")
    if dem is None:
        raise ValueError(f"rule {rule.id} traces the flow path on the DEM: load the 'dem' raster")
    return dem


def _toes(ponds: gpd.GeoDataFrame) -> NDArray[np.object_]:
    """Where each pond's path starts: its point, the toe of the starter dam."""
    return np.asarray(shapely.centroid(np.asarray(ponds.geometry.values, dtype=object)))


def _grade(layer: Layer, ponds: gpd.GeoDataFrame) -> pd.Series:
    """Each pond's grade: as given, else derived from capacity and dam height."""
    if ponds.empty:
        return pd.Series([], dtype="Int64")
    spec = next(f for f in layer.fields if f.name == "grade")
    params = layer.derivations[spec.derive] if spec.derive else None
    given = pd.to_numeric(ponds["grade"], errors="coerce").astype("Int64")
    if params is not None:
        given = given.fillna(DERIVATIONS[params["kind"]](ponds, params))
    return pd.Series(given.to_numpy(), index=ponds["id"].to_numpy(), dtype="Int64")


def _names(frame: gpd.GeoDataFrame) -> NDArray[np.object_]:
    for column in _NAME_COLUMNS:
        if column in frame:
            return np.asarray(frame[column].astype(object).where(frame[column].notna(), None))
    return np.full(len(frame), None, dtype=object)


def _lonlat(point: shapely.Geometry) -> list[float]:
    return [round(float(shapely.get_x(point)), 6), round(float(shapely.get_y(point)), 6)]
