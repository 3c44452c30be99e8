"""The analysis commands as a user runs them: real processes, exit codes, one-line errors.

Until ``geo_service.cli`` registers them, the commands are added to the group here, the way
``cli.py`` will (the same code path once registered).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

RUN = (
    "from geo_service.cli import cli, main\n"
    "from geo_service.cli_analysis import ANALYSIS_COMMANDS\n"
    "for command in ANALYSIS_COMMANDS:\n"
    "    if command.name not in cli.commands:\n"
    "        cli.add_command(command)\n"
    "main()\n"
)
RULES = "rail_protection_zone,rail_mining_approval,rail_road_over"


def georisk(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEORISK_DATA_DIR": str(data_dir)}
    env.pop("GEORISK_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli-analysis") / "data"
    built = georisk("demo", "--no-serve", "--no-analyze", data_dir=data)
    assert built.returncode == 0, built.stderr
    result = georisk("analyze", "--rules", RULES, data_dir=data)
    assert result.returncode == 0, result.stderr
    assert "Analysing" in result.stderr  # the progress bar
    assert "findings" in result.stdout and "rail_protection_zone" in result.stdout
    assert "by class: red" in result.stdout
    return data


def test_help_on_every_analysis_command(tmp_path: Path) -> None:
    for command in (
        ["analyze"],
        ["export"],
        ["findings"],
        ["findings", "status"],
        ["measures", "status"],
        ["rules"],
    ):
        result = georisk(*command, "--help", data_dir=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: " in result.stdout


def test_rules_lists_every_rule_with_kind_confidence_and_params(tmp_path: Path) -> None:
    from geo_service.catalogue import load_catalogue

    listing = georisk("rules", data_dir=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    for layer, rule in load_catalogue().rules:
        line = next(line for line in lines if line.startswith(rule.id + " "))
        assert layer.id in line and rule.kind in line and f"[{rule.confidence}]" in line
    assert any('"path_length_m": 1000' in line for line in lines)  # the parameters
    as_json = json.loads(georisk("rules", "--json", data_dir=tmp_path).stdout)
    headtop = next(r for r in as_json if r["id"] == "headtop_downstream")
    assert headtop["params"]["path_length_m"] == 1000 and headtop["confidence"] == "V"


def test_export_every_format(analysed: Path, tmp_path: Path) -> None:
    for fmt in ("csv", "xlsx", "geojson"):
        out = tmp_path / f"findings.{fmt}"
        result = georisk("export", "findings", "-f", fmt, "-o", str(out), data_dir=analysed)
        assert result.returncode == 0, result.stderr
        assert f"{out}: " in result.stdout and out.stat().st_size > 0
    table = pd.read_csv(tmp_path / "findings.csv", encoding="utf-8-sig")
    assert set(table["规则"]) <= set(RULES.split(",")) and len(table) > 0
    book = openpyxl.load_workbook(tmp_path / "findings.xlsx")
    assert book.sheetnames[:2] == ["隐患清单", "制度措施清单"]
    features = json.loads((tmp_path / "findings.geojson").read_text())["features"]
    assert len(features) == len(table)
    english = tmp_path / "measures.csv"
    result = georisk(
        "export", "measures", "-f", "csv", "-o", str(english), "--lang", "en", data_dir=analysed
    )
    assert result.returncode == 0, result.stderr
    assert "Measure" in pd.read_csv(english, encoding="utf-8-sig").columns


def test_export_filters(analysed: Path, tmp_path: Path) -> None:
    out = tmp_path / "late.csv"
    late = georisk(
        "export",
        "findings",
        "-f",
        "csv",
        "-o",
        str(out),
        "--overdue",
        "--today",
        "2023-01-01",
        data_dir=analysed,
    )
    assert late.returncode == 0, late.stderr
    everything = georisk(
        "export", "findings", "-f", "csv", "-o", str(tmp_path / "all.csv"), data_dir=analysed
    )
    assert everything.returncode == 0
    assert len(pd.read_csv(out, encoding="utf-8-sig")) > 0
    none = georisk(
        "export",
        "findings",
        "-f",
        "csv",
        "-o",
        str(out),
        "--overdue",
        "--today",
        "2020-01-01",
        data_dir=analysed,
    )
    assert ": 0 findings" in none.stdout
    bad = georisk("export", "findings", "-o", str(out), "--status", "done", data_dir=analysed)
    assert bad.returncode == 2 and "unknown status done" in bad.stderr


def test_finding_status_moves_and_refusals(analysed: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    georisk("export", "findings", "-f", "csv", "-o", str(out), data_dir=analysed)
    finding = str(pd.read_csv(out, encoding="utf-8-sig")["编号"].iloc[0])
    moved = georisk(
        "findings",
        "status",
        finding,
        "rectifying",
        "--by",
        "张三",
        "--note",
        "已约谈",
        data_dir=analysed,
    )
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"{finding}: rectifying"
    refused = georisk("findings", "status", finding, "verified", "--by", "张三", data_dir=analysed)
    assert refused.returncode == 2
    assert "it can move to rectified or closed, not to verified" in refused.stderr
    unknown = georisk("findings", "status", "f-nope", "closed", "--by", "x", data_dir=analysed)
    assert unknown.returncode == 2 and "no finding 'f-nope'" in unknown.stderr
    georisk(
        "export",
        "findings",
        "-f",
        "csv",
        "-o",
        str(out),
        "--status",
        "rectifying",
        data_dir=analysed,
    )
    row = pd.read_csv(out, encoding="utf-8-sig").iloc[0]
    assert row["编号"] == finding and "张三：已排查 → 整改中（已约谈）" in row["处理记录"]
    # a re-run keeps the status
    again = georisk("-q", "analyze", "--rules", RULES, data_dir=analysed)
    assert again.returncode == 0, again.stderr
    georisk(
        "export",
        "findings",
        "-f",
        "csv",
        "-o",
        str(out),
        "--status",
        "rectifying",
        data_dir=analysed,
    )
    assert pd.read_csv(out, encoding="utf-8-sig")["编号"].tolist() == [finding]


def test_measure_status(analysed: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    georisk("export", "measures", "-f", "csv", "-o", str(out), "--lang", "en", data_dir=analysed)
    measure = str(pd.read_csv(out, encoding="utf-8-sig")["ID"].iloc[0])
    moved = georisk("measures", "status", measure, "in_progress", "--by", "王五", data_dir=analysed)
    assert moved.returncode == 0 and moved.stdout.strip() == f"{measure}: in_progress"


def test_analyze_refuses_an_unknown_rule(analysed: Path) -> None:
    result = georisk("analyze", "--rules", "no_such_rule", data_dir=analysed)
    assert result.returncode == 2
    assert "unknown rules: no_such_rule" in result.stderr
