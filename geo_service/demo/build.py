"""Build the demo region and write every layer of it into a store."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geo_service.demo.access import build_access_roads
from geo_service.demo.city import build_buildings
from geo_service.demo.hazards import build_mines, build_parks, build_plants, build_ponds
from geo_service.demo.landscape import build_districts, build_water
from geo_service.demo.population import write_population
from geo_service.demo.region import Frame
from geo_service.demo.scene import Scene, generator
from geo_service.demo.services import build_fire_lanes, build_stations, build_targets
from geo_service.demo.terrain import build_dem
from geo_service.demo.transport import build_rail, build_roads
from geo_service.derive import apply_derivations
from geo_service.schema import conform
from geo_service.store.base import Store

Progress = Callable[[str], None]

# half the paved width of each road class plus a verge, kept free of buildings (m)
_ROAD_CLEARANCE = {
    "expressway": 20.0,
    "class_2": 12.0,
    "class_3": 9.0,
    "class_4": 7.0,
    "rural": 7.0,
    "urban_primary": 18.0,
    "urban_secondary": 13.0,
}
_RAIL_CLEARANCE = 30.0  # ordinary buildings stay outside every protection zone


@dataclass(frozen=True)
class DemoSummary:
    """What the build wrote, and what the region was built to show (its ground truth)."""

    counts: dict[str, int]
    rasters: dict[str, Path]
    metric_crs: str
    headtop_expected: dict[str, bool]
    headtop_villages: dict[str, str]
    dense_core_plants: list[str]
    plants_near_rail: list[str]
    rail_encroachments: list[str]
    high_rises_without_lane: list[str]
    quarry: str
    road_over_rail: str
    level_crossing_road: str
    mountain_road: str
    river_road: str


def build_demo(store: Store, *, seed: int = 2020, progress: Progress | None = None) -> DemoSummary:
    """Build the fictional city of 清河市 and replace every layer of ``store`` with it.

    The same seed gives the same features and rasters, byte for byte.
    """
    step = progress or (lambda name: None)
    step("terrain")
    scene = Scene(seed, Frame(), build_dem(generator(seed, "terrain")))
    step("districts")
    build_districts(scene)
    step("railways and roads")
    build_rail(scene)
    build_roads(scene)
    _keep_clear_of_transport(scene)
    build_water(scene)
    step("tailings ponds")
    build_ponds(scene)
    step("chemical plants")
    build_parks(scene)
    build_plants(scene)
    step("buildings")
    build_buildings(scene)
    step("fire lanes, targets and stations")
    lane_rule = store.catalogue["fire_lifelines"].rule("building_without_lane")
    build_fire_lanes(scene, float(lane_rule.params["high_rise_min_height_m"]))
    build_targets(scene)
    build_stations(scene)
    build_mines(scene)
    step("access roads")
    build_access_roads(scene)  # last: routed around everything that stands
    counts = _write_layers(store, scene, step)
    rasters = _write_rasters(store, scene, step)
    return _summary(scene, counts, rasters)


def _keep_clear_of_transport(scene: Scene) -> None:
    for road in scene.layers["road_sections"]:
        scene.keepout.add(road.geometry, margin=_ROAD_CLEARANCE[road.props["road_class"]])
    scene.keepout.add(scene.geometries("rail_corridors"), margin=_RAIL_CLEARANCE)


def _write_layers(store: Store, scene: Scene, step: Progress) -> dict[str, int]:
    counts = {}
    for layer in store.catalogue.vector_layers:
        if not layer.importable:
            continue  # findings, measures and runs are the analysis's to write
        step(f"writing {layer.id}")
        features = scene.layers.get(layer.id, [])
        if not features:
            raise RuntimeError(f"the demo region has no {layer.id}")  # a bug in the demo
        frame = conform(layer, scene.frame.to_frame(layer, features))
        store.replace(layer.id, apply_derivations(layer, frame))  # e.g. pond grades
        counts[layer.id] = len(features)
    return counts


def _write_rasters(store: Store, scene: Scene, step: Progress) -> dict[str, Path]:
    step("writing rasters")
    with tempfile.TemporaryDirectory(prefix="georisk-demo-") as tmp:
        dem_path, population_path = Path(tmp) / "dem.tif", Path(tmp) / "population.tif"
        scene.dem.write(dem_path, scene.frame)
        write_population(scene, population_path)
        store.put_raster("dem", dem_path)
        store.put_raster("population", population_path)
    rasters = {}
    for layer_id in ("dem", "population"):
        path = store.raster_path(layer_id)
        if path is None:
            raise RuntimeError(f"the store kept no {layer_id} raster")
        rasters[layer_id] = path
    return rasters


def _summary(scene: Scene, counts: dict[str, int], rasters: dict[str, Path]) -> DemoSummary:
    truth = scene.truth
    return DemoSummary(
        counts=counts,
        rasters=rasters,
        metric_crs=scene.frame.crs_label,
        headtop_expected=dict(truth["headtop_expected"]),
        headtop_villages=dict(truth["headtop_villages"]),
        dense_core_plants=list(truth["plants_core"]),
        plants_near_rail=list(truth["plants_near_rail"]),
        rail_encroachments=list(truth["rail_encroachments"]),
        high_rises_without_lane=list(truth["high_rises_without_lane"]),
        quarry=truth["quarry"],
        road_over_rail=truth["road_over_rail"],
        level_crossing_road=truth["level_crossing_road"],
        mountain_road=truth["mountain_road"],
        river_road=truth["river_road"],
    )
