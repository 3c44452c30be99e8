"""Relocation priority of hazardous-chemical plants: an explainable score and a rank.

``score = 100 × Σ wᵢ·partᵢ / Σ wᵢ`` over four parts in [0, 1], weights ``weights`` of the rule:

- severity = (p + g) / 2, where p = 1 when the plant runs a severe process (as its
  ``protective_distance`` rule defines them) else 0, and g = (5 − grade) / 4 for a major hazard
  source of grade 1–4 (1 → 1.0 … 4 → 0.25), 0 without one;
- exposure = min(1, ``exposure_field`` / ``exposure_saturation_persons``) — people within 1 km
  by default, from the ``population_rings`` rule;
- vulnerability = min(1, Σ ``vulnerability_weights[category]`` over the protection targets
  inside the plant's protective distance / ``vulnerability_saturation``);
- dense_area = 1 when the ``dense_area`` rule puts the plant inside a densely populated area.

Each part's points are ``100 × wᵢ·partᵢ / Σ w`` and sum to the score (kept to 1e-6).
``relocation_rank``: 1 = first, by score, ties by id; plants whose ``relocation_status`` is in
``unranked_statuses``, and plants already in a chemical park unless
``rank_plants_in_chemical_park``, are scored but get no rank. One finding per ranked plant that
another rule flags (a target inside its protective distance, or a dense area; every ranked plant
when ``findings_only_when_flagged`` is false) carries its parts, points and inputs, and its rank
as the list's order of work; its class follows ``class_breaks`` (≥ red, ≥ orange, ≥ yellow,
else blue). ``relocation_breakdown(ctx)`` gives the whole table for notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo_service.catalogue import Layer, Rule
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult, findings_frame, no_findings
from geo_service.risk.registry import RULE_KINDS, rule_kind

__all__ = ["PARTS", "relocation_breakdown", "relocation_priority"]

_PRIORITY_AFTER = ("protective_distance", "population_rings", "dense_area")

PARTS = ("severity", "exposure", "vulnerability", "dense_area")


@rule_kind("relocation_priority", after=_PRIORITY_AFTER)
def relocation_priority(ctx: RuleContext, layer: Layer, rule: Rule) -> RuleResult:
    """Rank the plants for relocation by an explainable score (one finding per ranked plant)."""
    table = _breakdown(ctx, layer, rule)
    ctx.shared[f"relocation_priority:{layer.id}"] = table
    values = {"relocation_rank": table["relocation_rank"].astype("Int64")}
    ranked = table[table["relocation_rank"].notna()]
    if rule.params.get("findings_only_when_flagged", True):
        ranked = ranked[ranked["flagged_by"].map(bool)]
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
            "flagged_by": list(r["flagged_by"]),
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
    ``score``), ``relocation_rank`` (1 first; empty when not ranked), ``flagged_by`` (the rules
    that give the plant a reason to move) and ``notes``. Runs the rules the score reads when this
    context has not run them yet. Indexed by plant id, ranked first.
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
    table["flagged_by"] = [
        [k for k, hit in (("protective_distance", bool(t)), ("dense_area", d)) if hit]
        for t, d in zip(table["targets_inside"], in_dense, strict=True)
    ]

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
