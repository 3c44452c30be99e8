"""OSM import: read_osm against an independent pyosmium count of the same extracts, field
mapping on a hand-made extract, and a round trip through the GeoPackage store."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pyrosm
import pytest
import shapely
from osmium.osm import mutable

from geo_service.catalogue import Catalogue
from geo_service.osm import OSM_LAYERS, OSMError, _length_m, _speed_kmh, import_osm, read_osm
from geo_service.store.gpkg import GeoPackageStore

EXTRACTS = Path(pyrosm.__file__).parent / "data"
LINE_LAYERS = {"rail_corridors", "road_sections"}
POINT_LAYERS = {"protection_targets", "fire_stations"}  # nodes and areas

# -- the independent count -------------------------------------------------------------------
# The tag criteria and the element rules of geo_service/osm.py, written again from its
# docstring over pyosmium's reading of the file (no pyrosm, no code shared with the module).


def layers_of(tags: dict[str, str]) -> set[str]:
    found = set()
    if tags.get("railway") in {"rail", "light_rail", "subway", "narrow_gauge"}:
        found.add("rail_corridors")
    roads = {"motorway", "trunk", "primary", "secondary", "tertiary"}
    roads |= {f"{r}_link" for r in roads} | {"unclassified", "residential", "service", "track"}
    if tags.get("highway") in roads:
        found.add("road_sections")
    targets = {"school", "college", "university", "kindergarten", "hospital", "clinic"}
    if tags.get("amenity") in targets | {"nursing_home"} or tags.get("social_facility") in {
        "nursing_home",
        "assisted_living",
    }:
        found.add("protection_targets")
    if tags.get("building", "no") != "no":
        found.add("buildings")
    if tags.get("landuse") == "industrial":
        found.add("industrial_parks")
    if tags.get("amenity") == "fire_station":
        found.add("fire_stations")
    if (
        tags.get("natural") == "water"
        or tags.get("waterway") == "riverbank"
        or tags.get("landuse") in {"reservoir", "basin"}
    ):
        found.add("water_bodies")
    return found


def independent_ids(path: Path) -> dict[str, set[str]]:
    """The ids each layer should get from ``path``, counted with pyosmium."""
    located: dict[int, tuple[float, float]] = {}
    way_refs: dict[int, list[int]] = {}
    expected: dict[str, set[str]] = defaultdict(set)
    area_ways: dict[str, set[int]] = defaultdict(set)
    relations = []
    for obj in osmium.FileProcessor(str(path)):
        tags = dict(obj.tags)
        layers = layers_of(tags)
        if obj.is_node():
            located[obj.id] = (obj.location.lon, obj.location.lat)
            for layer in layers & POINT_LAYERS:
                expected[layer].add(f"osm-node-{obj.id}")
        elif obj.is_way():
            refs = [n.ref for n in obj.nodes]
            way_refs[obj.id] = refs
            coords = [located[r] for r in refs if r in located]
            for layer in layers & LINE_LAYERS:
                if tags.get("area") != "yes" and len(set(coords)) >= 2:
                    expected[layer].add(f"osm-way-{obj.id}")
            complete = len(coords) == len(refs)
            if complete and refs[0] == refs[-1] and len(refs) >= 4 and encloses(coords):
                for layer in layers - LINE_LAYERS:
                    area_ways[layer].add(obj.id)
        elif tags.get("type") == "multipolygon":
            members = [(m.type, m.ref, m.role) for m in obj.members]
            relations.append((obj.id, layers - LINE_LAYERS, members))
    for rel_id, layers, members in relations:
        if not layers or not rings_close([m for t, m, _ in members if t == "w"], way_refs, located):
            continue
        outline = {ref for t, ref, role in members if t == "w" and role in ("outer", "")}
        for layer in layers:
            expected[layer].add(f"osm-relation-{rel_id}")
            area_ways[layer] -= outline
    for layer, ways in area_ways.items():
        expected[layer] |= {f"osm-way-{w}" for w in ways}
    return {layer: expected[layer] for layer in OSM_LAYERS}


def encloses(coords: list[tuple[float, float]]) -> bool:
    """Whether a ring encloses any area once made valid."""
    fixed = shapely.make_valid(shapely.Polygon(coords))
    return fixed.area > 0


def rings_close(
    members: list[int], way_refs: dict[int, list[int]], located: dict[int, tuple[float, float]]
) -> bool:
    """Whether the member ways in the file close into a ring: joined end to end by node id
    (each through its nodes in the file), some group of them meets itself at every end and
    has at least three segments (four positions, the first repeated)."""
    parent: dict[int, int] = {}

    def root(n: int) -> int:
        while parent.setdefault(n, n) != n:
            n = parent[n]
        return n

    degree: dict[int, int] = defaultdict(int)
    ends: list[tuple[int, int]] = []
    for way in set(members):
        refs = [r for r in way_refs.get(way, []) if r in located]
        if len(refs) < 2:
            continue
        degree[refs[0]] += 1
        degree[refs[-1]] += 1
        parent[root(refs[0])] = root(refs[-1])
        ends.append((refs[0], len(refs) - 1))
    segments: dict[int, int] = defaultdict(int)
    for start, count in ends:
        segments[root(start)] += count
    open_groups = {root(n) for n, d in degree.items() if d % 2}
    return any(segments[g] >= 3 for g in {root(n) for n in degree} - open_groups)


# -- read_osm on the real extracts -----------------------------------------------------------


NAMES = ["test.osm.pbf", "Helsinki.osm.pbf"]
Frames = dict[str, gpd.GeoDataFrame]


@pytest.fixture(scope="module")
def extracts(catalogue: Catalogue) -> Callable[[str], tuple[Frames, float]]:
    """``read(name)``: read_osm of a shipped extract and the seconds it took, read once."""
    done: dict[str, tuple[Frames, float]] = {}

    def read(name: str) -> tuple[Frames, float]:
        if name not in done:
            path = EXTRACTS / name
            pyrosm.OSM.clear_cache(str(path))  # time a real parse, not pyrosm's result cache
            start = time.perf_counter()
            frames = read_osm(path, catalogue=catalogue)
            done[name] = frames, time.perf_counter() - start
        return done[name]

    return read


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_an_independent_count(name: str, extracts: Callable) -> None:
    frames, seconds = extracts(name)
    expected = independent_ids(EXTRACTS / name)
    assert set(frames) == set(OSM_LAYERS)
    report = {}
    for layer_id, frame in frames.items():
        ids = frame["id"].tolist()
        assert len(ids) == len(set(ids)), f"{layer_id}: duplicate features"
        got = set(ids)
        assert got == expected[layer_id], (
            f"{layer_id}: missing {sorted(expected[layer_id] - got)[:10]}, "
            f"unexpected {sorted(got - expected[layer_id])[:10]}"
        )
        report[layer_id] = len(ids)
    assert seconds < 60
    print(f"\n{name} ({seconds:.2f} s): {report}")


@pytest.mark.parametrize("name", NAMES)
def test_extracts_fill_the_layers_they_hold(name: str, extracts: Callable) -> None:
    frames, _ = extracts(name)
    counts = {layer_id: len(frame) for layer_id, frame in frames.items()}
    assert counts["buildings"] > 400 and counts["road_sections"] > 200
    assert counts["rail_corridors"] >= 1 and counts["protection_targets"] >= 1


@pytest.mark.parametrize("name", NAMES)
def test_frames_are_canonical_and_valid(
    name: str, extracts: Callable, catalogue: Catalogue
) -> None:
    frames, _ = extracts(name)
    for layer_id, frame in frames.items():
        check_values(catalogue, layer_id, frame)


def check_values(catalogue: Catalogue, layer_id: str, frame: gpd.GeoDataFrame) -> None:
    """Every value passes the catalogue: required, enum, bounds, geometry type, validity."""
    layer = catalogue[layer_id]
    assert list(frame.columns) == ["id", *(f.name for f in layer.fields), "source_crs", "geometry"]
    assert frame.crs.to_epsg() == 4326
    assert (frame["source_crs"] == "EPSG:4326").all()
    assert frame["id"].str.fullmatch(r"osm-(node|way|relation)-\d+").all()
    for spec in layer.fields:
        values = frame[spec.name]
        present = values.notna().to_numpy(bool)
        if spec.required:
            assert present.all(), f"{layer_id}.{spec.name}: missing values"
        if spec.enum is not None:
            bad = set(values[present]) - set(spec.enum)
            assert not bad, f"{layer_id}.{spec.name}: {bad} not in the enum"
        if spec.minimum is not None:
            assert (values[present].astype(float) >= spec.minimum).all()
        if spec.maximum is not None:
            assert (values[present].astype(float) <= spec.maximum).all()
    geoms = frame.geometry.to_numpy()
    assert all(layer.accepts(t) for t in set(frame.geom_type)), set(frame.geom_type)
    assert shapely.is_valid(geoms).all() and not shapely.is_empty(geoms).any()


def test_helsinki_values(extracts: Callable) -> None:
    frames, _ = extracts("Helsinki.osm.pbf")
    counts = {layer_id: len(frame) for layer_id, frame in frames.items()}
    assert counts["rail_corridors"] > 100 and counts["water_bodies"] > 0
    station = frames["fire_stations"].set_index("id").loc["osm-relation-167018"]
    assert station["name"] == "Erottajan paloasema" and station.geometry.geom_type == "Point"
    roads = frames["road_sections"].set_index("id")
    assert roads.loc["osm-way-22906936", ["road_name", "road_class"]].tolist() == [
        "Mannerheimintie",
        "class_2",
    ]
    assert roads["design_speed_kmh"].dropna().isin([5, 10, 20, 30, 40, 50, 60, 80]).all()
    rails = frames["rail_corridors"]
    assert rails["line_name"].notna().all() and (rails["structure"] == "tunnel").any()
    buildings = frames["buildings"].set_index("id")
    # a university building outlined by a relation: its outer way is not a second building
    assert "osm-relation-1688819" in buildings.index and "osm-way-122595213" not in buildings.index
    assert buildings.loc["osm-relation-1688819", "use"] == "education"


# -- field mapping on a hand-made extract ----------------------------------------------------


def _square(x: float, y: float, d: float = 0.001) -> list[tuple[float, float]]:
    return [(x, y), (x + d, y), (x + d, y + d), (x, y + d)]


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small extract with one case of each rule, near Yichang."""
    path = tmp_path_factory.mktemp("osm") / "handmade.osm.pbf"
    nodes: dict[int, tuple[float, float]] = {}
    ways: list[tuple[int, list[int], dict[str, str]]] = []

    def area(way_id: int, corners: list[tuple[float, float]], tags: dict[str, str]) -> None:
        ids = list(range(100 + len(nodes), 100 + len(nodes) + len(corners)))
        nodes.update(zip(ids, corners, strict=True))
        ways.append((way_id, [*ids, ids[0]], tags))

    area(
        13,
        _square(111.0, 30.7),
        {"building": "apartments", "height": "12 m", "building:levels": "3.5"},
    )
    area(15, _square(111.01, 30.7), {"building": "no"})
    area(16, _square(111.02, 30.7), {"social_facility": "assisted_living", "name": "康乐园"})
    area(17, _square(111.03, 30.7), {"amenity": "fire_station"})
    area(20, _square(111.04, 30.7, 0.003), {})
    area(21, _square(111.041, 30.701), {"building": "yes"})  # a building in the courtyard
    area(22, _square(111.05, 30.7), {"building": "yes"})  # the outline of relation 31
    area(23, _square(111.06, 30.7), {"landuse": "industrial"})
    area(24, _square(111.07, 30.7), {"natural": "water", "water": "lake", "name": "东湖"})
    area(25, _square(111.08, 30.7), {"highway": "service", "area": "yes"})
    area(26, [(111.09, 30.7), (111.091, 30.7), (111.092, 30.7)], {"building": "yes"})  # flat
    area(14, _square(111.1, 30.7), {"building": "yes"})
    ways[-1][1][1] = 999  # a corner outside the extract
    line = [len(nodes) + 100 + i for i in range(3)]
    for i, node in enumerate(line):
        nodes[node] = (111.0 + 0.01 * i, 30.69)
    ways.append((10, line, {"highway": "primary", "maxspeed": "30 mph", "name": "沿江大道"}))
    ways.append((11, line, {"highway": "trunk", "maxspeed": "RU:urban"}))
    ways.append((12, line, {"railway": "rail", "highspeed": "yes", "bridge": "viaduct"}))
    ways.append(
        (18, line, {"railway": "subway", "tunnel": "yes", "maxspeed": "80", "name": "1号线"})
    )
    ways.append((19, [line[0], 998], {"highway": "track"}))  # one node in the file
    with osmium.SimpleWriter(str(path)) as writer:
        writer.add_node(mutable.Node(id=1, location=(111.0, 30.68), tags={"amenity": "school"}))
        writer.add_node(
            mutable.Node(
                id=2, location=(111.01, 30.68), tags={"amenity": "hospital", "name": "市一医院"}
            )
        )
        for node_id, (x, y) in sorted(nodes.items()):
            writer.add_node(mutable.Node(id=node_id, location=(x, y)))
        for way_id, refs, tags in sorted(ways):
            writer.add_way(mutable.Way(id=way_id, nodes=refs, tags=tags))
        writer.add_relation(
            mutable.Relation(
                id=30,
                members=[("w", 20, "outer"), ("w", 21, "inner")],
                tags={"type": "multipolygon", "building": "school", "name": "实验中学"},
            )
        )
        writer.add_relation(
            mutable.Relation(
                id=31,
                members=[("w", 22, "outer")],
                tags={"type": "multipolygon", "building": "retail"},
            )
        )
        writer.add_relation(
            mutable.Relation(
                id=32, members=[("w", 13, "")], tags={"type": "site", "building": "yes"}
            )
        )
    return path


@pytest.fixture(scope="module")
def handmade_frames(handmade: Path, catalogue: Catalogue) -> dict[str, gpd.GeoDataFrame]:
    return {k: v.set_index("id") for k, v in read_osm(handmade, catalogue=catalogue).items()}


def test_handmade_extract_matches_the_independent_count(
    handmade: Path, handmade_frames: dict[str, gpd.GeoDataFrame]
) -> None:
    expected = independent_ids(handmade)
    assert {k: set(v.index) for k, v in handmade_frames.items()} == expected


def test_handmade_ids(handmade_frames: dict[str, gpd.GeoDataFrame]) -> None:
    ids = {k: sorted(v.index) for k, v in handmade_frames.items()}
    assert ids["buildings"] == ["osm-relation-30", "osm-relation-31", "osm-way-13", "osm-way-21"]
    assert ids["road_sections"] == ["osm-way-10", "osm-way-11"]
    assert ids["rail_corridors"] == ["osm-way-12", "osm-way-18"]
    assert ids["protection_targets"] == ["osm-node-1", "osm-node-2", "osm-way-16"]
    assert ids["fire_stations"] == ["osm-way-17"]
    assert ids["industrial_parks"] == ["osm-way-23"]
    assert ids["water_bodies"] == ["osm-way-24"]


def test_handmade_fields(handmade_frames: dict[str, gpd.GeoDataFrame]) -> None:
    buildings = handmade_frames["buildings"]
    assert buildings.loc["osm-way-13", ["height_m", "floors", "use"]].tolist() == [
        12.0,
        4,
        "residential",
    ]
    assert buildings.loc["osm-relation-30", "use"] == "education"
    assert buildings.loc["osm-relation-30"].geometry.interiors  # the courtyard is a hole
    assert buildings.loc["osm-relation-31", "use"] == "commercial"
    roads = handmade_frames["road_sections"]
    assert roads.loc["osm-way-10", ["road_name", "road_class", "design_speed_kmh"]].tolist() == [
        "沿江大道",
        "class_2",
        48,
    ]
    assert roads.loc["osm-way-11", "road_class"] == "class_1"
    assert roads["design_speed_kmh"].isna().loc["osm-way-11"]
    rails = handmade_frames["rail_corridors"]
    assert rails.loc["osm-way-12", ["line_name", "rail_type", "structure"]].tolist() == [
        "railway 12",
        "high_speed",
        "bridge",
    ]
    assert rails.loc["osm-way-18", ["line_name", "rail_type", "structure"]].tolist() == [
        "1号线",
        "conventional",
        "tunnel",
    ]
    targets = handmade_frames["protection_targets"]
    assert targets.loc["osm-node-1", ["name", "category"]].tolist() == ["school 1", "school"]
    assert targets.loc["osm-node-2", "category"] == "hospital"
    assert targets.loc["osm-way-16", ["name", "category"]].tolist() == ["康乐园", "elderly_home"]
    assert targets.loc["osm-way-16"].geometry.geom_type == "Polygon"
    station = handmade_frames["fire_stations"].loc["osm-way-17"]
    assert station["name"] == "fire_station 17" and station.geometry.geom_type == "Point"
    assert station.geometry.within(shapely.Polygon(_square(111.03, 30.7)))
    park = handmade_frames["industrial_parks"].loc["osm-way-23"]
    assert park[["name", "park_type"]].tolist() == ["industrial 23", "general"]
    water = handmade_frames["water_bodies"].loc["osm-way-24"]
    assert water[["name", "water_type"]].tolist() == ["东湖", "lake"]


def test_layers_choose_what_is_read(handmade: Path, catalogue: Catalogue) -> None:
    frames = read_osm(handmade, ["fire_stations", "road_sections"], catalogue=catalogue)
    assert list(frames) == ["fire_stations", "road_sections"]
    with pytest.raises(OSMError, match="chemical_plants"):
        read_osm(handmade, ["chemical_plants"], catalogue=catalogue)
    with pytest.raises(OSMError, match="no such file"):
        read_osm(handmade.with_name("absent.osm.pbf"), catalogue=catalogue)
    not_osm = handmade.with_name("roads.geojson")
    not_osm.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(OSMError, match=r"roads\.geojson"):
        read_osm(not_osm, catalogue=catalogue)


def test_progress_names_each_step(handmade: Path, catalogue: Catalogue) -> None:
    steps: list[str] = []
    read_osm(handmade, ["buildings"], progress=steps.append, catalogue=catalogue)
    assert steps == ["reading nodes and ways", "reading multipolygon relations", "buildings"]


# -- round trip through the store ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_import_twice_updates_without_duplicates(
    name: str, extracts: Callable, gpkg_store: GeoPackageStore, catalogue: Catalogue
) -> None:
    frames, _ = extracts(name)
    counts = {layer_id: len(frame) for layer_id, frame in frames.items()}
    first = import_osm(gpkg_store, EXTRACTS / name)
    assert {k: (r.inserted, r.updated) for k, r in first.items()} == {
        k: (n, 0) for k, n in counts.items()
    }
    second = import_osm(gpkg_store, EXTRACTS / name)
    assert {k: (r.inserted, r.updated) for k, r in second.items()} == {
        k: (0, n) for k, n in counts.items()
    }
    for layer_id, frame in frames.items():
        stored = gpkg_store.read(layer_id)
        assert stored["id"].tolist() == frame["id"].tolist()
        check_values(catalogue, layer_id, stored)


def test_units() -> None:
    speeds = _speed_kmh(pd.Series(["50", "30 mph", "80 km/h", "walk", None, "50;30", "RU:urban"]))
    assert np.allclose(speeds.iloc[:3], [50, 30 * 1.609344, 80])
    assert speeds.iloc[3:].isna().all()
    heights = _length_m(pd.Series(["12", "12 m", "12.5m", "40 ft", "tall", None, "3,5"]))
    assert np.allclose(heights.iloc[:4], [12, 12, 12.5, 12.192])
    assert heights.iloc[4:6].isna().all() and math.isclose(heights.iloc[6], 3.5)
