"""Rule kinds for railway lines (plan item (八), 铁路安全管理条例 = State Council Order 639, 2014).

- ``rail_protection_zone`` (Art. 27): each section's line safety protection zone, from the rail
  type × area class table, a gazetted width or a gazetted polygon; buildings, protection targets
  and hazard sites inside it.
- ``rail_mining_zone`` (Art. 34): open-pit mines, quarries and blasting within 1000 m of the line
  or of a tunnel's centreline need approval.
- ``rail_hazmat_screen``: hazardous sites within the repealed 2004 rule's 200 m (legacy screen).
- ``rail_parallel_road``: roads running alongside the line (公铁并行).
- ``rail_road_crossing``: road bridges over the line (公跨铁) and level crossings.

Where distances start. The regulation measures outward from the embankment toe, the cutting top
or the bridge's outer edge. The layer holds centrelines, so that edge is approximated as the
centreline plus ``edge_offset_m`` on each side (5 m: half a single-track formation and a low
embankment's slope); a tunnel has no toe and is measured from its centreline. Where the zone has
been surveyed and gazetted, a polygon in the optional layer ``rail_protection_zones`` (see
``layers/optional/``) replaces the approximation for its section.

How pairs are measured (in each target's metric zone, brought to the ground, inclusive to a
millimetre): ``rail_geometry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.catalogue import Layer, Rule
from geo_service.metric import buffer_m, distance_m
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.registry import rule_kind
from geo_service.risk.rules.rail_geometry import (
    TOLERANCE_M,
    crossings,
    line_keys,
    no_pairs,
    pairs_within,
    parallel_runs,
)

_CROSSING_TITLES = {
    "road_over_rail": "公跨铁立交（道路桥梁跨越铁路）",
    "level_crossing": "道路与铁路平交道口",
    "unknown": "道路与铁路交叉（立交或平交未明，需核实道路结构）",
}


@rule_kind("rail_protection_zone")
def protection_zone(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Buildings, protection targets and hazard sites inside a section's protection zone (Art. 27).

    Zone width per section: its ``gazetted_zone_width_m`` where set, else
    ``widths_m[rail_type][area_class]`` (a missing area class reads as ``missing_area_class``,
    ``other`` = the widest; an unknown rail type takes the widest of the types; both said in the
    evidence), measured from the edge (centreline + ``edge_offset_m``). A section with polygons
    in ``gazetted_layer`` uses those instead. Sections whose structure is in
    ``exclude_structures`` (tunnels) have no surface zone unless one is gazetted.

    One finding per (line, feature), on the section the feature comes closest to: value = its
    distance from the edge (0 when it stands on the formation), threshold = the zone width, class
    ``risk_classes[<feature's layer>]`` (red for hazard sites, orange for buildings and
    protection targets), geometry = the part of the feature inside the zone. The zone polygons
    go to ``ctx.shared["rail_protection_zone:<layer>"]``.
    """
    params = rule.params
    rails = ctx.frame(layer.id)
    offset = float(params["edge_offset_m"])
    zones = _zone_widths(rails, params)
    gazetted = _gazetted_polygons(ctx, rails, params.get("gazetted_layer"))
    zones.loc[gazetted.index, "source"] = "gazetted polygon"
    zones.loc[gazetted.index, "width_m"] = gazetted["width_m"].fillna(
        zones.loc[gazetted.index, "width_m"]
    )
    zones["gazette"] = gazetted["gazette"].reindex(zones.index)
    # a gazetted polygon wins even over a tunnel
    excluded = rails["structure"].isin(params.get("exclude_structures", [])).to_numpy()
    zones = zones[(~excluded | rails.index.isin(gazetted.index)) & ~rails.is_empty.to_numpy()]
    ctx.shared[f"{rule.kind}:{layer.id}"] = _zone_polygons(rails, zones, gazetted, offset)

    classes = params["risk_classes"]
    frames = []
    for target_layer in params["encroaching_layers"]:
        if target_layer not in classes:
            raise ValueError(f"rule {rule.id}: no risk class for encroaching layer {target_layer}")
        targets = ctx.frame(target_layer)
        found = _encroachments(rails, zones, gazetted, targets, offset)
        if found.empty:
            continue
        found = _nearest_per_line(found, rails, "centreline_m")
        zone = zones.loc[found["rail"]]
        rail = found["rail"].to_numpy()
        evidence = _records(
            distance_from_centreline_m=found["centreline_m"].round(3),
            distance_from_edge_m=found["value"].round(3),
            edge_offset_m=offset,
            edge=np.where(
                zone["source"] == "gazetted polygon",
                "gazetted polygon",
                "centreline + edge_offset_m (approximation: no toe line loaded)",
            ),
            zone_width_m=zone["width_m"],
            zone_source=zone["source"],
            gazette=zone["gazette"],
            rail_type=rails["rail_type"].to_numpy()[rail],
            structure=rails["structure"].to_numpy()[rail],
            area_class=rails["area_class"].to_numpy()[rail],
            area_class_used=zone["area_class_used"],
            assumed=zone["assumed"].replace("", None),
        )
        frames.append(
            _findings(
                rule,
                layer,
                rails,
                found,
                targets,
                target_layer,
                thresholds=zone["width_m"].to_numpy(dtype=float),
                unit="m",
                risk_classes=classes[target_layer],
                evidence=evidence,
            )
        )
    return RuleResult(_sorted(frames))


@rule_kind("rail_mining_zone")
def mining_zone(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Open-pit mines, quarries and blasting within ``distance_m`` of the line (Art. 34).

    Measured from the edge (centreline + ``edge_offset_m``), or from a tunnel's centreline.
    A mine counts when its ``mine_type`` is one of ``mine_types`` or it blasts; one whose type
    and blasting are both unknown counts too (it needs checking). Approval is required, it is not
    a ban: class ``risk_classes.blasting`` (orange) for a blasting mine, else
    ``risk_classes.other`` (yellow). One finding per (line, mine) on the nearest section: value =
    the distance, geometry = the shortest line from the railway to the mine.
    """
    params = rule.params
    rails, mines = ctx.frame(layer.id), ctx.frame(params["layer"])
    if rails.empty or mines.empty:
        return RuleResult(no_findings())
    mine_type = _column(mines, "mine_type")
    blasting = _column(mines, "blasting").astype(object)
    blasts = blasting.map(lambda b: b is True or b is np.True_).to_numpy(dtype=bool)
    counts = (
        mine_type.isin(params["mine_types"]).to_numpy(dtype=bool)
        | blasts
        | (mine_type.isna() & blasting.isna()).to_numpy(dtype=bool)
    )
    offset = np.where(rails["structure"].eq("tunnel"), 0.0, float(params["edge_offset_m"]))
    limit = float(params["distance_m"])
    found = pairs_within(rails.geometry, mines.geometry[counts], offset + limit, "shortest_line")
    if found.empty:
        return RuleResult(no_findings())
    found["value"] = np.maximum(found["distance"] - offset[found["rail"]], 0.0)
    found = _nearest_per_line(found, rails, "value")
    offsets, rail, mine = offset[found["rail"]], found["rail"], found["target"]
    evidence = _records(
        approval_required=True,
        measured_from=np.where(offsets == 0, "tunnel centreline", "edge (centreline + offset)"),
        edge_offset_m=offsets,
        mine_type=mine_type.to_numpy()[mine],
        blasting=blasting.to_numpy()[mine],
        structure=rails["structure"].to_numpy()[rail],
    )
    classes = params["risk_classes"]
    frame = _findings(
        rule,
        layer,
        rails,
        found,
        mines,
        params["layer"],
        title=f"{rule.title.zh}（需经批准）",
        thresholds=limit,
        unit="m",
        risk_classes=np.where(blasts[found["target"]], classes["blasting"], classes["other"]),
        evidence=evidence,
    )
    return RuleResult(_sorted([frame]))


@rule_kind("rail_hazmat_screen")
def hazmat_screen(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Hazardous sites within ``distance_m`` of the centreline: the repealed 2004 rule's screen.

    Labelled as superseded in the title (the rule's ``note``) and the evidence. Class
    ``risk_classes.major_hazard`` (yellow) for a site with a major hazard source
    (``major_hazard_grade`` set), else ``risk_classes.other`` (blue). One finding per
    (line, site): value = the distance, geometry = the shortest line from the railway.
    """
    params = rule.params
    rails = ctx.frame(layer.id)
    limit = float(params["distance_m"])
    classes = params["risk_classes"]
    frames = []
    for target_layer in params["layers"]:
        sites = ctx.frame(target_layer)
        if rails.empty or sites.empty:
            continue
        reach = np.full(len(rails), limit)
        found = pairs_within(rails.geometry, sites.geometry, reach, "shortest_line")
        if found.empty:
            continue
        found["value"] = found["distance"]
        found = _nearest_per_line(found, rails, "value")
        major = _column(sites, "major_hazard_grade").notna().to_numpy()[found["target"]]
        frames.append(
            _findings(
                rule,
                layer,
                rails,
                found,
                sites,
                target_layer,
                title=f"{rule.title.zh} [{rule.note}]" if rule.note else rule.title.zh,
                thresholds=limit,
                unit="m",
                risk_classes=np.where(major, classes["major_hazard"], classes["other"]),
                evidence=_records(
                    screening="legacy (superseded)",
                    note=rule.note,
                    measured_from="centreline",
                    major_hazard_source=major,
                ),
            )
        )
    return RuleResult(_sorted(frames))


@rule_kind("rail_parallel_road")
def parallel_road(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Roads running alongside the line: within ``max_distance_m`` for ``min_length_m`` or more.

    Each road is sampled every ``sample_spacing_m`` metres (or a little less, so the ends are
    samples); a sample counts when the nearest railway centreline is within ``max_distance_m``
    and the road's bearing there differs from the railway's by at most ``max_angle_deg`` (each
    bearing over one sample step). Consecutive counting samples nearest the same line form a run;
    each sample stands for the road from half a step before it to half a step after. Runs of
    ``min_length_m`` or more make one finding per (road, line): value = their total length,
    geometry = the runs. Class orange when a run comes within ``orange_within_m`` of the
    centreline (the widest protection zone), else yellow.
    """
    params = rule.params
    rails, roads = ctx.frame(layer.id), ctx.frame(params["layer"])
    if rails.empty or roads.empty:
        return RuleResult(no_findings())
    runs = parallel_runs(
        rails,
        roads,
        spacing=float(params["sample_spacing_m"]),
        max_distance=float(params["max_distance_m"]),
        max_angle=float(params["max_angle_deg"]),
    )
    runs = runs[runs["length"] >= float(params["min_length_m"]) - TOLERANCE_M]
    if runs.empty:
        return RuleResult(no_findings())
    runs = runs.sort_values(["target", "line", "part", "start"], kind="stable")
    groups = [group for _, group in runs.groupby(["target", "line"], sort=True)]
    found = pd.DataFrame(
        {
            "rail": [int(g["rail"].iloc[int(np.argmin(g["nearest"]))]) for g in groups],
            "target": [int(g["target"].iloc[0]) for g in groups],
            "value": [float(g["length"].sum()) for g in groups],
            "nearest": [float(g["nearest"].min()) for g in groups],
            "angle": [float(g["angle"].max()) for g in groups],
            "geometry": [shapely.line_merge(shapely.union_all(g["geometry"])) for g in groups],
        }
    )
    evidence = [
        {
            "runs": [
                {"from_m": round(s, 1), "to_m": round(e, 1), "length_m": round(n, 1)}
                for s, e, n in zip(g["start"], g["end"], g["length"], strict=True)
            ],
            "nearest_m": round(float(g["nearest"].min()), 2),
            "max_angle_deg": round(float(g["angle"].max()), 1),
            "max_distance_m": float(params["max_distance_m"]),
            "max_angle_allowed_deg": float(params["max_angle_deg"]),
        }
        for g in groups
    ]
    close = found["nearest"].to_numpy() <= float(params["orange_within_m"]) + TOLERANCE_M
    frame = _findings(
        rule,
        layer,
        rails,
        found,
        roads,
        params["layer"],
        name_column="road_name",
        thresholds=float(params["min_length_m"]),
        unit="m",
        risk_classes=np.where(close, "orange", "yellow"),
        evidence=evidence,
    )
    return RuleResult(_sorted([frame]))


@rule_kind("rail_road_crossing")
def road_crossing(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Roads crossing the line: road bridges over it (公跨铁) and level crossings.

    Without elevations, a crossing's kind comes from the structures. A road section with
    ``structure: bridge`` crosses over the line (``classes.road_over_rail``, orange: its barriers
    go one crash class higher). A road at grade (``structure: road``, or no structure but
    ``level_crossing`` among its ``hazard_types``) across a railway on track is a level crossing
    (``classes.level_crossing``, red). A railway bridge or tunnel, or a road tunnel, separates
    the two: no finding. A road with no structure across track is a crossing of unknown kind
    (``classes.unknown``, yellow; null leaves it out) — set the road's structure to settle it.
    One finding per (road, line, kind): value = the crossing angle (degrees, 90 = square),
    geometry = the crossing point(s).
    """
    params = rule.params
    rails, roads = ctx.frame(layer.id), ctx.frame(params["layer"])
    if rails.empty or roads.empty:
        return RuleResult(no_findings())
    found = crossings(rails, roads)
    if found.empty:
        return RuleResult(no_findings())
    road_structure = _column(roads, "structure").to_numpy()[found["target"]]
    road_hazards = _column(roads, "hazard_types").to_numpy()[found["target"]]
    rail_structure = rails["structure"].to_numpy()[found["rail"]]
    marked = np.array([h is not None and "level_crossing" in h for h in road_hazards], dtype=bool)
    unknown_road = pd.isna(road_structure)
    at_grade = (road_structure == "road") | (unknown_road & marked)
    separated = (road_structure == "tunnel") | np.isin(rail_structure, ["bridge", "tunnel"])
    found["kind"] = np.select(
        [road_structure == "bridge", separated, at_grade & (rail_structure == "track"), at_grade],
        ["road_over_rail", "", "level_crossing", ""],
        default="unknown",
    )
    found["from_hazard_types"] = unknown_road & marked
    classes = {kind: cls for kind, cls in params["classes"].items() if cls}
    found = found[found["kind"].isin(list(classes))]
    if found.empty:
        return RuleResult(no_findings())
    found = found.sort_values(["target", "line", "rail"], kind="stable")
    groups = [group for _, group in found.groupby(["target", "line", "kind"], sort=True)]
    found = pd.DataFrame(
        {
            "rail": [int(g["rail"].iloc[0]) for g in groups],
            "target": [int(g["target"].iloc[0]) for g in groups],
            "kind": [str(g["kind"].iloc[0]) for g in groups],
            "value": [float(g["angle"].min()) for g in groups],
            "geometry": [shapely.union_all(g["geometry"].to_numpy()) for g in groups],
            "from_hazard_types": [bool(g["from_hazard_types"].iloc[0]) for g in groups],
        }
    )
    evidence = _records(
        crossing=found["kind"],
        road_structure=_column(roads, "structure").to_numpy()[found["target"]],
        rail_structure=rails["structure"].to_numpy()[found["rail"]],
        level_crossing_from_hazard_types=found["from_hazard_types"],
        crossing_angle_deg=found["value"].round(1),
        crossings=shapely.get_num_geometries(found["geometry"].to_numpy()),
    )
    frame = _findings(
        rule,
        layer,
        rails,
        found,
        roads,
        params["layer"],
        name_column="road_name",
        thresholds=None,
        unit="deg",
        risk_classes=found["kind"].map(classes).to_numpy(),
        evidence=evidence,
    )
    frame["title"] = found["kind"].map(_CROSSING_TITLES).to_numpy()
    return RuleResult(_sorted([frame]))


# -- protection zones --------------------------------------------------------------------------


def _zone_widths(rails: gpd.GeoDataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Each section's zone width (table or gazetted width) and what had to be assumed."""
    widths: dict[str, dict[str, float]] = params["widths_m"]
    fallback = params.get("missing_area_class", "other")
    area = rails["area_class"].astype(object)
    used_area = area.where(area.notna(), fallback)
    known_type = rails["rail_type"].isin(list(widths)).to_numpy()
    table = [
        float(widths[t][a]) if k else max(float(w[a]) for w in widths.values())
        for t, a, k in zip(rails["rail_type"], used_area, known_type, strict=True)
    ]
    gazetted = rails["gazetted_zone_width_m"].astype(float).to_numpy()
    notes = [
        "; ".join(
            ([] if pd.notna(a) else [f"area class missing: used {fallback!r} (the widest)"])
            + ([] if k else ["rail type unknown: used the widest width of the types"])
        )
        for a, k in zip(area, known_type, strict=True)
    ]
    return pd.DataFrame(
        {
            "width_m": np.where(np.isnan(gazetted), table, gazetted),
            "source": np.where(np.isnan(gazetted), "Art. 27 table", "gazetted width"),
            "area_class_used": used_area.to_numpy(),
            "assumed": notes,
        },
        index=rails.index,
    )


def _gazetted_polygons(
    ctx: RuleContext, rails: gpd.GeoDataFrame, layer_id: str | None
) -> gpd.GeoDataFrame:
    """Gazetted zone polygons dissolved per section (indexed by its position in ``rails``)."""
    empty = gpd.GeoDataFrame(
        {"width_m": pd.Series([], dtype=float), "gazette": pd.Series([], dtype=object)},
        geometry=gpd.GeoSeries([], crs=4326),
        crs=4326,
    )
    if not layer_id or layer_id not in ctx.catalogue or rails.empty:
        return empty
    polygons = ctx.frame(layer_id)
    position = pd.Series(rails.index, index=rails["id"].to_numpy())
    polygons = polygons[polygons["rail_id"].isin(position.index) & ~polygons.is_empty]
    if polygons.empty:
        return empty
    rail = position[polygons["rail_id"]].to_numpy()
    groups = {r: polygons[rail == r] for r in np.unique(rail)}  # one per gazetted section
    return gpd.GeoDataFrame(
        {
            "width_m": [g["width_m"].astype(float).max() for g in groups.values()],
            "gazette": [
                "; ".join(sorted({str(s) for s in g["source"].dropna()})) or None
                for g in groups.values()
            ],
        },
        geometry=[shapely.union_all(g.geometry.values) for g in groups.values()],
        index=pd.Index(list(groups), dtype=int),
        crs=4326,
    )


def _zone_polygons(
    rails: gpd.GeoDataFrame, zones: pd.DataFrame, gazetted: gpd.GeoDataFrame, offset: float
) -> gpd.GeoDataFrame:
    """Each zoned section's zone in EPSG:4326: its gazetted polygon, else the widened line."""
    geometry = np.empty(len(zones), dtype=object)
    is_gazetted = zones.index.isin(gazetted.index)
    table = zones.index[~is_gazetted]
    if len(table):
        reach = offset + zones.loc[table, "width_m"].to_numpy()
        geometry[~is_gazetted] = buffer_m(rails.geometry[table], reach).values
    geometry[is_gazetted] = gazetted.geometry[zones.index[is_gazetted]].values
    return gpd.GeoDataFrame(
        {
            "id": rails["id"][zones.index].to_numpy(),
            "width_m": zones["width_m"].to_numpy(),
            "edge_offset_m": offset,
            "source": zones["source"].to_numpy(),
        },
        geometry=gpd.GeoSeries(geometry, crs=4326),
        crs=4326,
    )


def _encroachments(
    rails: gpd.GeoDataFrame,
    zones: pd.DataFrame,
    gazetted: gpd.GeoDataFrame,
    targets: gpd.GeoDataFrame,
    offset: float,
) -> pd.DataFrame:
    """Features inside a zone: rail, target, centreline_m, value (from the edge), geometry."""
    if targets.empty or zones.empty:
        return no_pairs()
    found = []
    is_gazetted = zones.index.isin(gazetted.index)
    table = zones.index[~is_gazetted]
    if len(table):
        reach = offset + zones.loc[table, "width_m"].to_numpy()
        pairs = pairs_within(rails.geometry[table], targets.geometry, reach, "inside")
        pairs["centreline_m"] = pairs["distance"]
        found.append(pairs)
    polygons = zones.index[is_gazetted]
    if len(polygons):
        shapes = gazetted.geometry[polygons]
        pairs = pairs_within(shapes, targets.geometry, np.zeros(len(shapes)), "intersection")
        pairs["centreline_m"] = distance_m(
            rails.geometry.values[pairs["rail"]], targets.geometry.values[pairs["target"]]
        )
        found.append(pairs)
    found = [f for f in found if len(f)]
    if not found:
        return no_pairs()
    pairs = pd.concat(found, ignore_index=True)
    pairs["value"] = np.maximum(pairs["centreline_m"] - offset, 0.0)
    return pairs


# -- findings ----------------------------------------------------------------------------------


def _findings(
    rule: Rule,
    layer: Layer,
    rails: gpd.GeoDataFrame,
    found: pd.DataFrame,
    targets: gpd.GeoDataFrame,
    target_layer: str,
    *,
    name_column: str = "name",
    title: str | None = None,
    thresholds: Any,
    unit: str,
    risk_classes: Any,
    evidence: Sequence[dict[str, Any]],
) -> gpd.GeoDataFrame:
    rail, target = found["rail"].to_numpy(dtype=int), found["target"].to_numpy(dtype=int)
    names = _column(targets, name_column).to_numpy()
    return findings_frame(
        rule,
        layer,
        title=title,
        hazard_ids=rails["id"].to_numpy()[rail],
        hazard_names=rails["line_name"].to_numpy()[rail],
        target_layer=target_layer,
        target_ids=targets["id"].to_numpy()[target],
        target_names=names[target],
        geometries=found["geometry"].to_numpy(),
        values=found["value"].to_numpy(dtype=float),
        thresholds=thresholds,
        unit=unit,
        risk_classes=risk_classes,
        evidence=evidence,
    )


def _nearest_per_line(found: pd.DataFrame, rails: gpd.GeoDataFrame, by: str) -> pd.DataFrame:
    """One pair per (line, target): the section with the smallest ``by`` (ties: first section)."""
    found = found.assign(line=line_keys(rails)[found["rail"].to_numpy(dtype=int)])
    found = found.sort_values([by, "rail"], kind="stable")
    found = found.drop_duplicates(["line", "target"], keep="first")
    return found.sort_values(["rail", "target"], kind="stable").reset_index(drop=True)


def _records(**columns: Any) -> list[dict[str, Any]]:
    """Evidence rows from aligned columns (scalars repeat): native types, missing as None."""
    table = pd.DataFrame({name: _as_column(value) for name, value in columns.items()})
    table = table.astype(object).where(table.notna(), None)
    return [
        {str(k): v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def _as_column(value: Any) -> Any:
    return value.to_numpy() if isinstance(value, pd.Series) else value


def _column(frame: gpd.GeoDataFrame, name: str) -> pd.Series:
    """A column, or all-missing when the layer has no such field."""
    if name in frame:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _sorted(frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return no_findings()
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["hazard_id", "target_layer", "target_id", "title"], kind="stable")
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=4326)
