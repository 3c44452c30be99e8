"""The georisk command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def georisk(
    *args: str, data_dir: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEORISK_DATA_DIR": str(data_dir)}
    env.pop("GEORISK_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "geo_service", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def plants_file(tmp_path: Path) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"id": f"p{i}", "name": f"厂{i}", "size": "small"},
            "geometry": {"type": "Point", "coordinates": [110.6 + i / 100, 30.55]},
        }
        for i in range(3)
    ]
    path = tmp_path / "plants.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_help_on_every_command(tmp_path: Path) -> None:
    for command in (
        [],
        ["import"],
        ["validate"],
        ["import-osm"],
        ["demo"],
        ["serve"],
        ["layers"],
        ["db", "upgrade"],
    ):
        result = georisk(*command, "--help", data_dir=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: " in result.stdout


def test_demo_builds_and_analyses_the_region(tmp_path: Path) -> None:
    done = georisk("demo", "--no-serve", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^chemical_plants\s+40$", done.stdout, re.M)
    found = re.search(r": (\d+) findings$", done.stdout, re.M)
    assert found and int(found.group(1)) > 0
    listing = georisk("layers", data_dir=tmp_path).stdout
    assert re.search(rf"^findings\s+vector\s+{found.group(1)} features", listing, re.M)
    assert re.search(r"^risk_surface\s+raster\s+stored", listing, re.M)


def test_import_then_layers_then_reimport(tmp_path: Path, plants_file: Path) -> None:
    data = tmp_path / "data"
    first = georisk("import", "chemical_plants", str(plants_file), data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "3 read, 3 valid; 3 new, 0 updated in chemical_plants" in first.stdout
    assert (data / "georisk.gpkg").exists()
    again = georisk("import", "chemical_plants", str(plants_file), data_dir=data)
    assert "0 new, 3 updated" in again.stdout
    listing = georisk("layers", data_dir=data)
    assert any(
        line.startswith("chemical_plants") and "3 features" in line
        for line in listing.stdout.splitlines()
    )


def test_data_errors_exit_1_with_one_line_each_and_nothing_written(
    tmp_path: Path, plants_file: Path
) -> None:
    bad = json.loads(plants_file.read_text())
    bad["features"][1]["properties"]["size"] = "giant"
    plants_file.write_text(json.dumps(bad))
    data = tmp_path / "data"
    result = georisk("import", "chemical_plants", str(plants_file), data_dir=data)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {plants_file}: feature 1 (id p1), field size: not one of small, medium, large [value: giant]"
    ]
    assert "nothing written" in result.stdout
    assert not (data / "georisk.gpkg").exists()
    assert georisk("validate", "chemical_plants", str(plants_file), data_dir=data).returncode == 1


def test_skip_invalid_exits_0_and_writes_rejects(tmp_path: Path, plants_file: Path) -> None:
    bad = json.loads(plants_file.read_text())
    bad["features"][1]["geometry"]["coordinates"] = [999, 30]
    plants_file.write_text(json.dumps(bad))
    result = georisk(
        "-q",
        "import",
        "chemical_plants",
        str(plants_file),
        "--skip-invalid",
        data_dir=tmp_path / "d",
    )
    assert result.returncode == 0
    assert "out of range" in result.stderr
    assert (plants_file.parent / "plants.rejects.csv").exists()


def test_usage_errors_exit_2(tmp_path: Path, plants_file: Path) -> None:
    unknown = georisk("import", "no_such_layer", str(plants_file), data_dir=tmp_path)
    assert unknown.returncode == 2 and "unknown layer 'no_such_layer'" in unknown.stderr
    assert georisk("import", data_dir=tmp_path).returncode == 2
    assert georisk("frobnicate", data_dir=tmp_path).returncode == 2
    raster = georisk("validate", "dem", str(plants_file), data_dir=tmp_path)
    assert raster.returncode == 2 and "raster layer" in raster.stderr


def test_unexpected_failures_are_one_line_unless_verbose(tmp_path: Path, plants_file: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    quiet = georisk("import", "chemical_plants", str(plants_file), data_dir=blocker)
    assert quiet.returncode == 3
    assert len(quiet.stderr.strip().splitlines()) == 1 and "Traceback" not in quiet.stderr
    loud = georisk("-v", "import", "chemical_plants", str(plants_file), data_dir=blocker)
    assert "Traceback" in loud.stderr


def test_unreachable_postgis_is_one_line_without_database_text(tmp_path: Path) -> None:
    env = {**os.environ, "GEORISK_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-m", "geo_service", "layers"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "error: could not count layer admin_areas: the PostGIS database cannot be reached "
        "(check GEORISK_DATABASE_URL and that the server is running)"
    ]
