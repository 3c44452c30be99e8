"""The two lists (两个清单): the hidden-danger list (findings) and the measures list.

**Findings.** A finding's id is a stable hash of (rule, hazard layer, hazard, target layer,
target), so the same danger found again keeps its entry. Each analysis merges its findings into
the stored list (``merge_findings``):

- a new finding enters as ``identified``, its history opened by ``georisk analyze``;
- one found again keeps its status, history and first run, and takes the fresh measurements;
- one of a rule that ran but no longer found keeps its record with ``still_holds`` false (a
  verified one stays verified; one still open gets a history note "no longer found by run X");
  findings of rules that did not run are left as they are.

The admin area is the finest ``admin_areas`` polygon holding the hazard (else the hazard's own
``admin_code``); the deadline is the rule's, else the end of the plan phase the finding was first
found in (none after the plan); the phase is the plan phase holding the deadline (the phase table
is configuration: ``derivations.plan_phases`` of ``layers/findings.yaml``).

Status workflow (``change_status``): identified → rectifying → rectified → verified, and → closed
(withdrawn: no longer applies) from any state before verified; every move is appended to the
history ``{at, by, from, to, note}``.

**Measures.** One measure per (admin area, rule of a plan item) that has findings: who leads it,
by when (the latest deadline of its findings), and how many of its findings are still open (not
verified or closed); screening and ranking rules without a plan item get none. Re-building keeps
each measure's status and history. Workflow: planned → in_progress → done, and → closed from
planned or in_progress.

**Progress** counts findings by status per admin area or per phase, with the open, overdue (still
identified or rectifying after the deadline) and percent rectified (rectified or verified, of those
not closed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.derive import DERIVATIONS
from geo_service.risk.model import FINDING_COLUMNS
from geo_service.schema import conform

if TYPE_CHECKING:
    from geo_service.risk.context import RuleContext
    from geo_service.store import Store

FINDINGS = "findings"
MEASURES = "measures"
ADMIN_AREAS = "admin_areas"
ANALYSIS = "georisk analyze"

StatusFlow = Mapping[str, tuple[str, ...]]
FINDING_FLOW: StatusFlow = {
    "identified": ("rectifying", "closed"),
    "rectifying": ("rectified", "closed"),
    "rectified": ("verified", "closed"),
    "verified": (),
    "closed": (),
}
MEASURE_FLOW: StatusFlow = {
    "planned": ("in_progress", "closed"),
    "in_progress": ("done", "closed"),
    "done": (),
    "closed": (),
}
OPEN = ("identified", "rectifying", "rectified")  # not yet verified or closed (未销号)
UNFIXED = ("identified", "rectifying")  # may be overdue

# what a rule measures; everything else of a finding belongs to the list
_MEASURED = (*FINDING_COLUMNS, "geometry")


class ListError(ValueError):
    """A change the lists refuse (an unknown entry, a move the workflow does not allow)."""


def finding_id(
    rule: str, hazard_layer: str, hazard_id: str, target_layer: str | None, target_id: str | None
) -> str:
    """The stable id of a finding: the same danger found again gets the same id."""
    key = "\x1f".join(
        str(part or "") for part in (rule, hazard_layer, hazard_id, target_layer, target_id)
    )
    return "f" + hashlib.sha1(key.encode()).hexdigest()[:16]


def merge_findings(
    ctx: RuleContext,
    existing: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    *,
    run_id: str,
    now: datetime,
    rules: Iterable[str] | None = None,
) -> gpd.GeoDataFrame:
    """The hidden-danger list after a run: ``new`` findings merged into the ``existing`` list.

    ``rules``: the rules that ran (default: all); only their findings can vanish.
    """
    layer = ctx.catalogue[FINDINGS]
    stamp = _stamp(now)
    fresh = _with_ids(new)
    old = existing.set_index(existing["id"].astype(str)) if len(existing) else None
    prior = _prior(old, fresh["id"])
    seen = prior["status"].notna().to_numpy()

    merged = gpd.GeoDataFrame(fresh[["id", *_MEASURED]].copy(), geometry="geometry", crs=4326)
    merged["status"] = np.where(seen, prior["status"].to_numpy(dtype=object), "identified")
    merged["history"] = [
        _reopened(h, s, held, run_id, stamp)
        if was
        else [_entry(stamp, ANALYSIS, None, "identified", f"found by run {run_id}")]
        for was, h, s, held in zip(
            seen, prior["history"], prior["status"], prior["still_holds"], strict=True
        )
    ]
    merged["first_run"] = np.where(seen, prior["first_run"].to_numpy(dtype=object), run_id)
    merged["last_run"] = run_id
    merged["still_holds"] = True
    merged["deadline"] = _deadlines(ctx, fresh, prior, now)
    merged["phase"] = _phases(ctx, merged["deadline"])
    merged["admin_code"] = _admin_codes(ctx, fresh)

    frames = [merged]
    if old is not None:
        rest = old[~old.index.isin(merged["id"])]
        ran = None if rules is None else set(rules)
        gone = rest["rule"].isin(ran) if ran is not None else pd.Series(True, index=rest.index)
        frames += [_vanished(rest[gone.to_numpy()], run_id, stamp), rest[~gone.to_numpy()]]
    frames = [f.reset_index(drop=True) for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else merged
    return conform(layer, gpd.GeoDataFrame(out, geometry="geometry", crs=4326))


def change_status(
    store: Store,
    finding_id: str,
    to: str,
    *,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> gpd.GeoDataFrame:
    """Move a finding along identified → rectifying → rectified → verified (or to closed)."""
    return _change(store, FINDINGS, FINDING_FLOW, finding_id, to, by, note, now)


def change_measure_status(
    store: Store,
    measure_id: str,
    to: str,
    *,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> gpd.GeoDataFrame:
    """Move a measure along planned → in_progress → done (or to closed)."""
    return _change(store, MEASURES, MEASURE_FLOW, measure_id, to, by, note, now)


def build_measures(
    ctx: RuleContext, findings: gpd.GeoDataFrame, *, now: datetime | None = None
) -> gpd.GeoDataFrame:
    """The measures list: one measure per (admin area, rule) of the findings, statuses kept."""
    layer = ctx.catalogue[MEASURES]
    stamp = _stamp(now or datetime.now(UTC))
    existing = ctx.store.read(MEASURES)
    kept = existing.set_index(existing["id"].astype(str))
    planned = findings[findings["plan_item"].notna().to_numpy()]  # plan work, not screenings
    if planned.empty:
        return conform(layer, existing.assign(findings_open=0))
    rows = planned.assign(
        admin_key=planned["admin_code"].fillna("").astype(str),
        open=planned["status"].isin(OPEN),
    )
    areas = _admin_frame(ctx)
    names = dict(zip(areas["admin_code"], areas["name"], strict=True))
    shapes = dict(zip(areas["admin_code"], areas.geometry, strict=True))
    rule_titles = {rule.id: rule.title.zh for _, rule in ctx.catalogue.rules}
    records = []
    for (code, rule), group in rows.groupby(["admin_key", "rule"], sort=True):
        measure_id = "m" + hashlib.sha1(f"{code}\x1f{rule}".encode()).hexdigest()[:16]
        title = rule_titles.get(rule) or str(group["title"].iloc[0])
        before = kept.loc[measure_id] if measure_id in kept.index else None
        records.append(
            {
                "id": measure_id,
                "title": f"{names.get(code, '未划定区域')}：{title}整治",
                "plan_item": _first(group["plan_item"]),
                "rule": rule,
                "lead_department": _first(group["lead_department"]),
                "admin_code": code or None,
                "deadline": group["deadline"].max(),
                "status": "planned" if before is None else before["status"],
                "findings_open": int(group["open"].sum()),
                "history": [_entry(stamp, ANALYSIS, None, "planned", "opened for its findings")]
                if before is None
                else before["history"],
                "geometry": shapes[code] if code in shapes else _around(group.geometry.values),
            }
        )
    built = gpd.GeoDataFrame(records, geometry="geometry", crs=4326)
    rest = existing[~existing["id"].isin(built["id"])].assign(findings_open=0)
    out = pd.concat([built, rest], ignore_index=True) if len(rest) else built
    return conform(layer, gpd.GeoDataFrame(out, geometry="geometry", crs=4326))


def progress(
    store: Store, by: Literal["admin", "phase"] = "admin", *, today: date | None = None
) -> pd.DataFrame:
    """Findings by status per admin area or per plan phase, with open, overdue and % rectified.

    The last row, ``total``, sums every group.
    """
    if by not in ("admin", "phase"):
        raise ValueError(f"progress by 'admin' or 'phase', not {by!r}")
    findings = store.read(FINDINGS)
    column = "admin_code" if by == "admin" else "phase"
    keys = findings[column].fillna("").astype(str)
    statuses = list(FINDING_FLOW)
    table = pd.crosstab(keys, findings["status"]).reindex(columns=statuses, fill_value=0)
    if by == "phase":
        order = [*_phase_ids(store.catalogue), ""]
        table = table.reindex([k for k in order if k in table.index])
    table["overdue"] = _overdue_mask(findings, today).groupby(keys).sum()
    table.loc["total"] = table.sum()
    table = table.astype(int)
    table["total"] = table[statuses].sum(axis=1)
    table["open"] = table[list(OPEN)].sum(axis=1)
    base = (table["total"] - table["closed"]).replace(0, np.nan)
    table["percent_rectified"] = (100 * (table["rectified"] + table["verified"]) / base).round(1)
    table = table[[*statuses, "total", "open", "overdue", "percent_rectified"]]
    table.index.name = column
    if by == "admin":
        areas = _admin_frame(store)
        names = dict(zip(areas["admin_code"], areas["name"], strict=True))
        table.insert(0, "name", [names.get(code) for code in table.index])
    return table


def overdue(store: Store, today: date | None = None) -> gpd.GeoDataFrame:
    """Findings still identified or rectifying after their deadline, earliest deadline first."""
    findings = store.read(FINDINGS)
    late = findings[_overdue_mask(findings, today).to_numpy()]
    return late.sort_values(["deadline", "id"], kind="stable").reset_index(drop=True)


def history_entries(history: Any) -> list[dict[str, Any]]:
    """A stored history (a list of JSON texts) as dicts, oldest first."""
    if history is None or (not isinstance(history, list) and pd.isna(history)):
        return []
    return [json.loads(item) if isinstance(item, str) else dict(item) for item in history]


# -- merging -----------------------------------------------------------------------------------


def _with_ids(new: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The new findings with their ids; a key found twice in one run gets a running number."""
    frame = new.reset_index(drop=True).copy()
    keys = [
        finding_id(*parts)
        for parts in zip(
            frame["rule"],
            frame["hazard_layer"],
            frame["hazard_id"],
            frame["target_layer"],
            frame["target_id"],
            strict=True,
        )
    ]
    ordinal = pd.Series(keys).groupby(keys).cumcount().to_numpy()
    frame["id"] = [
        key if n == 0 else finding_id(key, str(n), "", None, None)
        for key, n in zip(keys, ordinal, strict=True)
    ]
    return frame


def _prior(old: pd.DataFrame | None, ids: pd.Series) -> pd.DataFrame:
    """The stored record of each id (all-missing rows for new ids)."""
    wanted = ["status", "history", "still_holds", "first_run", "deadline"]
    if old is None:
        return pd.DataFrame({c: [None] * len(ids) for c in wanted}, dtype=object)
    prior = old[wanted].reindex(ids.to_numpy()).reset_index(drop=True)
    prior["status"] = prior["status"].astype(object).where(prior["status"].notna(), None)
    return prior


def _reopened(history: Any, status: str, held: Any, run_id: str, stamp: str) -> list[str]:
    """The history of a finding found again; a note when the last run had lost it."""
    entries = list(history) if isinstance(history, list) else []
    if held is False or (held is not None and held is not pd.NA and not bool(held)):
        entries.append(_entry(stamp, ANALYSIS, status, status, f"found again by run {run_id}"))
    return entries


def _vanished(rows: pd.DataFrame, run_id: str, stamp: str) -> pd.DataFrame:
    """Findings of rules that ran, no longer found: kept, marked, open ones noted once."""
    rows = rows.copy()
    held = rows["still_holds"].fillna(True).astype(bool)
    note = held & rows["status"].isin(OPEN)
    rows["history"] = [
        [
            *(h if isinstance(h, list) else []),
            _entry(stamp, ANALYSIS, s, s, f"no longer found by run {run_id}"),
        ]
        if noted
        else h
        for h, s, noted in zip(rows["history"], rows["status"], note, strict=True)
    ]
    rows["still_holds"] = False
    return rows


def _deadlines(
    ctx: RuleContext, fresh: pd.DataFrame, prior: pd.DataFrame, now: datetime
) -> pd.Series:
    """The rule's deadline, else the stored one, else the end of the phase first found in."""
    rule_deadline = pd.to_datetime(fresh["deadline"], errors="coerce").reset_index(drop=True)
    stored = pd.to_datetime(prior["deadline"], errors="coerce")
    found = [_first_found(h) or now.date() for h in prior["history"]]
    phases = _phase_table(ctx.catalogue)
    by_phase = pd.to_datetime(pd.Series([_phase_end(phases, d) for d in found], dtype=object))
    return rule_deadline.fillna(stored).fillna(by_phase).astype("datetime64[ms]")


def _phases(ctx: RuleContext, deadlines: pd.Series) -> np.ndarray:
    params = ctx.catalogue[FINDINGS].derivations["plan_phases"]
    frame = pd.DataFrame({"deadline": deadlines.reset_index(drop=True)})
    return DERIVATIONS[params["kind"]](frame, params).to_numpy(dtype=object)


def _admin_codes(ctx: RuleContext, fresh: pd.DataFrame) -> np.ndarray:
    """The code of the finest admin area holding each finding's hazard (else the hazard's own)."""
    places = np.asarray(shapely.point_on_surface(fresh.geometry.values), dtype=object)
    own = np.full(len(fresh), None, dtype=object)
    for hazard_layer, rows in fresh.groupby(fresh["hazard_layer"].fillna("")):
        if hazard_layer not in ctx.catalogue or ctx.catalogue[hazard_layer].kind != "vector":
            continue
        hazards = ctx.frame(str(hazard_layer))
        where = pd.Series(hazards.geometry.values, index=hazards["id"].astype(str))
        found = rows["hazard_id"].astype(str).map(where[~where.index.duplicated()])
        hit = found.notna().to_numpy()
        places[rows.index[hit]] = shapely.point_on_surface(found[hit].to_numpy(dtype=object))
        if "admin_code" in hazards:
            by_id = pd.Series(hazards["admin_code"].to_numpy(dtype=object), index=where.index)
            own[rows.index] = rows["hazard_id"].astype(str).map(by_id[~by_id.index.duplicated()])
    areas = _admin_frame(ctx)
    codes = own.copy()
    if len(areas) and len(places):
        point, area = shapely.STRtree(areas.geometry.values).query(places, predicate="intersects")
        levels = ctx.catalogue[ADMIN_AREAS].field_map["level"].enum or []
        rank = areas["level"].map({lvl: i for i, lvl in enumerate(levels)}).fillna(-1)
        pairs = pd.DataFrame(
            {
                "point": point,
                "rank": rank.to_numpy()[area],
                "code": areas["admin_code"].to_numpy()[area],
            }
        ).sort_values(["point", "rank", "code"], ascending=[True, False, True])
        best = pairs.drop_duplicates("point")
        codes[best["point"].to_numpy()] = best["code"].to_numpy(dtype=object)
    return codes


def _phase_table(catalogue: Any) -> list[tuple[str, date, date]]:
    params = catalogue[FINDINGS].derivations["plan_phases"]
    return [
        (str(p["id"]), pd.Timestamp(p["start"]).date(), pd.Timestamp(p["end"]).date())
        for p in params["phases"]
    ]


def _phase_ids(catalogue: Any) -> list[str]:
    return [phase for phase, _, _ in _phase_table(catalogue)]


def _phase_end(phases: list[tuple[str, date, date]], day: date) -> date | None:
    """The end of the phase holding ``day``: the first phase before the plan, none after it."""
    if not phases:
        return None
    if day < phases[0][1]:
        return phases[0][2]
    for _, start, end in phases:
        if start <= day <= end:
            return end
    return None


def _first_found(history: Any) -> date | None:
    entries = history_entries(history) if isinstance(history, list) else []
    if not entries:
        return None
    return datetime.fromisoformat(str(entries[0]["at"])).date()


# -- status changes ----------------------------------------------------------------------------


def _change(
    store: Store,
    layer_id: str,
    flow: StatusFlow,
    item_id: str,
    to: str,
    by: str,
    note: str | None,
    now: datetime | None,
) -> gpd.GeoDataFrame:
    what = "finding" if layer_id == FINDINGS else "measure"
    if to not in flow:
        raise ListError(f"unknown status {to!r}; a {what} is one of: {', '.join(flow)}")
    if not by or not by.strip():
        raise ListError("say who changes the status (by)")
    rows = store.read(layer_id, ids=[item_id])
    if rows.empty:
        raise ListError(f"no {what} {item_id!r}")
    current = str(rows.at[0, "status"])
    allowed = flow.get(current, ())
    if to not in allowed:
        moves = f"to {' or '.join(allowed)}" if allowed else "nowhere (it is final)"
        raise ListError(f"{what} {item_id} is {current}: it can move {moves}, not to {to}")
    history = list(rows.at[0, "history"] or [])
    history.append(_entry(_stamp(now or datetime.now(UTC)), by.strip(), current, to, note))
    rows.at[0, "history"] = history
    rows.at[0, "status"] = to
    store.upsert(layer_id, rows)
    return store.read(layer_id, ids=[item_id])


def _entry(at: str, by: str, source: str | None, to: str, note: str | None) -> str:
    record = {"at": at, "by": by, "from": source, "to": to, "note": note}
    return json.dumps(record, ensure_ascii=False)


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


# -- helpers -----------------------------------------------------------------------------------


def _overdue_mask(findings: pd.DataFrame, today: date | None) -> pd.Series:
    day = np.datetime64(today or date.today(), "D")
    deadlines = pd.to_datetime(findings["deadline"]).to_numpy(dtype="datetime64[D]")
    late = deadlines < day  # NaT compares False
    return pd.Series(late, index=findings.index) & findings["status"].isin(UNFIXED)


def _admin_frame(source: Any) -> gpd.GeoDataFrame:
    """The admin areas, through a run's context (read once) or straight from a store."""
    return source.frame(ADMIN_AREAS) if hasattr(source, "frame") else source.read(ADMIN_AREAS)


def _first(values: pd.Series) -> Any:
    present = values.dropna()
    return present.iloc[0] if len(present) else None


def _around(geoms: np.ndarray) -> Any:
    """A small polygon around findings that lie in no admin area."""
    return shapely.box(*shapely.total_bounds(geoms)).buffer(1e-4, join_style="mitre")
