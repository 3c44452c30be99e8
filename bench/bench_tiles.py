"""Benchmark: vector tiles of the demo region (清河市) from both stores, and a dense layer.

The demo region is built into a temporary GeoPackage store and copied into a throw-away PostGIS
database (``GEORISK_TEST_DATABASE_URL``, else the local server; ``--no-postgis`` skips it).
For each store, median of ``--runs`` passes:

- ``z14``: every z14 tile of the region, for every vector layer that has one (the tiles a map
  asks for when zoomed in), through ``Store.tile`` (no cache): tiles per second;
- ``z12 dense``: the demo's densest z12 tile (buildings of the city core) made again and again;
- ``z12 200k``: the densest z12 tile of 200,000 synthetic points clustered like a city (the tile
  thinned to one point per 64-unit cell, ``count`` summing to the truth);
- ``HTTP z14 cold / warm / 304``: the same z14 tiles through the web service: cache empty,
  cache full, and revalidation with the ETag.

Run:

    .venv/bin/python bench/bench_tiles.py [--runs 3] [--no-postgis]

Not a test (pytest never collects it): it prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import shapely
from fastapi.testclient import TestClient

from geo_service.api import create_app
from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.demo import build_demo
from geo_service.settings import Settings
from geo_service.store.base import Store
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore, upgrade
from geo_service.tiling import TILE_MATRIX_SET, TileAddress


def main() -> None:
    """Build the data, time each case for each store, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgis", action="store_true")
    args = parser.parse_args()
    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory(prefix="georisk-bench-tiles-") as tmp:
        demo_dir, dense_dir = Path(tmp) / "demo", Path(tmp) / "dense"
        print("building the demo region…", file=sys.stderr)
        demo = GeoPackageStore(catalogue, demo_dir)
        build_demo(demo)
        dense = GeoPackageStore(catalogue, dense_dir)
        points = city_points(200_000)
        dense.replace("chemical_plants", points)
        stores: list[tuple[str, Settings, Settings]] = [
            ("GeoPackage", Settings(data_dir=demo_dir), Settings(data_dir=dense_dir))
        ]
        with _postgis(args.no_postgis, catalogue, demo, points) as urls:
            if urls:
                stores.append(
                    (
                        "PostGIS",
                        Settings(data_dir=demo_dir, database_url=urls[0]),
                        Settings(data_dir=dense_dir, database_url=urls[1]),
                    )
                )
            for name, demo_settings, dense_settings in stores:
                run(name, catalogue, demo_settings, dense_settings, args.runs)


def run(
    name: str, catalogue: Catalogue, demo_settings: Settings, dense_settings: Settings, runs: int
) -> None:
    """Time every case on one store and print a line each."""
    store = _open(catalogue, demo_settings)
    dense = _open(catalogue, dense_settings)
    z14 = [
        (layer.id, tile)
        for layer in catalogue.vector_layers
        if (box := store.extent(layer.id)) is not None
        for tile in _tiles(box, 14)
    ]
    core = _densest(store, "buildings", 12)
    heavy = _densest(dense, "chemical_plants", 12)
    data = dense.tile("chemical_plants", heavy.z, heavy.x, heavy.y)
    features = mapbox_vector_tile.decode(data)["chemical_plants"]["features"]
    counted = sum(f["properties"].get("count", 1) for f in features)
    print(f"\n{name}: {len(z14)} z14 tiles over {len(catalogue.vector_layers)} layers")
    _report("z14", len(z14), runs, lambda: [store.tile(lid, *_zxy(t)) for lid, t in z14])
    _report(
        "z12 dense (buildings)",
        20,
        runs,
        lambda: [store.tile("buildings", *_zxy(core)) for _ in range(20)],
    )
    _report(
        "z12 200k points",
        5,
        runs,
        lambda: [dense.tile("chemical_plants", *_zxy(heavy)) for _ in range(5)],
    )
    print(f"    that tile: {len(features):,} features for {counted:,} points, {len(data):,} bytes")
    with TestClient(create_app(demo_settings)) as client:
        urls = [f"/collections/{lid}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for lid, t in z14]
        cache = client.app.state.tile_cache  # type: ignore[attr-defined]

        def cold() -> None:
            cache.clear()
            for url in urls:
                client.get(url)

        etags = {url: client.get(url).headers["etag"] for url in urls}
        _report("HTTP z14 cold", len(urls), runs, cold)
        _report("HTTP z14 warm (cached)", len(urls), runs, lambda: [client.get(u) for u in urls])
        _report(
            "HTTP z14 304",
            len(urls),
            runs,
            lambda: [client.get(u, headers={"If-None-Match": etags[u]}) for u in urls],
        )
    store.close()
    dense.close()


def city_points(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """``n`` points clustered like a city around the demo region's core."""
    rng = np.random.default_rng(seed)
    centres = np.array([[110.60, 30.55], [110.63, 30.56], [110.57, 30.53]])
    which = rng.integers(0, len(centres), n)
    xy = centres[which] + rng.normal(0, 0.01, (n, 2)) * rng.exponential(1.0, (n, 1))
    classes = np.array(["red", "orange", "yellow", "blue"])[rng.integers(0, 4, n)]
    return gpd.GeoDataFrame(
        {"id": [f"c{i:07d}" for i in range(n)], "name": ["厂"] * n, "risk_class": classes},
        geometry=shapely.points(xy),
        crs=4326,
    )


def _report(label: str, tiles: int, runs: int, work: Callable[[], object]) -> None:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"  {label:28} {tiles / median:9.1f} tiles/s   ({median / tiles * 1000:7.2f} ms/tile)")


def _densest(store: Store, layer_id: str, zoom: int) -> TileAddress:
    """The tile of ``zoom`` standing for the most features (thinned ones counted)."""
    box = store.extent(layer_id)
    assert box is not None
    return max(_tiles(box, zoom), key=lambda t: _represented(store.tile(layer_id, *_zxy(t))))


def _represented(data: bytes) -> int:
    layers = mapbox_vector_tile.decode(data) if data else {}
    return sum(f["properties"].get("count", 1) for lr in layers.values() for f in lr["features"])


def _tiles(box: tuple[float, float, float, float], zoom: int) -> list[TileAddress]:
    return [TileAddress(t.z, t.x, t.y) for t in TILE_MATRIX_SET.tiles(*box, [zoom])]


def _zxy(tile: TileAddress) -> tuple[int, int, int]:
    return tile.z, tile.x, tile.y


def _open(catalogue: Catalogue, settings: Settings) -> Store:
    if settings.database_url:
        return PostGISStore(catalogue, settings.database_url)
    return GeoPackageStore(catalogue, settings.data_dir)


@contextmanager
def _postgis(
    skip: bool, catalogue: Catalogue, demo: Store, points: gpd.GeoDataFrame
) -> Iterator[list[str]]:
    if skip:
        yield []
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import create_database, drop_database  # the tests' throw-away databases

    made = [create_database(), create_database()]
    try:
        urls = [url.render_as_string(hide_password=False) for url in made]
        for url in urls:
            upgrade(url, catalogue)
        with PostGISStore(catalogue, urls[0]) as target:
            for layer in catalogue.vector_layers:
                frame = demo.read(layer.id)
                if len(frame):
                    target.replace(layer.id, frame)
        with PostGISStore(catalogue, urls[1]) as target:
            target.replace("chemical_plants", points)
        yield urls
    finally:
        for url in made:
            drop_database(url)


if __name__ == "__main__":
    main()
