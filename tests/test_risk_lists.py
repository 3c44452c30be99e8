"""The two lists: merging runs, the status workflow and its history, measures, progress, exports."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely

from geo_service.catalogue import Catalogue, Rule
from geo_service.risk.context import RuleContext
from geo_service.risk.exports import ListFilter, export_findings, export_measures
from geo_service.risk.lists import (
    ListError,
    build_measures,
    change_measure_status,
    change_status,
    finding_id,
    history_entries,
    merge_findings,
    overdue,
    progress,
)
from geo_service.risk.model import findings_frame
from geo_service.store import Store

JUNE_2020 = datetime(2020, 6, 1, 8, 0, tzinfo=UTC)
JULY_2020 = datetime(2020, 7, 1, 8, 0, tzinfo=UTC)
AUGUST_2020 = datetime(2020, 8, 1, 8, 0, tzinfo=UTC)


def fill(store: Store) -> None:
    """A county with a township inside it, and three plants: in the township, in the county only,
    and outside both (carrying its own admin code)."""
    store.replace(
        "admin_areas",
        gpd.GeoDataFrame(
            {
                "id": ["a1", "a2"],
                "admin_code": ["429001", "429101"],
                "name": ["清河区", "北山镇"],
                "level": ["county", "township"],
            },
            geometry=[
                shapely.box(110.4, 30.4, 110.6, 30.6),
                shapely.box(110.45, 30.45, 110.5, 30.5),
            ],
            crs=4326,
        ),
    )
    store.replace(
        "chemical_plants",
        gpd.GeoDataFrame(
            {
                "id": ["p1", "p2", "p3"],
                "name": ["甲厂", "乙厂", "丙厂"],
                "admin_code": ["429001", "429001", "429999"],
            },
            geometry=[
                shapely.Point(110.47, 30.47),
                shapely.box(110.54, 30.54, 110.56, 30.56),
                shapely.Point(111.0, 31.0),
            ],
            crs=4326,
        ),
    )


@pytest.fixture
def store(gpkg_store: Store) -> Store:
    fill(gpkg_store)
    return gpkg_store


def found(
    catalogue: Catalogue,
    rule: str | Rule,
    pairs: list[tuple[str, str | None]],
    value: float = 100.0,
    risk_class: str = "red",
) -> gpd.GeoDataFrame:
    layer = catalogue["chemical_plants"]
    chosen = layer.rule(rule) if isinstance(rule, str) else rule
    return findings_frame(
        chosen,
        layer,
        hazard_ids=[hazard for hazard, _ in pairs],
        geometries=[
            shapely.LineString([(110.47, 30.47), (110.48, 30.48 + i / 1000)])
            for i in range(len(pairs))
        ],
        values=[value] * len(pairs),
        thresholds=500.0,
        unit="m",
        risk_classes=risk_class,
        target_layer="protection_targets",
        target_ids=[target for _, target in pairs],
    )


def merge(
    store: Store, new: gpd.GeoDataFrame, run_id: str, now: datetime, **kw
) -> gpd.GeoDataFrame:
    merged = merge_findings(
        RuleContext(store), store.read("findings"), new, run_id=run_id, now=now, **kw
    )
    store.replace("findings", merged)
    return store.read("findings").set_index("id", drop=False)


def fid(hazard: str, target: str | None, rule: str = "plant_protective_distance") -> str:
    return finding_id(rule, "chemical_plants", hazard, "protection_targets", target)


def test_finding_ids_are_stable_and_tell_every_part_apart() -> None:
    base = ("r", "chemical_plants", "p1", "protection_targets", "t1")
    assert finding_id(*base) == finding_id(*base)
    others = [
        ("r2", *base[1:]),
        (base[0], "tailings_ponds", *base[2:]),
        (*base[:2], "p2", *base[3:]),
        (*base[:3], "buildings", base[4]),
        (*base[:4], "t2"),
        (*base[:4], None),
        ("r", "chemical_plants", "p1t", "protection_targets", "1"),  # no run-together
    ]
    assert len({finding_id(*base), *(finding_id(*o) for o in others)}) == len(others) + 1


def test_new_findings_enter_identified_with_area_phase_and_deadline(store: Store) -> None:
    new = found(
        store.catalogue, "plant_protective_distance", [("p1", "t1"), ("p2", "t3"), ("p3", "t9")]
    )
    rows = merge(store, new, "r1", JUNE_2020)
    assert len(rows) == 3
    first = rows.loc[fid("p1", "t1")]
    assert first["status"] == "identified" and bool(first["still_holds"])
    assert first["first_run"] == first["last_run"] == "r1"
    assert history_entries(first["history"]) == [
        {
            "at": "2020-06-01T08:00:00+00:00",
            "by": "georisk analyze",
            "from": None,
            "to": "identified",
            "note": "found by run r1",
        }
    ]
    # the finest area holding the hazard; outside every area, the hazard's own code
    assert rows.loc[fid("p1", "t1"), "admin_code"] == "429101"
    assert rows.loc[fid("p2", "t3"), "admin_code"] == "429001"
    assert rows.loc[fid("p3", "t9"), "admin_code"] == "429999"
    # the rule's deadline (2022-12-31) lies in the consolidation phase
    assert rows["deadline"].dt.date.unique().tolist() == [date(2022, 12, 31)]
    assert set(rows["phase"]) == {"consolidate"}
    assert first["lead_department"] == "应急管理部" and first["plan_item"] == "(三)"


@pytest.mark.parametrize(
    ("now", "deadline", "phase"),
    [
        (datetime(2020, 4, 10, tzinfo=UTC), date(2020, 4, 30), "mobilise"),
        (datetime(2020, 6, 1, tzinfo=UTC), date(2020, 12, 31), "survey_and_fix"),
        (datetime(2020, 12, 31, 23, 0, tzinfo=UTC), date(2020, 12, 31), "survey_and_fix"),
        (datetime(2021, 1, 1, tzinfo=UTC), date(2021, 12, 31), "concentrated_push"),
        (datetime(2022, 3, 1, tzinfo=UTC), date(2022, 12, 31), "consolidate"),
        (datetime(2019, 5, 1, tzinfo=UTC), date(2020, 4, 30), "mobilise"),  # before the plan
        (datetime(2023, 5, 1, tzinfo=UTC), None, None),  # after the plan: no plan deadline
    ],
)
def test_without_a_rule_deadline_the_phase_found_in_sets_it(
    store: Store, now: datetime, deadline: date | None, phase: str | None
) -> None:
    rule = store.catalogue["chemical_plants"].rule("plant_in_dense_area")
    undated = rule.model_copy(update={"deadline": None})
    rows = merge(store, found(store.catalogue, undated, [("p1", None)]), "r1", now)
    row = rows.iloc[0]
    assert (None if pd.isna(row["deadline"]) else row["deadline"].date()) == deadline
    assert row["phase"] == phase


def test_rerun_keeps_status_and_history_and_marks_vanished_ones(store: Store) -> None:
    catalogue = store.catalogue
    pairs = [("p1", "t1"), ("p1", "t2"), ("p2", "t3"), ("p2", "t4")]
    merge(store, found(catalogue, "plant_protective_distance", pairs), "r1", JUNE_2020)
    change_status(store, fid("p1", "t1"), "rectifying", by="张三", note="围墙加固", now=JUNE_2020)
    for step in ("rectifying", "rectified", "verified"):
        change_status(store, fid("p2", "t3"), step, by="李四", now=JUNE_2020)

    # run 2: p1-t1 still holds (closer now), p1-t2 and p2-t3 (verified) are gone, p2-t4 holds
    again = found(catalogue, "plant_protective_distance", [("p1", "t1"), ("p2", "t4")], value=80.0)
    rows = merge(store, again, "r2", JULY_2020)
    kept = rows.loc[fid("p1", "t1")]
    assert kept["status"] == "rectifying" and kept["value"] == 80.0
    assert (kept["first_run"], kept["last_run"]) == ("r1", "r2")
    steps = history_entries(kept["history"])
    assert [(s["by"], s["from"], s["to"]) for s in steps] == [
        ("georisk analyze", None, "identified"),
        ("张三", "identified", "rectifying"),
    ]
    assert steps[1]["note"] == "围墙加固"
    gone = rows.loc[fid("p1", "t2")]
    assert not gone["still_holds"] and gone["status"] == "identified" and gone["last_run"] == "r1"
    assert history_entries(gone["history"])[-1] == {
        "at": "2020-07-01T08:00:00+00:00",
        "by": "georisk analyze",
        "from": "identified",
        "to": "identified",
        "note": "no longer found by run r2",
    }
    verified = rows.loc[fid("p2", "t3")]
    assert not verified["still_holds"] and verified["status"] == "verified"
    assert history_entries(verified["history"])[-1]["to"] == "verified"  # no note on a verified one

    # run 3: still gone: no second note; p1-t2 back: noted, status as it was
    rows = merge(
        store, found(catalogue, "plant_protective_distance", [("p1", "t2")]), "r3", AUGUST_2020
    )
    assert [e["note"] for e in history_entries(rows.loc[fid("p1", "t2"), "history"])] == [
        "found by run r1",
        "no longer found by run r2",
        "found again by run r3",
    ]
    assert bool(rows.loc[fid("p1", "t2"), "still_holds"])
    assert len(history_entries(rows.loc[fid("p1", "t1"), "history"])) == 3  # + vanished in r3
    assert len(rows) == 4  # nothing is ever dropped


def test_a_run_of_other_rules_leaves_findings_alone(store: Store) -> None:
    catalogue = store.catalogue
    merge(store, found(catalogue, "plant_protective_distance", [("p1", "t1")]), "r1", JUNE_2020)
    rows = merge(
        store,
        found(catalogue, "plant_in_dense_area", [("p2", None)]),
        "r2",
        JULY_2020,
        rules=["plant_in_dense_area"],
    )
    untouched = rows.loc[fid("p1", "t1")]
    assert bool(untouched["still_holds"]) and untouched["last_run"] == "r1"
    assert len(history_entries(untouched["history"])) == 1


def test_one_key_twice_in_a_run_gets_two_stable_ids(store: Store) -> None:
    new = found(store.catalogue, "plant_protective_distance", [("p1", "t1"), ("p1", "t1")])
    first = merge(store, new, "r1", JUNE_2020)
    assert len(first) == 2 and fid("p1", "t1") in first.index
    second = merge(store, new, "r2", JULY_2020)
    assert sorted(first.index) == sorted(second.index)


@pytest.mark.parametrize(
    "path",
    [
        ["rectifying", "rectified", "verified"],
        ["closed"],
        ["rectifying", "closed"],
        ["rectifying", "rectified", "closed"],
    ],
)
def test_the_workflow_allows(store: Store, path: list[str]) -> None:
    merge(
        store, found(store.catalogue, "plant_protective_distance", [("p1", "t1")]), "r1", JUNE_2020
    )
    for i, to in enumerate(path):
        row = change_status(
            store, fid("p1", "t1"), to, by=f"user{i}", note=f"step {i}", now=JULY_2020
        )
        assert row.at[0, "status"] == to
    steps = history_entries(store.read("findings").at[0, "history"])
    assert [s["to"] for s in steps] == ["identified", *path]
    assert [s["by"] for s in steps[1:]] == [f"user{i}" for i in range(len(path))]
    assert all(s["at"] == "2020-07-01T08:00:00+00:00" for s in steps[1:])


@pytest.mark.parametrize(
    ("before", "to", "message"),
    [
        ([], "rectified", "is identified: it can move to rectifying or closed, not to rectified"),
        ([], "verified", "can move to rectifying or closed"),
        (["rectifying"], "identified", "is rectifying: it can move to rectified or closed"),
        (["rectifying", "rectified", "verified"], "closed", "is verified: it can move nowhere"),
        (["closed"], "rectifying", "is closed: it can move nowhere"),
        ([], "done", "unknown status 'done'; a finding is one of: identified, rectifying"),
    ],
)
def test_the_workflow_refuses(store: Store, before: list[str], to: str, message: str) -> None:
    merge(
        store, found(store.catalogue, "plant_protective_distance", [("p1", "t1")]), "r1", JUNE_2020
    )
    for step in before:
        change_status(store, fid("p1", "t1"), step, by="x")
    with pytest.raises(ListError, match=message):
        change_status(store, fid("p1", "t1"), to, by="x")
    assert len(history_entries(store.read("findings").at[0, "history"])) == 1 + len(before)


def test_a_status_change_needs_a_known_finding_and_a_name(store: Store) -> None:
    merge(
        store, found(store.catalogue, "plant_protective_distance", [("p1", "t1")]), "r1", JUNE_2020
    )
    with pytest.raises(ListError, match="no finding 'f-nope'"):
        change_status(store, "f-nope", "rectifying", by="x")
    with pytest.raises(ListError, match="who"):
        change_status(store, fid("p1", "t1"), "rectifying", by="  ")


def test_measures_one_per_area_and_plan_rule_keeping_their_status(store: Store) -> None:
    catalogue = store.catalogue
    new = pd.concat(
        [
            found(
                catalogue, "plant_protective_distance", [("p1", "t1"), ("p1", "t2"), ("p2", "t3")]
            ),
            found(catalogue, "plant_in_dense_area", [("p1", None)]),
            found(
                catalogue, "plant_population_rings", [("p2", "ring")]
            ),  # no plan item: no measure
        ],
        ignore_index=True,
    )
    merged = merge(store, gpd.GeoDataFrame(new, crs=4326), "r1", JUNE_2020)
    change_status(store, fid("p1", "t1"), "rectifying", by="x")
    change_status(store, fid("p1", "t2"), "closed", by="x", note="误报")
    ctx = RuleContext(store)
    measures = build_measures(ctx, store.read("findings"), now=JUNE_2020)
    store.replace("measures", measures)
    table = measures.set_index(["admin_code", "rule"])
    assert sorted(table.index) == [
        ("429001", "plant_protective_distance"),
        ("429101", "plant_in_dense_area"),
        ("429101", "plant_protective_distance"),
    ]
    township = table.loc[("429101", "plant_protective_distance")]
    assert township["findings_open"] == 1  # t1 rectifying (open), t2 closed
    assert township["status"] == "planned" and township["lead_department"] == "应急管理部"
    assert township["title"] == "北山镇：防护距离内的防护目标整治"
    assert township["deadline"].date() == date(2022, 12, 31)
    assert township.geometry.equals(shapely.box(110.45, 30.45, 110.5, 30.5).normalize()) or (
        township.geometry.symmetric_difference(shapely.box(110.45, 30.45, 110.5, 30.5)).area < 1e-12
    )
    assert len(merged) == 5

    measure = str(township["id"])
    change_measure_status(store, measure, "in_progress", by="王五", note="一城一策")
    with pytest.raises(ListError, match="is in_progress: it can move to done or closed"):
        change_measure_status(store, measure, "planned", by="王五")
    rebuilt = build_measures(RuleContext(store), store.read("findings"), now=JULY_2020)
    again = rebuilt.set_index("id").loc[measure]
    assert again["status"] == "in_progress"
    assert [e["to"] for e in history_entries(again["history"])] == ["planned", "in_progress"]


def test_progress_by_area_and_phase_with_overdue(store: Store) -> None:
    catalogue = store.catalogue
    rule = catalogue["chemical_plants"].rule("plant_in_dense_area")
    soon = rule.model_copy(update={"deadline": "2020-12-31"})
    new = pd.concat(
        [
            found(
                catalogue, "plant_protective_distance", [("p1", "t1"), ("p1", "t2"), ("p2", "t3")]
            ),
            found(catalogue, soon, [("p1", None), ("p2", None)]),
        ],
        ignore_index=True,
    )
    merge(store, gpd.GeoDataFrame(new, crs=4326), "r1", JUNE_2020)
    change_status(store, fid("p1", "t1"), "rectifying", by="x")
    for step in ("rectifying", "rectified"):
        change_status(store, fid("p2", "t3"), step, by="x")
    dense_p2 = finding_id(
        "plant_in_dense_area", "chemical_plants", "p2", "protection_targets", None
    )
    change_status(store, dense_p2, "closed", by="x")

    by_area = progress(store, "admin", today=date(2021, 1, 1))
    # 429101 (p1): t1 rectifying, t2 identified, dense identified (due 2020-12-31: overdue)
    # 429001 (p2): t3 rectified, dense closed
    assert by_area.loc[
        "429101", ["identified", "rectifying", "rectified", "total", "open", "overdue"]
    ].tolist() == [2, 1, 0, 3, 3, 1]
    assert by_area.loc["429101", "percent_rectified"] == 0.0
    assert by_area.loc["429001", ["rectified", "closed", "total", "open", "overdue"]].tolist() == [
        1,
        1,
        2,
        1,
        0,
    ]
    assert by_area.loc["429001", "percent_rectified"] == 100.0  # 1 of the 1 not closed
    assert by_area.loc["429001", "name"] == "清河区"
    assert by_area.loc["total", "total"] == 5 and by_area.loc["total", "overdue"] == 1
    assert by_area.loc["total", "percent_rectified"] == 25.0  # 1 of 4

    by_phase = progress(store, "phase", today=date(2023, 1, 1))
    assert list(by_phase.index) == ["survey_and_fix", "consolidate", "total"]  # plan order
    assert by_phase.loc["consolidate", "overdue"] == 2  # t1 rectifying, t2 identified
    assert by_phase.loc["survey_and_fix", "overdue"] == 1  # the closed one is not overdue

    late = overdue(store, date(2021, 1, 1))
    assert late["id"].tolist() == [
        finding_id("plant_in_dense_area", "chemical_plants", "p1", "protection_targets", None)
    ]
    assert overdue(store, date(2020, 12, 31)).empty  # due that day: not yet late
    assert len(overdue(store, date(2023, 1, 1))) == 3


# -- exports -----------------------------------------------------------------------------------


@pytest.fixture
def listed(store: Store) -> Store:
    catalogue = store.catalogue
    new = pd.concat(
        [
            found(catalogue, "plant_protective_distance", [("p1", "t1"), ("p2", "t3")]),
            found(catalogue, "plant_in_dense_area", [("p1", None)], risk_class="orange"),
        ],
        ignore_index=True,
    )
    merge(store, gpd.GeoDataFrame(new, crs=4326), "r1", JUNE_2020)
    change_status(store, fid("p1", "t1"), "rectifying", by="张三", note="已约谈企业", now=JULY_2020)
    store.replace(
        "measures", build_measures(RuleContext(store), store.read("findings"), now=JUNE_2020)
    )
    return store


def test_csv_export_reads_back_with_chinese_titles(listed: Store, tmp_path: Path) -> None:
    path = tmp_path / "findings.csv"
    assert export_findings(listed, path, "csv") == 3
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    table = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert list(table.columns[:3]) == ["编号", "规则", "规则类型"]
    assert {"整改状态", "处理记录", "风险等级", "整改期限", "经度", "纬度"} <= set(table.columns)
    row = table.set_index("编号").loc[fid("p1", "t1")]
    assert row["整改状态"] == "整改中" and row["风险等级"] == "红（重大风险）"
    assert row["处理记录"].splitlines() == [
        "2020-06-01 08:00 georisk analyze：— → 已排查（found by run r1）",
        "2020-07-01 08:00 张三：已排查 → 整改中（已约谈企业）",
    ]
    assert row["整改期限"] == "2022-12-31" and row["阶段"] == "巩固提升"
    assert row["最近一次分析仍成立"] == "是"
    assert float(row["经度"]) == pytest.approx(110.47, abs=0.011)
    # planners' order: by area, red before orange
    assert table["行政区划代码"].tolist() == ["429001", "429101", "429101"]
    assert table["风险等级"].tolist()[1:] == ["红（重大风险）", "橙（较大风险）"]


def test_csv_export_in_english_with_filters(listed: Store, tmp_path: Path) -> None:
    path = tmp_path / "findings-en.csv"
    count = export_findings(
        listed, path, "csv", ListFilter(status=["identified"], admin="429100"), lang="en"
    )
    table = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert count == len(table) == 1  # the dense-area finding of p1 in 429101
    assert (
        table.at[0, "Status"] == "identified"
        and table.at[0, "Administrative division code"] == "429101"
    )
    assert table.at[0, "Phase"] == "Consolidate"
    with pytest.raises(ValueError, match="unknown status done"):
        export_findings(listed, path, "csv", ListFilter(status=["done"]))
    overdue_only = ListFilter(overdue=True, today=date(2023, 1, 1))
    assert export_findings(listed, path, "csv", overdue_only) == 3
    assert (
        export_findings(listed, path, "csv", ListFilter(overdue=True, today=date(2021, 1, 1))) == 0
    )


def test_xlsx_export_has_both_lists_and_progress(listed: Store, tmp_path: Path) -> None:
    path = tmp_path / "lists.xlsx"
    assert export_findings(listed, path, "xlsx") == 3
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "隐患清单",
        "制度措施清单",
        "整改进度（按行政区）",
        "整改进度（按阶段）",
    ]
    sheet = book["隐患清单"]
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].value == "编号" and sheet["A1"].font.b
    assert sheet.auto_filter.ref.startswith("A1:")
    assert sheet.max_row == 4  # header + 3 findings
    widths = {cell.value: sheet.column_dimensions[cell.column_letter].width for cell in sheet[1]}
    assert widths["依据"] == 60  # long text: capped
    assert widths["编号"] >= 17  # 17-character ids fit
    history = [c.value for c in sheet[1]].index("处理记录") + 1
    assert sheet.cell(2, history).alignment.wrap_text or sheet.cell(3, history).alignment.wrap_text
    sheets = pd.read_excel(path, sheet_name=None, dtype=str)
    assert len(sheets["制度措施清单"]) == 3
    assert set(sheets["制度措施清单"]["状态"]) == {"待实施"}
    area = sheets["整改进度（按行政区）"].set_index("行政区划代码")
    assert area.loc["429101", ["名称", "整改中", "合计", "未销号"]].tolist() == [
        "北山镇",
        "1",
        "2",
        "2",
    ]
    assert area.loc["合计", "合计"] == "3"
    assert sheets["整改进度（按阶段）"]["阶段"].tolist() == ["巩固提升", "合计"]


def test_measures_export(listed: Store, tmp_path: Path) -> None:
    assert export_measures(listed, tmp_path / "m.csv", "csv", lang="en") == 3
    table = pd.read_csv(tmp_path / "m.csv", encoding="utf-8-sig")
    assert {"Measure", "Responsible unit", "Open findings", "Status"} <= set(table.columns)
    assert set(table["Status"]) == {"planned"}
    assert export_measures(listed, tmp_path / "m.xlsx", "xlsx") == 3
    assert openpyxl.load_workbook(tmp_path / "m.xlsx").sheetnames[0] == "制度措施清单"
    assert (
        export_measures(listed, tmp_path / "m.geojson", "geojson", ListFilter(admin="429001")) == 1
    )


def test_geojson_export_follows_rfc_7946(listed: Store, tmp_path: Path) -> None:
    path = tmp_path / "findings.geojson"
    assert export_findings(listed, path, "geojson") == 3
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection" and "crs" not in data
    feature = next(f for f in data["features"] if f["id"] == fid("p1", "t1"))
    props = feature["properties"]
    assert props["status"] == "rectifying" and props["deadline"] == "2022-12-31"
    assert [step["to"] for step in props["history"]] == ["identified", "rectifying"]
    assert props["still_holds"] is True and props["value"] == 100.0
    assert feature["geometry"]["type"] == "LineString"
    lon, lat = feature["geometry"]["coordinates"][0]
    assert (lon, lat) == pytest.approx((110.47, 30.47))
    measures = tmp_path / "measures.geojson"
    export_measures(listed, measures, "geojson")
    polygons = [
        shapely.geometry.shape(f["geometry"]) for f in json.loads(measures.read_text())["features"]
    ]
    assert all(shapely.is_ccw(p.exterior) for p in polygons)  # exterior rings counter-clockwise


def test_unknown_format(listed: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        export_findings(listed, tmp_path / "x.pdf", "pdf")  # type: ignore[arg-type]


def test_the_workflow_on_postgis_matches(postgis_store: Store) -> None:
    fill(postgis_store)
    pairs = [("p1", "t1"), ("p2", "t3")]
    merge(
        postgis_store,
        found(postgis_store.catalogue, "plant_protective_distance", pairs),
        "r1",
        JUNE_2020,
    )
    change_status(
        postgis_store,
        fid("p1", "t1"),
        "rectifying",
        by="张三",
        note='它\'s "quoted"',
        now=JULY_2020,
    )
    rows = merge(
        postgis_store,
        found(postgis_store.catalogue, "plant_protective_distance", pairs[:1]),
        "r2",
        AUGUST_2020,
    )
    kept = rows.loc[fid("p1", "t1")]
    assert kept["status"] == "rectifying" and kept["admin_code"] == "429101"
    assert history_entries(kept["history"])[1]["note"] == '它\'s "quoted"'
    assert not rows.loc[fid("p2", "t3"), "still_holds"]
    assert progress(postgis_store, "admin", today=date(2023, 1, 1)).loc["total", "overdue"] == 2
