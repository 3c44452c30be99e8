"""The GeoPackage store writes copy-on-write: a crash mid-write leaves the previous state whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from geopandas.testing import assert_geodataframe_equal

from geo_service.catalogue import Layer
from geo_service.store import gpkg
from geo_service.store.gpkg import GeoPackageStore

WRITES: dict[str, Callable[[GeoPackageStore, gpd.GeoDataFrame], object]] = {
    "upsert": lambda store, frame: store.upsert("chemical_plants", frame.iloc[100:]),
    "replace": lambda store, frame: store.replace("chemical_plants", frame.iloc[:10]),
    "delete": lambda store, frame: store.delete("chemical_plants", list(frame["id"][:50])),
}


def leftovers(store: GeoPackageStore) -> list[str]:
    """Files a write leaves behind when it does not finish (staging copies)."""
    return sorted(p.name for p in store.data_dir.rglob(".*") if p.name != ".georisk.lock")


def crash_after_half(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``_write_layer`` write half of its rows into the staging file, then fail."""
    original = gpkg._write_layer

    def half_then_crash(path: Path, layer: Layer, frame: gpd.GeoDataFrame) -> None:
        original(path, layer, frame.iloc[: len(frame) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(gpkg, "_write_layer", half_then_crash)


@pytest.mark.parametrize("write", list(WRITES))
def test_a_crash_while_writing_the_layer_leaves_the_previous_state(
    gpkg_store: GeoPackageStore,
    plants: gpd.GeoDataFrame,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    gpkg_store.upsert("chemical_plants", plants.iloc[:120])
    before = gpkg_store.read("chemical_plants")
    version = gpkg_store.data_version()
    changed = plants.copy()
    changed["name"] = "changed"
    crash_after_half(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        WRITES[write](gpkg_store, changed)
    monkeypatch.undo()
    assert_geodataframe_equal(gpkg_store.read("chemical_plants"), before)
    assert gpkg_store.count("chemical_plants") == 120
    assert gpkg_store.data_version() == version
    assert leftovers(gpkg_store) == []


def test_a_crash_while_bumping_the_version_leaves_the_previous_state(
    gpkg_store: GeoPackageStore, plants: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpkg_store.upsert("chemical_plants", plants.iloc[:20])
    before = gpkg_store.read("chemical_plants")
    version = gpkg_store.data_version()

    def crash(*_: object) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(gpkg, "_write_meta", crash)  # the layer is written by then
    with pytest.raises(OSError, match="I/O error"):
        gpkg_store.upsert("chemical_plants", plants.iloc[20:])
    monkeypatch.undo()
    assert_geodataframe_equal(gpkg_store.read("chemical_plants"), before)
    assert gpkg_store.data_version() == version
    assert leftovers(gpkg_store) == []


def test_a_crash_on_the_first_write_leaves_an_empty_store(
    gpkg_store: GeoPackageStore, plants: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_after_half(monkeypatch)
    with pytest.raises(OSError):
        gpkg_store.upsert("chemical_plants", plants)
    monkeypatch.undo()
    assert not gpkg_store.path.exists()
    assert gpkg_store.count("chemical_plants") == 0
    assert len(gpkg_store.read("chemical_plants")) == 0
    assert gpkg_store.data_version() == "empty"
    assert leftovers(gpkg_store) == []


def test_a_crash_while_storing_a_raster_keeps_the_previous_raster(
    gpkg_store: GeoPackageStore, make_geotiff, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_geotiff("one.tif", seed=1), make_geotiff("two.tif", seed=2)
    gpkg_store.put_raster("dem", first)
    version = gpkg_store.data_version()

    def crash(*_: object) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(gpkg, "_fsync", crash)  # the copy is written, not yet renamed over
    with pytest.raises(OSError):
        gpkg_store.put_raster("dem", second)
    monkeypatch.undo()
    path = gpkg_store.raster_path("dem")
    assert path is not None and path.read_bytes() == first.read_bytes()
    assert gpkg_store.data_version() == version


def test_a_crash_while_storing_a_raster_leaves_no_staging_file(
    gpkg_store: GeoPackageStore, make_geotiff, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpkg_store.put_raster("dem", make_geotiff("one.tif", seed=1))

    def crash(*_: object) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(gpkg, "_fsync", crash)
    with pytest.raises(OSError):
        gpkg_store.put_raster("dem", make_geotiff("two.tif", seed=2))
    assert leftovers(gpkg_store) == []
