"""Run the catalogue's rules over the store and keep the results.

``analyze`` runs every rule (or those asked for, with the rules they read), grades each hazard
feature, writes the computed fields onto the features, merges the findings into the
hidden-danger list (keeping the status and history of findings that still hold) and records the
run with the catalogue and data versions it used, so a result can be reproduced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import geopandas as gpd
import pandas as pd
import shapely

import geo_service.risk.rules  # noqa: F401  (registers the rule kinds)
from geo_service import __version__
from geo_service.catalogue import Layer, Rule
from geo_service.risk import grading, lists
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult, no_findings
from geo_service.risk.registry import RULE_KINDS
from geo_service.store import Store

Progress = Callable[[str], None]


class AnalysisError(ValueError):
    """An analysis that cannot run as asked (an unknown rule, a rule kind with no code)."""


@dataclass(frozen=True)
class AnalysisRun:
    """What a run did."""

    run_id: str
    findings: int
    by_rule: dict[str, int]
    by_class: dict[str, int]


def analyze(
    store: Store,
    *,
    rules: Iterable[str] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> AnalysisRun:
    """Run the rules (ids or kinds; default all) and store findings, values and the run record."""
    step = progress or (lambda name: None)
    started = now or datetime.now(UTC)
    data_version = store.data_version()
    ctx = RuleContext(store)
    selected = _select(ctx, set(rules) if rules is not None else None)
    run_id = _run_id(started, store.catalogue.version, data_version)

    results: list[tuple[Layer, Rule, RuleResult]] = []
    for layer, rule in selected:
        step(rule.id)
        results.append((layer, rule, RULE_KINDS[rule.kind].run(ctx, layer, rule)))

    step("grading")
    findings = _concat([r.findings for _, _, r in results])
    for layer in {layer.id: layer for layer, _, _ in results}.values():
        values: dict[str, pd.Series] = {}
        for result_layer, _, result in results:
            if result_layer.id == layer.id:
                values.update(result.feature_values)
        values.update(
            grading.grade(ctx, layer, findings[findings["hazard_layer"] == layer.id], values)
        )
        _write_feature_values(store, ctx, layer, values)
    for _, _, result in results:
        for layer_id, frame in result.features.items():
            store.replace(layer_id, frame)

    step("hidden-danger list")
    merged = lists.merge_findings(ctx, store.read("findings"), findings, run_id=run_id, now=started)
    store.replace("findings", merged)
    by_rule = findings["rule"].value_counts().to_dict()
    by_class = findings["risk_class"].value_counts().to_dict()
    store.upsert(
        "analysis_runs",
        _run_record(ctx, run_id, started, data_version, selected, by_rule, by_class),
    )
    return AnalysisRun(run_id, len(findings), by_rule, by_class)


def _select(ctx: RuleContext, wanted: set[str] | None) -> list[tuple[Layer, Rule]]:
    """The rules to run, in an order where every kind runs after the kinds it reads."""
    every = ctx.catalogue.rules
    if wanted is not None:
        known = {r.id for _, r in every} | {r.kind for _, r in every}
        unknown = sorted(wanted - known)
        if unknown:
            raise AnalysisError(f"unknown rules: {', '.join(unknown)}; see `georisk rules`")
    for _, rule in every:
        if rule.kind not in RULE_KINDS:
            raise AnalysisError(f"rule {rule.id}: rule kind {rule.kind!r} has no implementation")
    chosen = [
        (layer, rule)
        for layer, rule in every
        if wanted is None or rule.id in wanted or rule.kind in wanted
    ]
    # pull in the rules whose kinds the chosen ones read, on the same layer
    needed = {(layer.id, kind) for layer, rule in chosen for kind in RULE_KINDS[rule.kind].after}
    chosen += [
        (layer, rule)
        for layer, rule in every
        if (layer.id, rule.kind) in needed and (layer, rule) not in chosen
    ]
    return sorted(chosen, key=lambda pair: (_depth(pair[1].kind), pair[0].id, pair[1].id))


def _depth(kind: str, seen: frozenset[str] = frozenset()) -> int:
    if kind in seen:
        raise AnalysisError(f"rule kinds read each other in a circle: {sorted(seen)}")
    after = RULE_KINDS[kind].after
    return 0 if not after else 1 + max(_depth(k, seen | {kind}) for k in after)


def _write_feature_values(
    store: Store, ctx: RuleContext, layer: Layer, values: dict[str, pd.Series]
) -> None:
    """Put the computed fields on the features; a field with no value this run is cleared."""
    frame = ctx.frame(layer.id).copy()
    if frame.empty:
        return
    for spec in layer.fields:
        if spec.computed:
            series = values.get(spec.name)
            frame[spec.name] = None if series is None else frame["id"].map(series).astype(object)
    store.upsert(layer.id, frame)


def _concat(frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return no_findings()
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)


def _run_id(started: datetime, catalogue_version: str, data_version: str) -> str:
    digest = hashlib.sha1(f"{catalogue_version}|{data_version}".encode()).hexdigest()[:6]
    return f"run-{started:%Y%m%dT%H%M%S}-{digest}"


def _run_record(
    ctx: RuleContext,
    run_id: str,
    started: datetime,
    data_version: str,
    selected: list[tuple[Layer, Rule]],
    by_rule: dict[str, int],
    by_class: dict[str, int],
) -> gpd.GeoDataFrame:
    extent = [
        shapely.box(*f.total_bounds)
        for layer in ctx.catalogue.vector_layers
        if layer.importable and len(f := ctx.frame(layer.id))
    ]
    area = shapely.envelope(shapely.union_all(extent)) if extent else shapely.box(0, 0, 0, 0)
    record = {
        "id": [run_id],
        "started": [started.isoformat(timespec="seconds")],
        "finished": [datetime.now(UTC).isoformat(timespec="seconds")],
        "catalogue_version": [ctx.catalogue.version],
        "data_version": [data_version],
        "georisk_version": [__version__],
        "rules": [[rule.id for _, rule in selected]],
        "findings": [sum(by_rule.values())],
        "summary": [json.dumps({"by_rule": by_rule, "by_class": by_class}, sort_keys=True)],
    }
    return gpd.GeoDataFrame(record, geometry=[area], crs=4326)
