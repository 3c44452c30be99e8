"""What a rule produces: findings (one row each, ready for the hidden-danger list) and values.

A rule kind is a function ``(ctx, layer, rule) -> RuleResult``. It measures with vectorised
shapely/numpy/scipy, never a Python loop per feature on a hot path, and takes every threshold
from ``rule.params`` (the catalogue), never from a literal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.catalogue import Layer, Rule

# The columns a rule fills; the engine adds id, status, history, run ids, admin code and phase.
FINDING_COLUMNS = (
    "rule",
    "rule_kind",
    "title",
    "hazard_layer",
    "hazard_id",
    "hazard_name",
    "target_layer",
    "target_id",
    "target_name",
    "value",
    "threshold",
    "unit",
    "risk_class",
    "basis",
    "confidence",
    "evidence",
    "plan_item",
    "lead_department",
    "deadline",
)


@dataclass
class RuleResult:
    """A rule's output.

    ``findings``: rows with ``FINDING_COLUMNS`` and a geometry in EPSG:4326 that shows the finding
    on a map (the line from hazard to target, the corridor, the section).
    ``feature_values``: computed fields of the rule's layer (e.g. ``population_1km``), each a
    Series indexed by feature id. ``features``: whole frames for result layers the rule detects
    (e.g. dangerous road sections found from the terrain), by layer id.
    """

    findings: gpd.GeoDataFrame
    feature_values: dict[str, pd.Series] = field(default_factory=dict)
    features: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


def findings_frame(
    rule: Rule,
    layer: Layer,
    *,
    hazard_ids: Sequence[str] | np.ndarray,
    geometries: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray | float | None,
    unit: str,
    risk_classes: Sequence[str] | np.ndarray | str,
    hazard_names: Sequence[str | None] | np.ndarray | None = None,
    target_layer: str | None = None,
    target_ids: Sequence[str | None] | np.ndarray | None = None,
    target_names: Sequence[str | None] | np.ndarray | None = None,
    evidence: Sequence[dict[str, Any]] | None = None,
    title: str | None = None,
) -> gpd.GeoDataFrame:
    """Findings of one rule, one row per (hazard, target) pair, with the rule's basis attached."""
    n = len(hazard_ids)

    def column(values: Any, default: Any = None) -> np.ndarray:
        if values is None:
            values = default
        if np.ndim(values) == 0 or isinstance(values, str):
            return np.full(n, values, dtype=object)
        array = np.asarray(values, dtype=object)
        if len(array) != n:
            raise ValueError(f"rule {rule.id}: {len(array)} values for {n} findings")
        return array

    data = {
        "rule": column(rule.id),
        "rule_kind": column(rule.kind),
        "title": column(title or rule.title.zh),
        "hazard_layer": column(layer.id),
        "hazard_id": column(hazard_ids),
        "hazard_name": column(hazard_names),
        "target_layer": column(target_layer),
        "target_id": column(target_ids),
        "target_name": column(target_names),
        "value": np.asarray(values, dtype=float) if n else np.zeros(0),
        "threshold": column(thresholds).astype(float) if n else np.zeros(0),
        "unit": column(unit),
        "risk_class": column(risk_classes),
        "basis": column(rule.basis.strip()),
        "confidence": column(rule.confidence),
        "evidence": column(
            None
            if evidence is None
            else [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in evidence]
        ),
        "plan_item": column(rule.plan_item),
        "lead_department": column(rule.lead_department),
        "deadline": column(rule.deadline),
    }
    return gpd.GeoDataFrame(
        data, geometry=gpd.GeoSeries(np.asarray(geometries, dtype=object), crs=4326), crs=4326
    )


def no_findings() -> gpd.GeoDataFrame:
    """An empty findings frame (a rule with nothing to report, or an empty layer)."""
    frame = gpd.GeoDataFrame(
        {name: pd.Series([], dtype=object) for name in FINDING_COLUMNS},
        geometry=gpd.GeoSeries([], crs=4326),
        crs=4326,
    )
    frame["value"] = frame["value"].astype(float)
    frame["threshold"] = frame["threshold"].astype(float)
    return frame
