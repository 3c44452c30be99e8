"""Rule kinds for fire-access lifelines (plan item (六), GB 50016-2014 7.1, GB 51080-2015 4.1.3).

- ``lane_standard``: a lane narrower than ``min_width_m`` or lower than ``min_clear_height_m``
  (strictly below: exactly 4.0 m passes), or obstructed. One finding per lane per defect, the
  defect's field as the target label (``width_m``, ``clear_height_m``, ``obstructed``). Classes
  (``params.classes`` may override): obstructed → red (no appliance gets through today); too
  narrow or too low → orange (passable only by smaller appliances); a width or height never
  measured → blue "not surveyed" (value empty, the check is owed). An unknown ``obstructed``
  is not a finding: obstruction is recorded when seen.
- ``lane_coverage``: high-rise buildings (``height_m ≥ high_rise_min_height_m``, or
  ``floors ≥ high_rise_min_floors`` where the height is missing) and crowded places
  (protection targets in ``crowded_categories``) with no lane of ``lane_layers`` within
  ``max_distance_m`` (a lane at exactly that distance counts). The building or place is the
  finding's hazard (its deficiency), the nearest lane its target; value = metres to that lane
  (empty when there is no lane at all). Red for a building of ``red_min_height_m`` or more or a
  place of ``red_min_occupants`` or more, orange otherwise.
- ``station_isochrone``: fire-station reach over the road network (``geo_service.risk.network``)
  of ``road_layer`` (speed by ``road_speeds_kmh[road_class]``, capped at the design speed; a
  ``structure`` in ``grade_separated_structures`` crosses other roads without meeting them) and
  the unobstructed fire lanes that touch it (``lane_speed_kmh``; lanes touching no road go).
  Response = ``turnout_minutes`` + off-network access from the station to its nearest road at
  ``access_speed_kmh`` + the fastest drive + access from the road to the target. A target whose
  response exceeds ``response_minutes`` is a finding: orange up to ``red_response_minutes``, red
  beyond or when no station reaches it (a road piece not joined to any station's network: value
  empty). The hazard is the station that gets there first (the nearest in a straight line when
  none does). The reached network, buffered by ``isochrone_buffer_m``, is left as each
  station's isochrone polygon in ``ctx.shared["station_isochrone:<layer>"]``.

Times and distances are compared at 0.01 (minutes, metres) so a value that is the threshold on
paper is not a finding by a rounding error.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.catalogue import Layer, Rule
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.network import (
    Arrival,
    Attachment,
    Reach,
    RoadNetwork,
    arrive,
    attach,
    build_network,
    geodesic_m,
    keep_pieces_with,
    reach_from,
    reachable_pieces,
    to_wgs84,
)
from geo_service.risk.registry import rule_kind

_LANE_CLASSES = {"obstructed": "red", "short": "orange", "not_surveyed": "blue"}
# (field, its minimum's param, what it is called in the list)
_LANE_MEASURES = (
    ("width_m", "min_width_m", "净宽"),
    ("clear_height_m", "min_clear_height_m", "净空高度"),
)
_RESOLUTION = 2  # decimals kept of minutes and metres before comparing with a threshold


# -- lane_standard ---------------------------------------------------------------------------


@rule_kind("lane_standard")
def lane_standard(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Lanes below the clear width or height, or obstructed: one finding per defect."""
    lanes = ctx.frame(layer.id)
    classes = {**_LANE_CLASSES, **rule.params.get("classes", {})}
    parts = []
    for field, param, label in _LANE_MEASURES:
        minimum = float(rule.params[param])
        measured = pd.to_numeric(lanes[field], errors="coerce").astype(float).to_numpy()
        missing = np.isnan(measured)
        short = ~missing & (measured < minimum)
        parts.append(
            _lane_findings(
                rule,
                layer,
                lanes,
                short,
                field,
                f"消防车道{label}不足",
                measured,
                minimum,
                "m",
                classes["short"],
                label,
            )
        )
        parts.append(
            _lane_findings(
                rule,
                layer,
                lanes,
                missing,
                field,
                f"消防车道{label}未测",
                measured,
                minimum,
                "m",
                classes["not_surveyed"],
                f"{label}（未测）",
            )
        )
    blocked = lanes["obstructed"].fillna(False).astype(bool).to_numpy()
    parts.append(
        _lane_findings(
            rule, layer, lanes, blocked, "obstructed", "消防车道被占用堵塞",
            np.ones(len(lanes)), 0.0, "flag", classes["obstructed"], "占用堵塞",
        )
    )  # fmt: skip
    return RuleResult(_sorted(parts))


def _lane_findings(
    rule: Rule,
    layer: Layer,
    lanes: gpd.GeoDataFrame,
    hit: np.ndarray,
    defect: str,
    title: str,
    measured: np.ndarray,
    minimum: float,
    unit: str,
    risk_class: str,
    label: str,
) -> gpd.GeoDataFrame:
    rows = lanes[hit]
    values = measured[hit]
    inspected = rows["last_inspected"]
    evidence = [
        {
            "defect": defect,
            "measured": None if np.isnan(value) else float(value),
            "threshold": minimum,
            "unit": unit,
            "serves_building": building,
            "last_inspected": None if pd.isna(when) else when.date().isoformat(),
        }
        for value, building, when in zip(values, rows["serves_building"], inspected, strict=True)
    ]
    return findings_frame(
        rule,
        layer,
        hazard_ids=rows["id"].to_numpy(),
        hazard_names=rows["name"].to_numpy(),
        geometries=rows.geometry.to_numpy(),
        values=values,
        thresholds=minimum,
        unit=unit,
        risk_classes=risk_class,
        target_ids=np.full(len(rows), defect, dtype=object),
        target_names=np.full(len(rows), label, dtype=object),
        evidence=evidence,
        title=title,
    )


# -- lane_coverage ---------------------------------------------------------------------------


@rule_kind("lane_coverage")
def lane_coverage(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """High-rises and crowded places with no fire lane within ``max_distance_m``."""
    p = rule.params
    max_m = float(p["max_distance_m"])
    lane_layers = list(p.get("lane_layers", [layer.id]))
    lanes = pd.concat(
        [ctx.frame(name)[["id", "geometry"]].assign(layer=name) for name in lane_layers],
        ignore_index=True,
    )
    lanes = lanes[~(lanes.geometry.isna() | lanes.geometry.is_empty)].reset_index(drop=True)
    buildings = high_rises(ctx.frame("buildings"), p)
    targets = ctx.frame("protection_targets")
    crowded = targets[targets["category"].isin(list(p["crowded_categories"]))]
    parts = []
    for source, frame, why in (("buildings", buildings, "high_rise"), ("protection_targets",
                               crowded, "crowded_place")):  # fmt: skip
        frame = frame[~(frame.geometry.isna() | frame.geometry.is_empty)]
        if frame.empty:
            continue
        lane_index, dist = _nearest_lane(ctx, frame.geometry.to_numpy(), lanes)
        far = ~(dist <= max_m)  # no lane at all (nan) is far too
        if not far.any():
            continue
        rows, lane_index, dist = frame[far], lane_index[far], dist[far]
        if why == "high_rise":
            height = pd.to_numeric(rows["height_m"], errors="coerce").astype(float).to_numpy()
            red = height >= float(p["red_min_height_m"])
        else:
            occupants = pd.to_numeric(rows["occupants"], errors="coerce").astype(float)
            red = occupants.to_numpy() >= float(p["red_min_occupants"])
        lane_id, lane_layer = _pick(lanes["id"], lane_index), _pick(lanes["layer"], lane_index)
        evidence = [
            {
                "why": why,
                **_describe(row, why),
                "nearest_lane": lid,
                "nearest_lane_layer": llayer,
                "distance_m": None if np.isnan(d) else float(d),
                "max_distance_m": max_m,
            }
            for row, lid, llayer, d in zip(
                rows.to_dict("records"), lane_id, lane_layer, dist, strict=True
            )
        ]
        found = findings_frame(
            rule,
            ctx.catalogue[source],
            hazard_ids=rows["id"].to_numpy(),
            hazard_names=rows["name"].to_numpy(),
            geometries=rows.geometry.to_numpy(),
            values=dist,
            thresholds=max_m,
            unit="m",
            risk_classes=np.where(red, "red", "orange"),
            target_ids=lane_id,
            evidence=evidence,
        )
        found["target_layer"] = lane_layer
        parts.append(found)
    return RuleResult(_sorted(parts))


def high_rises(buildings: gpd.GeoDataFrame, params: dict[str, Any]) -> gpd.GeoDataFrame:
    """High-rise buildings.

    ``high_rise_min_height_m`` or taller, or, where the height is unknown, of
    ``high_rise_min_floors`` or more storeys.
    """
    height = pd.to_numeric(buildings["height_m"], errors="coerce").astype(float)
    floors = pd.to_numeric(buildings["floors"], errors="coerce").astype(float)
    tall = height >= float(params["high_rise_min_height_m"])
    if "high_rise_min_floors" in params:
        tall |= height.isna() & (floors >= float(params["high_rise_min_floors"]))
    return buildings[tall.to_numpy()]


def _nearest_lane(
    ctx: RuleContext, geoms: np.ndarray, lanes: gpd.GeoDataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each geometry's nearest lane (-1: no lanes) and the distance in metres.

    The nearest lane and the nearest points are found in the run's metric CRS; the distance
    between those points is measured on the spheroid (right for data over two zones).
    """
    n = len(geoms)
    if lanes.empty:
        return np.full(n, -1, dtype=np.intp), np.full(n, np.nan)
    crs = ctx.metric_crs
    lane_metric = lanes.geometry.to_crs(crs).to_numpy()
    metric = gpd.GeoSeries(geoms, crs=4326).to_crs(crs).to_numpy()
    which, nearest = shapely.STRtree(lane_metric).query_nearest(metric, all_matches=False)
    index = np.full(n, -1, dtype=np.intp)
    index[which] = nearest
    ends = shapely.get_coordinates(shapely.shortest_line(metric[which], lane_metric[nearest]))
    dist = np.full(n, np.nan)
    dist[which] = geodesic_m(crs, ends[0::2], ends[1::2])
    return index, np.round(dist, _RESOLUTION)


def _describe(row: dict[str, Any], why: str) -> dict[str, Any]:
    if why == "high_rise":
        return {"height_m": _number(row.get("height_m")), "floors": _number(row.get("floors"))}
    return {"category": row.get("category"), "occupants": _number(row.get("occupants"))}


# -- station_isochrone -----------------------------------------------------------------------


@rule_kind("station_isochrone")
def station_isochrone(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Targets no fire station reaches within ``response_minutes`` of dispatch."""
    p = rule.params
    stations = _present(ctx.frame(p.get("station_layer", "fire_stations")))
    targets = _reach_targets(ctx, p)
    network, line_names = _fire_network(ctx, layer, p)
    if stations.empty or targets.empty or network.n_edges == 0:
        return RuleResult(no_findings())  # nothing to measure from, to, or on

    access_kmh = float(p["access_speed_kmh"])
    turnout, limit = float(p["turnout_minutes"]), float(p["response_minutes"])
    at_stations = attach(network, stations.geometry.to_numpy())
    reach = reach_from(network, at_stations, access_kmh)
    at_targets = attach(network, targets.geometry.to_numpy())
    arrival = arrive(network, reach, at_targets, access_kmh)
    response = np.round(turnout + arrival.minutes, _RESOLUTION)
    ctx.shared[f"{rule.kind}:{layer.id}"] = {
        "isochrones": _isochrones(network, reach, stations, limit - turnout, p),
        "response_minutes": pd.Series(response, index=targets["key"].to_numpy()),
    }

    late = ~(response <= limit)
    if not late.any():
        return RuleResult(no_findings())
    rows = targets[late]
    minutes, source = response[late], arrival.source[late]
    reached = source >= 0
    straight = _nearest_station(ctx, rows.geometry.to_numpy(), stations)
    station = np.where(reached, source, straight)
    red = ~reached | (minutes > float(p["red_response_minutes"]))
    road = np.where(at_targets.edge >= 0, network.line[at_targets.edge], -1)[late]
    evidence = _reach_evidence(
        rows, stations, station, reached, arrival, at_targets, reach, late, p
    )
    for entry, line in zip(evidence, road, strict=True):
        entry["nearest_road"] = None if line < 0 else str(line_names[line])
    parts = []
    for target_layer in sorted(set(rows["layer"])):
        mine = (rows["layer"] == target_layer).to_numpy()
        parts.append(
            findings_frame(
                rule,
                ctx.catalogue[p.get("station_layer", "fire_stations")],
                hazard_ids=stations["id"].to_numpy()[station[mine]],
                hazard_names=stations["name"].to_numpy()[station[mine]],
                geometries=rows.geometry.to_numpy()[mine],
                values=np.where(reached[mine], minutes[mine], np.nan),
                thresholds=limit,
                unit="min",
                risk_classes=np.where(red[mine], "red", "orange"),
                target_layer=target_layer,
                target_ids=rows["id"].to_numpy()[mine],
                target_names=rows["name"].to_numpy()[mine],
                evidence=[e for e, m in zip(evidence, mine, strict=True) if m],
            )
        )
    return RuleResult(_sorted(parts))


def _fire_network(
    ctx: RuleContext, layer: Layer, p: dict[str, Any]
) -> tuple[RoadNetwork, np.ndarray]:
    """Roads (speed by class, capped at the design speed) and unobstructed lanes joined to them.

    Also the ``layer/id`` of each input line, by the network's ``line`` index.
    """
    road_layer = p.get("road_layer", "road_sections")
    roads = _present(ctx.frame(road_layer))
    speeds = dict(p["road_speeds_kmh"])
    default = float(speeds.get("default", 30))
    road_kmh = roads["road_class"].map(lambda c: float(speeds.get(c, default))).astype(float)
    if p.get("cap_at_design_speed", True):
        design = pd.to_numeric(roads["design_speed_kmh"], errors="coerce").astype(float)
        road_kmh = np.fmin(road_kmh.to_numpy(), design.to_numpy())
    geoms = [roads.geometry.to_numpy()]
    kmh = [np.asarray(road_kmh, dtype=float)]
    separate = list(p.get("grade_separated_structures", []))
    structure = roads["structure"] if "structure" in roads else pd.Series(None, index=roads.index)
    separated = [structure.isin(separate).to_numpy(dtype=bool)]
    names = [(road_layer + "/" + roads["id"]).to_numpy()]
    if p.get("include_lanes", True):
        lanes = _present(ctx.frame(layer.id))
        lanes = lanes[~lanes["obstructed"].fillna(False).astype(bool).to_numpy()]
        geoms.append(lanes.geometry.to_numpy())
        kmh.append(np.full(len(lanes), float(p["lane_speed_kmh"])))
        separated.append(np.zeros(len(lanes), dtype=bool))
        names.append((layer.id + "/" + lanes["id"]).to_numpy())
    network = build_network(
        np.concatenate(geoms),
        np.concatenate(kmh),
        ctx.metric_crs,
        grid_m=float(p.get("grid_m", 1.0)),
        junction_tolerance_m=float(p.get("junction_tolerance_m", 0.0)),
        node_crossings=bool(p.get("node_crossings", True)),
        grade_separated=np.concatenate(separated),
    )
    # lanes that touch no road add no route
    return keep_pieces_with(network, network.line < len(roads)), np.concatenate(names)


def _reach_targets(ctx: RuleContext, p: dict[str, Any]) -> gpd.GeoDataFrame:
    """The places to reach: protection targets of the listed categories, and high-rises."""
    layer_id = p.get("target_layer", "protection_targets")
    targets = ctx.frame(layer_id)
    if "target_categories" in p:
        targets = targets[targets["category"].isin(list(p["target_categories"]))]
    frames = [targets[["id", "name", "geometry"]].assign(layer=layer_id)]
    if p.get("include_high_rises", False):
        tall = high_rises(ctx.frame("buildings"), p)
        frames.append(tall[["id", "name", "geometry"]].assign(layer="buildings"))
    both = _present(gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326))
    both = both.sort_values(["layer", "id"], kind="stable").reset_index(drop=True)
    return both.assign(key=both["layer"] + "/" + both["id"])


def _nearest_station(ctx: RuleContext, geoms: np.ndarray, stations: gpd.GeoDataFrame) -> np.ndarray:
    """Each geometry's nearest station in a straight line."""
    crs = ctx.metric_crs
    tree = shapely.STRtree(stations.geometry.to_crs(crs).to_numpy())
    metric = gpd.GeoSeries(geoms, crs=4326).to_crs(crs).to_numpy()
    which, nearest = tree.query_nearest(metric, all_matches=False)
    out = np.zeros(len(geoms), dtype=np.intp)
    out[which] = nearest
    return out


def _reach_evidence(
    rows: gpd.GeoDataFrame,
    stations: gpd.GeoDataFrame,
    station: np.ndarray,
    reached: np.ndarray,
    arrival: Arrival,
    at_targets: Attachment,
    reach: Reach,
    late: np.ndarray,
    p: dict[str, Any],
) -> list[dict[str, Any]]:
    """What each late target's time is made of."""
    access_kmh = float(p["access_speed_kmh"])
    turnout = float(p["turnout_minutes"])
    to_min = 60.0 / (access_kmh * 1000.0)
    target_access_m = at_targets.access_m[late]
    station_access_m = reach.sources.access_m[station]
    network_m = arrival.metres[late]
    travel = arrival.minutes[late]
    evidence = []
    for k in range(len(rows)):
        s = int(station[k])
        if not reached[k]:
            evidence.append(
                {
                    "reachable": False,
                    "station": stations["id"].iat[s],
                    "why": "the target's nearest road is not joined to any station's roads",
                    "target_access_m": _round(target_access_m[k]),
                }
            )
            continue
        off = (station_access_m[k] + target_access_m[k]) * to_min
        evidence.append(
            {
                "reachable": True,
                "station": stations["id"].iat[s],
                "response_min": _round(turnout + travel[k]),
                "turnout_min": turnout,
                "drive_min": _round(travel[k] - off),
                "network_m": _round(network_m[k]),
                "station_access_m": _round(station_access_m[k]),
                "target_access_m": _round(target_access_m[k]),
                "access_speed_kmh": access_kmh,
            }
        )
    return evidence


def _isochrones(
    network: RoadNetwork,
    reach: Reach,
    stations: gpd.GeoDataFrame,
    budget_minutes: float,
    p: dict[str, Any],
) -> gpd.GeoDataFrame:
    """Each station's reached roads within ``budget_minutes`` of driving, as a polygon."""
    pieces, source = reachable_pieces(network, reach, budget_minutes)
    width = float(p.get("isochrone_buffer_m", 60.0))
    polygons = []
    for s in range(len(stations)):
        mine = pieces[source == s]
        shape = shapely.union_all(shapely.buffer(mine, width)) if len(mine) else None
        polygons.append(shape)
    geoms = np.array(
        [None if g is None else to_wgs84(np.array([g]), network.crs)[0] for g in polygons],
        dtype=object,
    )
    return gpd.GeoDataFrame(
        {
            "station_id": stations["id"].to_numpy(),
            "station_name": stations["name"].to_numpy(),
            "drive_minutes": budget_minutes,
        },
        geometry=gpd.GeoSeries(geoms, crs=4326),
        crs=4326,
    )


# -- shared ----------------------------------------------------------------------------------


def _present(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows with a geometry."""
    return frame[~(frame.geometry.isna() | frame.geometry.is_empty).to_numpy()]


def _sorted(parts: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    parts = [f for f in parts if len(f)]
    if not parts:
        return no_findings()
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4326)
    order = frame[["hazard_id", "target_id"]].fillna("").astype(str)
    index = order.sort_values(["hazard_id", "target_id"], kind="stable").index
    return frame.loc[index].reset_index(drop=True)


def _pick(values: pd.Series, index: np.ndarray) -> np.ndarray:
    """``values[index]`` as objects, None where the index is -1."""
    out = np.full(len(index), None, dtype=object)
    found = index >= 0
    out[found] = values.to_numpy(dtype=object)[index[found]]
    return out


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), _RESOLUTION)
