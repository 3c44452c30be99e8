"""Run the catalogue's rules over the store and keep the results.

``analyze`` runs every rule (or those asked for, with the rules they read), merges the findings
into the hidden-danger list (keeping the status and history of findings that still hold) and
rebuilds the measures list, grades every hazard feature from its findings, writes the computed
fields onto the features, draws the risk surface, and records the run with the catalogue and data
versions it used, so a result can be reproduced.

A run with ``rules`` touches only what those rules measure: findings of other rules keep their
``still_holds``, and computed fields no chosen rule computes keep their stored values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
    rules: tuple[str, ...] = ()
    risk_surface: Path | None = None


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
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    data_version = store.data_version()
    ctx = RuleContext(store)
    wanted = None if rules is None else {name.strip() for name in rules if name.strip()}
    selected = _select(ctx, wanted)
    run_id = _run_id(started, store.catalogue.version, data_version)

    results: list[tuple[Layer, Rule, RuleResult]] = []
    for layer, rule in selected:
        step(rule.id)
        results.append((layer, rule, RULE_KINDS[rule.kind].run(ctx, layer, rule)))
    for _, _, result in results:  # detected features (e.g. road sections) first: they get graded
        for layer_id, frame in result.features.items():
            store.replace(layer_id, frame)
            ctx.forget(layer_id)

    step("hidden-danger list")
    findings = _concat([result.findings for _, _, result in results])
    ran = [rule.id for _, rule in selected]
    merged = lists.merge_findings(
        ctx, store.read(lists.FINDINGS), findings, run_id=run_id, now=started, rules=ran
    )
    store.replace(lists.FINDINGS, merged)
    store.replace(lists.MEASURES, lists.build_measures(ctx, merged, now=started))

    step("grading")
    holding = merged[merged["still_holds"].fillna(False).astype(bool).to_numpy()]
    holding = holding[holding["status"] != "closed"]
    computed = _computed_values(results)
    for layer in ctx.catalogue.vector_layers:
        spec = grading.grading_spec(layer) if layer.role == "hazard" else None
        if spec is None and layer.id not in computed:
            continue
        values = {} if wanted is None else _stored_values(ctx, layer)
        values.update(computed.get(layer.id, {}))
        if spec is not None:
            mine = holding[holding["hazard_layer"] == layer.id]
            values.update(grading.grade(ctx, layer, mine, values))
        _write_feature_values(store, ctx, layer, values, clear_others=wanted is None)

    step("risk surface")
    surface = grading.risk_surface(store)
    by_rule = {str(k): int(v) for k, v in findings["rule"].value_counts().sort_index().items()}
    by_class = {str(k): int(v) for k, v in findings["risk_class"].value_counts().items()}
    store.upsert(
        "analysis_runs",
        _run_record(ctx, run_id, started, data_version, selected, by_rule, by_class),
    )
    return AnalysisRun(run_id, len(findings), by_rule, by_class, tuple(ran), surface)


def _select(ctx: RuleContext, wanted: set[str] | None) -> list[tuple[Layer, Rule]]:
    """The rules to run, in an order where every kind runs after the kinds it reads."""
    every = ctx.catalogue.rules
    if wanted is not None:
        known = {r.id for _, r in every} | {r.kind for _, r in every}
        unknown = sorted(wanted - known)
        if unknown:
            raise AnalysisError(f"unknown rules: {', '.join(unknown)}; see `georisk rules`")
        if not wanted:
            raise AnalysisError("no rules named; leave the list out to run them all")
    chosen = [
        (layer, rule)
        for layer, rule in every
        if wanted is None or rule.id in wanted or rule.kind in wanted
    ]
    while True:  # pull in the rules whose kinds the chosen ones read, on the same layer
        needed = {
            (layer.id, kind)
            for layer, rule in chosen
            if rule.kind in RULE_KINDS
            for kind in RULE_KINDS[rule.kind].after
        }
        extra = [
            (layer, rule)
            for layer, rule in every
            if (layer.id, rule.kind) in needed and (layer, rule) not in chosen
        ]
        if not extra:
            break
        chosen += extra
    missing = sorted({rule.id for _, rule in chosen if rule.kind not in RULE_KINDS})
    if missing:
        kinds = sorted({rule.kind for _, rule in chosen if rule.kind not in RULE_KINDS})
        raise AnalysisError(
            f"rule kinds with no implementation: {', '.join(kinds)} (rules {', '.join(missing)})"
        )
    return sorted(chosen, key=lambda pair: (_depth(pair[1].kind), pair[0].id, pair[1].id))


def _depth(kind: str, seen: frozenset[str] = frozenset()) -> int:
    if kind in seen:
        raise AnalysisError(f"rule kinds read each other in a circle: {sorted(seen)}")
    after = [k for k in RULE_KINDS[kind].after if k in RULE_KINDS]
    return 0 if not after else 1 + max(_depth(k, seen | {kind}) for k in after)


def _computed_values(
    results: list[tuple[Layer, Rule, RuleResult]],
) -> dict[str, dict[str, pd.Series]]:
    """The fields each layer's rules computed this run, by layer id."""
    values: dict[str, dict[str, pd.Series]] = {}
    for layer, _, result in results:
        values.setdefault(layer.id, {}).update(result.feature_values)
    return values


def _stored_values(ctx: RuleContext, layer: Layer) -> dict[str, pd.Series]:
    """The computed fields as stored (what a run of only some rules leaves as it is)."""
    frame = ctx.frame(layer.id)
    ids = frame["id"].astype(str)
    return {
        spec.name: pd.Series(frame[spec.name].to_numpy(dtype=object), index=ids)
        for spec in layer.fields
        if spec.computed
    }


def _write_feature_values(
    store: Store,
    ctx: RuleContext,
    layer: Layer,
    values: dict[str, pd.Series],
    *,
    clear_others: bool,
) -> None:
    """Put the computed fields on the features; with ``clear_others`` clear those not computed."""
    frame = ctx.frame(layer.id).copy()
    if frame.empty:
        return
    ids = frame["id"].astype(str)
    for spec in layer.fields:
        if not spec.computed:
            continue
        if spec.name in values:
            series = values[spec.name]
            series = series[~series.index.duplicated()]
            frame[spec.name] = ids.map(series).astype(object)
        elif clear_others:
            frame[spec.name] = None
    store.upsert(layer.id, frame)
    ctx.forget(layer.id)


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
