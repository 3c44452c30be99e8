"""The whole analysis on the demo region: graded features, the two lists, re-runs, parity.

The demo region (清河市) is built, analysed on 2020-06-01, and checked the way a planner reads the
result: every hazard feature graded, the dense-core plants and the head-top ponds at the top, the
findings on the hidden-danger list with their areas and deadlines, the run on record. A second run
after a status change and after two protection targets are removed keeps the status and history
of what still holds and marks what vanished. The same analysis on PostGIS gives the same findings.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import CRS
from sqlalchemy import text

import geo_service.risk.rules  # noqa: F401  (registers the rule kinds)
from geo_service.catalogue import RISK_CLASSES, Catalogue
from geo_service.demo import DemoSummary, build_demo
from geo_service.risk.engine import AnalysisError, AnalysisRun, analyze
from geo_service.risk.grading import grading_spec
from geo_service.risk.lists import change_status, history_entries
from geo_service.risk.registry import RULE_KINDS
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore

FIRST = datetime(2020, 6, 1, 8, 0, tzinfo=UTC)
SECOND = datetime(2020, 7, 1, 8, 0, tzinfo=UTC)


def runnable(catalogue: Catalogue) -> list[str] | None:
    """Every rule (None) once every rule kind has code; until then the rules whose kinds do."""
    implemented = [rule.id for _, rule in catalogue.rules if rule.kind in RULE_KINDS]
    assert implemented, "no rule kind has code yet"
    return None if len(implemented) == len(catalogue.rules) else implemented


Demo = tuple[GeoPackageStore, DemoSummary, AnalysisRun, str, list[str], pd.DataFrame]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Demo:
    store = GeoPackageStore(catalogue, tmp_path_factory.mktemp("analyze"))
    summary = build_demo(store)
    version = store.data_version()
    steps: list[str] = []
    run = analyze(store, rules=runnable(catalogue), progress=steps.append, now=FIRST)
    return store, summary, run, version, steps, store.read("findings")


def graded_layers(catalogue: Catalogue) -> list[str]:
    return [layer.id for layer in catalogue.vector_layers if grading_spec(layer) is not None]


def test_every_hazard_feature_has_a_score_and_a_class(demo: Demo) -> None:
    store = demo[0]
    assert set(graded_layers(store.catalogue)) >= {
        "chemical_plants",
        "tailings_ponds",
        "rail_corridors",
        "road_sections",
        "fire_lifelines",
    }
    for layer_id in graded_layers(store.catalogue):
        frame = store.read(layer_id)
        assert len(frame), layer_id
        scores = frame["risk_score"].astype(float)
        assert scores.notna().all() and scores.between(0, 100).all(), layer_id
        assert set(frame["risk_class"]) <= set(RISK_CLASSES), layer_id


def test_plants_carry_their_people_and_the_dense_core_ranks_first(demo: Demo) -> None:
    store, summary = demo[0], demo[1]
    plants = store.read("chemical_plants").set_index("id")
    people = plants[["population_500m", "population_1km", "population_3km"]].astype(float)
    assert people.notna().all().all()
    assert (people["population_500m"] <= people["population_1km"]).all()
    assert (people["population_1km"] <= people["population_3km"]).all()
    core = summary.dense_core_plants
    ranks = plants["relocation_rank"]
    assert sorted(ranks[core].astype(int)) == list(range(1, len(core) + 1))
    # the four colours agree: every dense-core plant outscores every plant outside the core
    scores = plants["risk_score"].astype(float)
    assert scores[core].min() > scores.drop(core).max()
    assert set(plants.loc[core, "risk_class"]) <= {"red", "orange"}


def test_head_top_ponds_are_the_ones_built_so_and_outrank_the_rest(demo: Demo) -> None:
    store, summary = demo[0], demo[1]
    ponds = store.read("tailings_ponds").set_index("id")
    assert ponds["head_top"].astype(bool).to_dict() == summary.headtop_expected
    assert ponds["grade"].notna().all()
    head_top = [pond for pond, is_head_top in summary.headtop_expected.items() if is_head_top]
    scores = ponds["risk_score"].astype(float)
    assert scores[head_top].min() > scores.drop(head_top).max()
    assert set(ponds.loc[head_top, "risk_class"]) <= {"red", "orange"}
    assert set(ponds.drop(head_top)["risk_class"]) <= {"yellow", "blue"}


def test_the_findings_are_on_the_hidden_danger_list(demo: Demo) -> None:
    store, _, run, _, _, findings = demo
    assert len(findings) == run.findings > 0
    assert findings["id"].is_unique
    assert set(findings["status"]) == {"identified"}
    assert findings["still_holds"].astype(bool).all()
    assert (findings["first_run"] == run.run_id).all() and (
        findings["last_run"] == run.run_id
    ).all()
    assert findings["admin_code"].notna().all()  # every hazard lies in one of the six districts
    assert set(findings["admin_code"]) <= set(store.read("admin_areas")["admin_code"])
    assert set(findings["risk_class"]) <= set(RISK_CLASSES)
    by_rule = {rule.id: rule for _, rule in store.catalogue.rules}
    for rule_id, rows in findings.groupby("rule"):
        deadline = by_rule[str(rule_id)].deadline
        if deadline is not None:
            assert (rows["deadline"].dt.strftime("%Y-%m-%d") == deadline).all(), rule_id
        else:  # found in June 2020: the survey-and-fix phase ends on 2020-12-31
            assert (rows["deadline"].dt.strftime("%Y-%m-%d") == "2020-12-31").all(), rule_id
    assert findings["phase"].notna().all()
    assert run.by_rule == findings["rule"].value_counts().sort_index().to_dict()


def test_measures_list_counts_open_findings(demo: Demo) -> None:
    store, findings = demo[0], demo[5]
    measures = store.read("measures")
    planned = findings[findings["plan_item"].notna()]
    assert len(measures) == planned.groupby(["admin_code", "rule"]).ngroups > 0
    assert measures["findings_open"].sum() == len(planned)
    assert set(measures["status"]) == {"planned"}
    leads = {rule.id: rule.lead_department for _, rule in store.catalogue.rules}
    assert measures["lead_department"].tolist() == [leads[rule] for rule in measures["rule"]]


def test_the_run_is_on_record_with_its_versions(demo: Demo) -> None:
    store, _, run, version, steps, _ = demo
    record = store.read("analysis_runs").set_index("id").loc[run.run_id]
    assert record["catalogue_version"] == store.catalogue.version
    assert record["data_version"] == version != "empty"
    assert record["started"] == "2020-06-01T08:00:00+00:00"
    assert list(record["rules"]) == list(run.rules)
    assert json.loads(record["summary"])["by_rule"] == run.by_rule
    assert steps[: len(run.rules)] == list(run.rules)
    assert steps[-3:] == ["hidden-danger list", "grading", "risk surface"]


def test_the_risk_surface_is_stored_for_heat_maps(demo: Demo) -> None:
    store = demo[0]
    path = store.raster_path("risk_surface")
    assert path is not None
    with rasterio.open(path) as src:
        grid = src.read(1)
        assert CRS(src.crs).is_projected and src.transform.a == 100
    top = store.read("chemical_plants")["risk_score"].astype(float).max()
    # the top plant's cell centre lies within 71 m of it: at least top · (1 − 71/1000)
    assert top * (1 - 71 / 1000) <= grid.max() <= 100
    assert (grid == 0).any()


def test_an_unknown_rule_is_refused(demo: Demo) -> None:
    with pytest.raises(AnalysisError, match="unknown rules: nope"):
        analyze(demo[0], rules=["nope"])


def test_a_rerun_keeps_status_and_history_and_marks_what_vanished(
    demo: Demo, tmp_path: Path
) -> None:
    source, _, first, _, _, findings = demo
    shutil.copytree(source.data_dir, tmp_path / "data")
    store = GeoPackageStore(source.catalogue, tmp_path / "data")

    # two plant–target findings whose targets appear nowhere else; one walked to verified
    targets = findings[findings["target_layer"] == "protection_targets"]
    hazards = findings[findings["hazard_layer"] == "protection_targets"]["hazard_id"]
    once = targets["target_id"].value_counts()
    alone = targets[
        (targets["rule"] == "plant_protective_distance")
        & targets["target_id"].map(once).eq(1)
        & ~targets["target_id"].isin(hazards)
    ].sort_values("id")
    assert len(alone) >= 2
    vanishing, verified = alone.iloc[0], alone.iloc[1]
    for step in ("rectifying", "rectified", "verified"):
        change_status(store, verified["id"], step, by="验收组", now=FIRST)
    holding = findings[findings["rule"] == "headtop_downstream"].sort_values("id").iloc[0]
    change_status(store, holding["id"], "rectifying", by="张三", note="搬迁安置启动", now=FIRST)
    assert store.delete("protection_targets", [vanishing["target_id"], verified["target_id"]]) == 2

    second = analyze(store, rules=runnable(store.catalogue), now=SECOND)
    assert second.run_id != first.run_id
    after = store.read("findings").set_index("id")
    assert len(after) >= len(findings)  # nothing is dropped
    kept = after.loc[holding["id"]]
    assert kept["status"] == "rectifying" and bool(kept["still_holds"])
    assert (kept["first_run"], kept["last_run"]) == (first.run_id, second.run_id)
    assert [(e["by"], e["to"], e["note"]) for e in history_entries(kept["history"])] == [
        ("georisk analyze", "identified", f"found by run {first.run_id}"),
        ("张三", "rectifying", "搬迁安置启动"),
    ]
    gone = after.loc[vanishing["id"]]
    assert not gone["still_holds"] and gone["status"] == "identified"
    assert gone["last_run"] == first.run_id
    assert history_entries(gone["history"])[-1]["note"] == f"no longer found by run {second.run_id}"
    done = after.loc[verified["id"]]
    assert not done["still_holds"] and done["status"] == "verified"
    assert history_entries(done["history"])[-1]["to"] == "verified"
    # every other finding of the first run still holds
    others = findings[~findings["id"].isin([vanishing["id"], verified["id"]])]["id"]
    assert after.loc[others, "still_holds"].astype(bool).mean() > 0.95
    assert len(store.read("analysis_runs")) == 2


# -- parity with PostGIS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgis_demo(
    postgis_url: str, catalogue: Catalogue, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    store = PostGISStore(catalogue, postgis_url, cache_dir=tmp_path_factory.mktemp("pg-cache"))
    with store.engine.begin() as conn:
        preparer = conn.dialect.identifier_preparer
        tables = ", ".join(preparer.format_table(t) for t in store.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables}"))
    build_demo(store)
    run = analyze(store, rules=runnable(catalogue), now=FIRST)
    yield store, run
    store.close()


def test_the_same_findings_on_postgis(demo: Demo, postgis_demo: Any) -> None:
    gpkg_findings = demo[5].set_index("id")
    pg_store, pg_run = postgis_demo
    pg_findings = pg_store.read("findings").set_index("id")
    assert sorted(pg_findings.index) == sorted(gpkg_findings.index)
    assert pg_run.by_rule == demo[2].by_rule and pg_run.by_class == demo[2].by_class
    pg = pg_findings.loc[gpkg_findings.index]
    for column in ("rule", "hazard_id", "target_id", "risk_class", "unit", "admin_code", "phase"):
        assert pg[column].tolist() == gpkg_findings[column].tolist(), column
    for column in ("value", "threshold"):
        a, b = gpkg_findings[column].astype(float), pg[column].astype(float)
        assert np.allclose(a, b, rtol=0, atol=1e-6, equal_nan=True), column


def test_the_same_grades_and_surface_on_postgis(demo: Demo, postgis_demo: Any) -> None:
    gpkg_store, pg_store = demo[0], postgis_demo[0]
    for layer_id in graded_layers(gpkg_store.catalogue):
        computed = [f.name for f in gpkg_store.catalogue[layer_id].fields if f.computed]
        a = gpkg_store.read(layer_id).set_index("id")[computed]
        b = pg_store.read(layer_id).set_index("id")[computed].loc[a.index]
        for column in computed:
            if a[column].dtype == object or str(a[column].dtype) in {"boolean", "string"}:
                assert a[column].tolist() == b[column].tolist(), (layer_id, column)
            else:
                assert np.allclose(
                    a[column].astype(float), b[column].astype(float), atol=1e-6, equal_nan=True
                ), (layer_id, column)
    paths = [store.raster_path("risk_surface") for store in (gpkg_store, pg_store)]
    grids = []
    for path in paths:
        assert path is not None
        with rasterio.open(path) as src:
            grids.append(src.read(1))
    assert grids[0].shape == grids[1].shape and np.allclose(grids[0], grids[1], atol=1e-4)


def test_every_rule_of_the_catalogue_has_code(catalogue: Catalogue) -> None:
    missing = sorted({r.kind for _, r in catalogue.rules if r.kind not in RULE_KINDS})
    assert not missing, f"rule kinds still without code: {missing}"
    assert runnable(catalogue) is None  # so the runs above are full runs
