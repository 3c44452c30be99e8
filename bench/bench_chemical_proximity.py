"""Benchmark: the chemical-plant protective-distance core against the floor, in one run.

1,000,000 protection targets clustered like a city and 20,000 plants (synthetic, deterministic,
EPSG:4326 around 110.6°E 30.55°N), target categories and plant hazard classes mixed so that the
protective distance of a pair runs from 100 m to 1000 m (the catalogue's own table). Timed on the
same data, median of ``--runs`` interleaved runs:

- ``core``: ``protective_distance_pairs`` (what the ``protective_distance`` rule runs per metric
  zone): plant hazard classes and target categories from the frames' attributes, every pair with
  its distance and threshold, red/orange — on frames already in the metric CRS (EPSG:4546).
- ``core from EPSG:4326``: ``protective_distance_by_zone``, what the rule runs on its EPSG:4326
  frames: the plants grouped by metric zone, the targets near them projected, then the core.
- ``cKDTree counts`` — the floor: one tree per target category, ``query_ball_point`` with each
  plant's distance for that category, ``return_length=True``, ``workers=2``; counts only.
- ``geopandas sjoin``: ``sjoin(predicate="dwithin")`` per (hazard class, category) with that
  pair's distance, the tree on the plants' side.
- ``PostGIS ST_DWithin``: the frames loaded by COPY into a throw-away database (GiST indexes,
  clustered, analysed), one query joining a (class, category, distance) table; skipped with a
  note when no server answers.

Every method must find the same number of pairs. Run:

    .venv/bin/python bench/bench_chemical_proximity.py [--small] [--runs 3] [--no-postgis]

Not a test (pytest never collects it): it prints a table and exits 1 when the counts disagree.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy.spatial import cKDTree

from geo_service.catalogue import load_catalogue
from geo_service.risk.rules.chemical import (
    HAZARD_CLASSES,
    plant_hazard_class,
    protective_distance_by_zone,
    protective_distance_pairs,
)

CENTRE = (110.6, 30.55)
METRIC = pyproj.CRS.from_epsg(4546)  # CGCS2000 3° GK, central meridian 111°E
TO_METRIC = pyproj.Transformer.from_crs(4326, METRIC, always_xy=True)
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 20200401

# share of targets per category (residential areas dominate, "other" is the small stuff)
CATEGORY_SHARE = {
    "school": 0.08,
    "kindergarten": 0.06,
    "hospital": 0.03,
    "elderly_home": 0.03,
    "residential": 0.45,
    "crowded_place": 0.08,
    "government": 0.03,
    "water_intake": 0.02,
    "other": 0.22,
}
# satellite towns: offset east, north (m), spread σ (m)
TOWNS = [
    (14_000, 6_000, 1_500),
    (-12_000, -7_000, 1_800),
    (5_000, -15_000, 1_300),
    (-16_000, 11_000, 1_200),
    (2_000, 17_000, 1_400),
]
HALF_EXTENT = 25_000.0


@dataclass
class Data:
    plants: gpd.GeoDataFrame  # EPSG:4326
    targets: gpd.GeoDataFrame
    plants_m: gpd.GeoDataFrame  # EPSG:4546
    targets_m: gpd.GeoDataFrame
    params: dict[str, Any]
    # plain arrays for the floor methods, prepared outside their timing
    p_xy: np.ndarray
    t_xy: np.ndarray
    p_class: np.ndarray
    t_cat: np.ndarray
    table: np.ndarray  # hazard class × category, metres
    categories: list[str]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="100,000 targets × 2,000 plants")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="server for the throw-away database")
    args = parser.parse_args()
    n_targets, n_plants = (100_000, 2_000) if args.small else (1_000_000, 20_000)

    started = time.perf_counter()
    data = make_data(n_targets, n_plants)
    print(
        f"data: {n_targets:,} targets × {n_plants:,} plants, "
        f"made in {time.perf_counter() - started:.1f} s"
    )
    methods: dict[str, Callable[[], int]] = {
        "core (metric frames)": lambda: core(data),
        "core from EPSG:4326": lambda: core_from_4326(data),
        "cKDTree counts (floor)": lambda: ckdtree_counts(data),
        "geopandas sjoin dwithin": lambda: sjoin_counts(data),
    }
    database = None
    if not args.no_postgis:
        database = PostGIS.open(args.dsn, data)
        if database is not None:
            methods["PostGIS ST_DWithin (GiST)"] = database.count
    try:
        times, counts = run(methods, args.runs)
    finally:
        if database is not None:
            database.close()
    return report(times, counts, n_targets, n_plants)


# -- data ---------------------------------------------------------------------------------------


def make_data(n_targets: int, n_plants: int) -> Data:
    rng = np.random.default_rng(SEED)
    to_metric = pyproj.Transformer.from_crs(4326, METRIC, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(METRIC, 4326, always_xy=True)
    cx, cy = to_metric.transform(*CENTRE)

    t_off = _city(rng, n_targets, core=(0.60, 4_000), towns=0.05, town_scale=1.0, rural=0.15)
    p_off = _city(rng, n_plants, core=(0.35, 7_000), towns=0.05, town_scale=1.6, rural=0.40)
    t_lon, t_lat = to_lonlat.transform(cx + t_off[:, 0], cy + t_off[:, 1])
    p_lon, p_lat = to_lonlat.transform(cx + p_off[:, 0], cy + p_off[:, 1])

    names = list(CATEGORY_SHARE)
    share = np.array(list(CATEGORY_SHARE.values()))
    category = np.asarray(names, dtype=object)[
        rng.choice(len(names), n_targets, p=share / share.sum())
    ]
    targets = gpd.GeoDataFrame(
        {
            "id": np.char.add("t", np.arange(n_targets).astype(str)).astype(object),
            "category": category,
        },
        geometry=shapely.points(t_lon, t_lat),
        crs=4326,
    )
    plants = gpd.GeoDataFrame(
        {
            "id": np.char.add("p", np.arange(n_plants).astype(str)).astype(object),
            **_plant_attributes(rng, n_plants),
        },
        geometry=shapely.points(p_lon, p_lat),
        crs=4326,
    )

    params = dict(load_catalogue()["chemical_plants"].rule("plant_protective_distance").params)
    plants_m, targets_m = plants.to_crs(METRIC), targets.to_crs(METRIC)
    config = params["distances_m"]
    table = np.array([[float(config[h][c]) for c in names] for h in HAZARD_CLASSES])
    return Data(
        plants,
        targets,
        plants_m,
        targets_m,
        params,
        p_xy=shapely.get_coordinates(plants_m.geometry.values),
        t_xy=shapely.get_coordinates(targets_m.geometry.values),
        p_class=plant_hazard_class(plants, params),
        t_cat=pd.Categorical(category, categories=names).codes.astype(np.intp),
        table=table,
        categories=names,
    )


def _city(
    rng: np.random.Generator,
    n: int,
    *,
    core: tuple[float, float],
    towns: float,
    town_scale: float,
    rural: float,
) -> np.ndarray:
    """Offsets (m): a Gaussian core, five satellite towns, and a rural scatter."""
    shares = np.array([core[0], *([towns] * len(TOWNS)), rural])
    counts = rng.multinomial(n, shares / shares.sum())
    parts = [rng.normal(0, core[1], (counts[0], 2))]
    for (east, north, spread), m in zip(TOWNS, counts[1:-1], strict=True):
        parts.append(rng.normal(0, spread * town_scale, (m, 2)) + np.array([east, north]))
    parts.append(rng.uniform(-HALF_EXTENT, HALF_EXTENT, (counts[-1], 2)))
    out = np.concatenate(parts)
    rng.shuffle(out)
    return out


def _plant_attributes(rng: np.random.Generator, n: int) -> dict[str, Any]:
    severe = ["nitration", "chlorination", "fluorination", "diazotization", "peroxidation"]
    other = ["hydrogenation", "oxidation", "sulfonation", "polymerization", "ammoniation"]
    has_severe = rng.random(n) < 0.22
    picks_severe = rng.choice(severe, n)
    picks_other = rng.choice(other, n)
    processes = [
        [str(o), str(s)] if hs else [str(o)]
        for o, s, hs in zip(picks_other, picks_severe, has_severe, strict=True)
    ]
    grade = pd.array(np.where(rng.random(n) < 0.5, rng.integers(1, 5, n), 0), dtype="Int64")
    grade[grade == 0] = pd.NA
    status = rng.choice(["pending", "in_progress", "converted_in_place", None], n)
    return {"processes": processes, "major_hazard_grade": grade, "relocation_status": status}


# -- the methods --------------------------------------------------------------------------------


def core(data: Data) -> int:
    return len(protective_distance_pairs(data.plants_m, data.targets_m, data.params).pairs)


def core_from_4326(data: Data) -> int:
    zones = protective_distance_by_zone(data.plants, data.targets, data.params)
    return sum(len(zone.found.pairs) for zone in zones)


def ckdtree_counts(data: Data) -> int:
    """The floor: per category, a tree on its targets, each plant's distance as the radius."""
    total = 0
    checked = data.p_class >= 0
    xy, cls = data.p_xy[checked], data.p_class[checked]
    for c in range(len(data.categories)):
        tree = cKDTree(data.t_xy[data.t_cat == c], balanced_tree=False, compact_nodes=False)
        radius = data.table[cls, c]
        total += int(tree.query_ball_point(xy, radius, return_length=True, workers=2).sum())
    return total


def sjoin_counts(data: Data) -> int:
    total = 0
    for k in range(len(HAZARD_CLASSES)):
        plants = data.plants_m[data.p_class == k][["geometry"]]
        for c in range(len(data.categories)):
            targets = data.targets_m[data.t_cat == c][["geometry"]]
            joined = gpd.sjoin(
                targets, plants, predicate="dwithin", distance=float(data.table[k, c])
            )
            total += len(joined)
    return total


class PostGIS:
    """A throw-away database with the frames loaded by COPY, dropped on close."""

    def __init__(self, dsn: str, name: str) -> None:
        import psycopg

        self.dsn, self.name = dsn, name
        self.conn = psycopg.connect(_with_database(dsn, name), autocommit=True)

    @classmethod
    def open(cls, dsn: str, data: Data) -> PostGIS | None:
        import psycopg

        name = f"georisk_bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            print(f"note: PostGIS part skipped — no server at {dsn}: {str(exc).strip()}")
            return None
        database = cls(dsn, name)
        try:
            started = time.perf_counter()
            database.load(data)
            print(
                f"PostGIS: loaded by COPY, indexed and clustered in "
                f"{time.perf_counter() - started:.1f} s"
            )
        except Exception:
            database.close()
            raise
        return database

    def load(self, data: Data) -> None:
        srid = METRIC.to_epsg()
        run = self.conn.execute
        run("CREATE EXTENSION postgis")
        run(f"CREATE TABLE plants (id int, cls int, geom geometry(Point, {srid}))")
        run(f"CREATE TABLE targets (id int, cat int, geom geometry(Point, {srid}))")
        run("CREATE TABLE distances (cls int, cat int, d float8)")
        self._copy("plants", data.p_class, data.plants_m.geometry.values)
        self._copy("targets", data.t_cat, data.targets_m.geometry.values)
        with self.conn.cursor() as cur, cur.copy("COPY distances (cls, cat, d) FROM STDIN") as cp:
            for k in range(data.table.shape[0]):
                for c in range(data.table.shape[1]):
                    cp.write_row((k, c, float(data.table[k, c])))
        for table in ("plants", "targets"):
            run(f"CREATE INDEX {table}_geom ON {table} USING gist (geom)")
            run(f"CLUSTER {table} USING {table}_geom")
            run(f"ANALYZE {table}")
        run("ANALYZE distances")

    def _copy(self, table: str, codes: np.ndarray, geoms: np.ndarray) -> None:
        ewkb = shapely.to_wkb(
            shapely.set_srid(geoms, METRIC.to_epsg()), hex=True, include_srid=True
        )
        frame = pd.DataFrame({"id": np.arange(len(codes)), "code": codes, "geom": ewkb})
        frame = frame[frame["code"] >= 0]
        buffer = io.StringIO()
        frame.to_csv(buffer, sep="\t", header=False, index=False)
        column = "cls" if table == "plants" else "cat"
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {table} (id, {column}, geom) FROM STDIN") as cp,
        ):
            cp.write(buffer.getvalue())

    def count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM plants p JOIN distances d ON d.cls = p.cls "
            "JOIN targets t ON t.cat = d.cat AND ST_DWithin(t.geom, p.geom, d.d)"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        import psycopg

        self.conn.close()
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


# -- running and reporting ----------------------------------------------------------------------


def run(
    methods: dict[str, Callable[[], int]], runs: int
) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, set[int]]]:
    """Each method ``runs`` times, interleaved so the ratios share the machine's noise.

    Keeps wall seconds, this process's CPU seconds (user + system) and the system part alone
    (page faults, mostly). PostGIS works in the server's processes: its CPU is not seen here.
    """
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in methods}
    counts: dict[str, set[int]] = {name: set() for name in methods}
    for i in range(runs):
        for name, method in methods.items():
            (user0, sys0), started = _cpu(), time.perf_counter()
            found = method()
            wall, (user1, sys1) = time.perf_counter() - started, _cpu()
            cpu, system = user1 + sys1 - user0 - sys0, sys1 - sys0
            times[name].append((wall, cpu, system))
            counts[name].add(found)
            print(
                f"  run {i + 1}: {name:<28} {wall:7.3f} s  (cpu {cpu:6.3f} s, sys {system:6.3f} s)"
                f"  {found:,} pairs"
            )
    return times, counts


def report(
    times: dict[str, list[tuple[float, float, float]]],
    counts: dict[str, set[int]],
    n_targets: int,
    n_plants: int,
) -> int:
    def median(name: str, which: int) -> float:
        return statistics.median(t[which] for t in times[name])

    floor_name = "cKDTree counts (floor)"
    floor, floor_cpu = median(floor_name, 0), median(floor_name, 1)
    runs = len(times[floor_name])
    print(
        f"\n{n_targets:,} targets × {n_plants:,} plants, median of {runs} runs, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| method | median s | × floor | CPU s | of it sys | CPU × floor | pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in times:
        wall, cpu, system = median(name, 0), median(name, 1), median(name, 2)
        in_server = name.startswith("PostGIS")
        cpu_cells = (
            "— | — | —" if in_server else f"{cpu:.3f} | {system:.3f} | {cpu / floor_cpu:.2f}"
        )
        found = ", ".join(f"{c:,}" for c in sorted(counts[name]))
        print(f"| {name} | {wall:.3f} | {wall / floor:.2f} | {cpu_cells} | {found} |")
    distinct = set().union(*counts.values())
    if len(distinct) != 1:
        print(f"\nCOUNTS DISAGREE: {sorted(distinct)}")
        return 1
    print(f"\nall methods agree: {distinct.pop():,} pairs")
    return 0


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
