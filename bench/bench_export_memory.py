"""Benchmark: peak memory of a layer exported as GeoJSON, 100,000 against 1,000,000 features.

Synthetic point plants (deterministic, clustered like a city around 110.6°E 30.55°N, five
attributes of four types) are loaded into the embedded GeoPackage store and into a throw-away
PostGIS database (``GEORISK_TEST_DATABASE_URL``, else the local server; ``--no-postgis`` skips
it), once at each size. For each store and size, each method runs in its own process, whose
peak resident memory is measured:

- ``HTTP download``: ``georisk serve`` (uvicorn) answers
  ``GET /collections/chemical_plants/download?f=geojson``, read by a streaming client into
  nothing; the server's peak (``VmHWM``, reset after a warm-up request) and its resident memory
  before the download;
- ``georisk export``: ``georisk export chemical_plants -f geojson -o FILE``; its peak
  (``wait4``) and the peak of the same command exporting nothing (the cost of starting up);
- peers on the same data: ``ogr2ogr -f GeoJSON`` (GDAL streams feature by feature: what flat
  memory looks like) and ``geopandas.read_file(…).to_file(…, driver="GeoJSON")`` (the whole
  layer in memory: what it costs not to stream).

Flat memory means the peak at 1,000,000 features is about the peak at 100,000 (ratio ≈ 1).
Throughput is given per CPU second of the measured process, as the machine may be shared.
Run:

    .venv/bin/python bench/bench_export_memory.py [--sizes 100000,1000000] [--no-postgis]

Not a test (pytest never collects it): it prints a table, and exits 1 when an export does not
hold every feature.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import shapely
from sqlalchemy.engine import make_url

from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.store.gpkg import GPKG_NAME, GeoPackageStore
from geo_service.store.models import GEOMETRY_COLUMN
from geo_service.store.postgis import PostGISStore, upgrade

LAYER = "chemical_plants"
MB = 2**20


@dataclass(frozen=True)
class Source:
    """One store holding the layer at one size."""

    store: str
    size: int
    env: dict[str, str]  # GEORISK_* variables that open it
    ogr: str  # the same data as GDAL names it
    geopandas: str  # Python that reads it whole into ``frame``


@dataclass(frozen=True)
class Measure:
    """One method's run on one source."""

    method: str
    peak: float  # MB
    base: float | None  # MB before the work (server) or with nothing to export (CLI)
    seconds: float  # wall
    cpu: float  # seconds of CPU of the measured process (the machine may be shared)
    written: int  # bytes written


def main() -> None:
    """Load the data, run every method on every source, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--no-postgis", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    catalogue = load_catalogue()
    with (
        tempfile.TemporaryDirectory(prefix="georisk-bench-export-") as tmp,
        _sources(Path(tmp), catalogue, sizes, args.no_postgis) as sources,
    ):
        print(f"\n{os.cpu_count()} cores; each method in its own process, one at a time")
        print(f"{'store':10} {'features':>9}  {'method':16} {'peak MB':>8} {'base MB':>8}", end="")
        print(f" {'wall s':>7} {'CPU s':>7} {'feat/CPU s':>10} {'MB out':>7}")
        results: dict[tuple[str, str, int], Measure] = {}
        for source in sources:
            out = Path(tmp) / "out.geojson"
            for measure in _methods(source, out):
                results[(source.store, measure.method, source.size)] = measure
                _print(source, measure)
                out.unlink(missing_ok=True)
        _print_ratios(results, sizes)


def _methods(source: Source, out: Path) -> Iterator[Measure]:
    yield http_download(source)
    yield cli_export(source, out)
    yield _peer("ogr2ogr", ["ogr2ogr", "-f", "GeoJSON", str(out), source.ogr, LAYER], out)
    code = f"{source.geopandas}\nframe.to_file({str(out)!r}, driver='GeoJSON')"
    yield _peer("geopandas", [sys.executable, "-c", code], out)


def http_download(source: Source) -> Measure:
    """The server's peak while one client streams the whole layer as GeoJSON."""
    port = _free_port()
    env = {**os.environ, **source.env}
    command = [sys.executable, "-m", "geo_service", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(base_url, server)
        url = f"{base_url}/collections/{LAYER}/download"
        warm = httpx.get(url, params={"f": "geojson", "bbox": "110.6,30.55,110.601,30.551"})
        warm.raise_for_status()  # imports and first queries done: not counted
        base = _status(server.pid, "VmRSS")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        start, cpu = time.perf_counter(), _cpu(server.pid)
        written, tail = 0, b""
        plain = {"Accept-Encoding": "identity"}  # the GeoJSON itself, not gzip (GZipMiddleware)
        with httpx.stream(
            "GET", url, params={"f": "geojson"}, headers=plain, timeout=None
        ) as response:
            response.raise_for_status()
            for block in response.iter_raw():
                written += len(block)
                tail = (tail + block)[-512:]
        seconds, cpu = time.perf_counter() - start, _cpu(server.pid) - cpu
        peak = _status(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    returned = re.search(rb'"numberReturned":(\d+)', tail)
    _check(source, "HTTP download", int(returned.group(1)) if returned else -1)
    return Measure("HTTP download", peak, base, seconds, cpu, written)


def cli_export(source: Source, out: Path) -> Measure:
    """``georisk export`` of the whole layer, against the same command exporting nothing."""
    command = [sys.executable, "-m", "geo_service", "export", LAYER, "-f", "geojson"]
    env = {**os.environ, **source.env}
    empty, _, _, _ = _run([*command, "-o", str(out), "--bbox", "0,0,0.001,0.001"], env)
    peak, seconds, cpu, printed = _run([*command, "-o", str(out)], env)
    counted = re.search(r": (\d+) features", printed)
    _check(source, "georisk export", int(counted.group(1)) if counted else -1)
    return Measure("georisk export", peak, empty, seconds, cpu, out.stat().st_size)


def _peer(method: str, command: list[str], out: Path) -> Measure:
    peak, seconds, cpu, _ = _run(command, dict(os.environ))
    return Measure(method, peak, None, seconds, cpu, out.stat().st_size)


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Peak resident MB, wall and CPU seconds, and standard output of one process.

    Linux keeps a process's peak across ``fork`` and ``exec``: a command started straight from
    this process (which holds the data) would report at least this process's size. A small
    launcher starts it instead and reports its ``wait4`` figures in a file.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as report:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report.name, *command],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{command[:4]} failed with exit code {done.returncode}")
        peak, cpu = report.read().split()
        return int(peak) * 1024 / MB, seconds, float(cpu), done.stdout


#: Runs argv[2:] as a child; writes its peak resident KiB and CPU seconds to the file argv[1].
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _check(source: Source, method: str, written: int) -> None:
    if written != source.size:
        raise SystemExit(f"{method} on {source.store}: {written} features, not {source.size}")


def plant_points(n: int, seed: int = 3) -> gpd.GeoDataFrame:
    """``n`` point plants clustered like a city, with text, integer, number and class fields."""
    rng = np.random.default_rng(seed)
    centres = np.array([[110.60, 30.55], [110.63, 30.56], [110.57, 30.53]])
    xy = centres[rng.integers(0, 3, n)] + rng.normal(0, 0.02, (n, 2)) * rng.exponential(1, (n, 1))
    return gpd.GeoDataFrame(
        {
            "id": [f"c{i:07d}" for i in range(n)],
            "name": [f"化工厂 {i}" for i in range(n)],
            "major_hazard_grade": rng.integers(1, 5, n),
            "size": np.array(["small", "medium", "large"])[rng.integers(0, 3, n)],
            "risk_score": np.round(rng.uniform(0, 100, n), 2),
            "risk_class": np.array(["red", "orange", "yellow", "blue"])[rng.integers(0, 4, n)],
        },
        geometry=shapely.points(xy),
        crs=4326,
    )


@contextmanager
def _sources(
    tmp: Path, catalogue: Catalogue, sizes: list[int], skip_postgis: bool
) -> Iterator[list[Source]]:
    """The layer at every size in the embedded store and (unless skipped) in PostGIS."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import create_database, drop_database  # the tests' throw-away databases

    sources, databases = [], []
    try:
        for size in sizes:
            print(f"loading {size:,} features…", file=sys.stderr)
            points = plant_points(size)
            data_dir = tmp / f"gpkg-{size}"
            GeoPackageStore(catalogue, data_dir).replace(LAYER, points)
            path = data_dir / GPKG_NAME
            read = f"import geopandas as gpd\nframe = gpd.read_file({str(path)!r}, layer={LAYER!r})"
            sources.append(
                Source("GeoPackage", size, {"GEORISK_DATA_DIR": str(data_dir)}, str(path), read)
            )
            if skip_postgis:
                continue
            url = create_database()
            databases.append(url)
            dsn = url.render_as_string(hide_password=False)
            upgrade(dsn, catalogue)
            with PostGISStore(catalogue, dsn) as store:
                store.replace(LAYER, points)
            read = (
                "import geopandas as gpd, sqlalchemy\n"
                f"engine = sqlalchemy.create_engine({dsn!r})\n"
                f"frame = gpd.read_postgis('SELECT * FROM {LAYER}', engine, "
                f"geom_col={GEOMETRY_COLUMN!r})"
            )
            env = {"GEORISK_DATA_DIR": str(data_dir), "GEORISK_DATABASE_URL": dsn}
            sources.append(Source("PostGIS", size, env, _ogr_postgres(dsn), read))
        sources.sort(key=lambda s: (s.store != "GeoPackage", s.size))
        yield sources
    finally:
        for url in databases:
            drop_database(url)


def _ogr_postgres(dsn: str) -> str:
    url = make_url(dsn)
    parts = {"dbname": url.database, "host": url.host, "port": url.port, "user": url.username}
    parts["password"] = url.password
    return "PG:" + " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def _print(source: Source, m: Measure) -> None:
    base = "" if m.base is None else f"{m.base:8.0f}"
    print(
        f"{source.store:10} {source.size:>9,}  {m.method:16} {m.peak:8.0f} {base:>8} "
        f"{m.seconds:7.1f} {m.cpu:7.1f} {source.size / max(m.cpu, 1e-3):10,.0f} "
        f"{m.written / MB:7.0f}"
    )


def _print_ratios(results: dict[tuple[str, str, int], Measure], sizes: list[int]) -> None:
    small, large = min(sizes), max(sizes)
    print(f"\npeak memory at {large:,} features / at {small:,} (flat memory: ≈ 1)")
    for (store, method, size), measure in results.items():
        if size == large and (store, method, small) in results:
            ratio = measure.peak / results[(store, method, small)].peak
            print(f"  {store:10} {method:16} {ratio:5.2f}")


def _status(pid: int, key: str) -> float:
    """A memory figure of ``/proc/<pid>/status`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise KeyError(key)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"georisk serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{base_url}/conformance").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("georisk serve did not start within 60 s")


if __name__ == "__main__":
    main()
