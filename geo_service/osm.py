"""OpenStreetMap extracts (``.osm.pbf``) into catalogue layers, read with pyrosm.

What becomes a feature of which layer:

==================  ==========================================================================
rail_corridors      ways tagged ``railway=rail|light_rail|subway|narrow_gauge``
road_sections       ways tagged ``highway=motorway|trunk|primary|secondary|tertiary`` (and their
                    ``_link``) ``|unclassified|residential|service|track``
protection_targets  nodes and areas tagged ``amenity=school|college|university|kindergarten|
                    hospital|clinic|nursing_home`` or ``social_facility=nursing_home|
                    assisted_living``
buildings           areas tagged ``building=*`` (any value but ``no``)
industrial_parks    areas tagged ``landuse=industrial``
fire_stations       nodes and areas tagged ``amenity=fire_station``, an area as a point inside it
water_bodies        areas tagged ``natural=water``, ``waterway=riverbank`` or
                    ``landuse=reservoir|basin``
==================  ==========================================================================

Which elements count, so that a feature is imported once or not at all:

- A node is a Point at its location.
- A line is a way with at least two of its nodes in the file and two distinct positions; it runs
  through the nodes present (an extract cut at its edge keeps the part inside). Relations
  (routes) are not lines here: they repeat their member ways. A closed way tagged ``area=yes``
  is a surface, not a centreline, and is left out.
- An area is a closed way (first node = last node, at least four nodes) whose nodes are all in
  the file, or a ``type=multipolygon`` relation whose member ways close into at least one ring
  of four or more positions (each member through its nodes in the file).
  A closed way cut by the extract's edge would be a polygon through some of its corners, a shape
  that does not exist, so it is left out; a relation keeps the rings of its members in the file
  that still close (pyrosm's assembly). Polygons are made valid (``shapely.make_valid``) and
  only their polygonal parts kept; one that comes out empty is left out.
- A way that is an outer member of a relation imported into the same layer is that relation's
  outline, not a feature of its own, and is left out. Other relation types (``site``, ``route``,
  ``building``) only group features that are imported on their own.

Ids are ``osm-node-<id>``, ``osm-way-<id>``, ``osm-relation-<id>``, so a second import of the
same area updates the features of the first. Every feature has ``source_crs`` ``EPSG:4326``.

Fields come from tags through the tables below (``ROAD_CLASSES``, ``BUILDING_USES``,
``TARGET_CATEGORIES``, ``WATER_TYPES``); ``maxspeed`` in mph becomes km/h, ``height`` in feet
metres. A number outside the catalogue's bounds (a 150 km/h limit) is left empty, not the
feature. A required name that OSM does not give is a placeholder from the tag and the OSM id,
such as ``school 12345``, ``fire_station 12345``, ``industrial 12345`` or ``railway 12345`` (a
railway first falls back to its ``ref``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.schema import conform, empty_frame
from geo_service.store.base import Store, WriteResult

__all__ = ["OSM_LAYERS", "OSMError", "Progress", "import_osm", "read_osm"]

Progress = Callable[[str], None]
Shape = Literal["line", "area", "point_or_area", "point"]
# Per OSM key the values that select an element; ``None``: any value but "no".
Criteria = Mapping[str, frozenset[str] | None]

SOURCE_CRS = "EPSG:4326"
KMH_PER_MPH = 1.609344
M_PER_FOOT = 0.3048
# China's definition of a high-speed railway: passenger lines run at 200 km/h or more
# (TSG Q 0001, 高速铁路设计规范 TB 10621). OSM marks them ``highspeed=yes``; ``maxspeed``
# says the same where that tag is missing. ``usage``/``service`` carry no speed class.
HIGH_SPEED_KMH = 200.0

_RAILWAYS = frozenset({"rail", "light_rail", "subway", "narrow_gauge"})

# OSM ranks roads by importance, China by technical grade (JTG B01); the two agree closely
# enough for screening. Residential and service streets have no grade: ``other``.
ROAD_CLASSES: dict[str, str] = {
    "motorway": "expressway",
    "motorway_link": "expressway",
    "trunk": "class_1",
    "trunk_link": "class_1",
    "primary": "class_2",
    "primary_link": "class_2",
    "secondary": "class_3",
    "secondary_link": "class_3",
    "tertiary": "class_4",
    "tertiary_link": "class_4",
    "unclassified": "rural",
    "track": "rural",
    "residential": "other",
    "service": "other",
}

TARGET_CATEGORIES: dict[str, dict[str, str]] = {
    "amenity": {
        "school": "school",
        "college": "school",
        "university": "school",
        "kindergarten": "kindergarten",
        "hospital": "hospital",
        "clinic": "hospital",
        "nursing_home": "elderly_home",
    },
    "social_facility": {"nursing_home": "elderly_home", "assisted_living": "elderly_home"},
}

BUILDING_USES: dict[str, str] = {
    "residential": "residential",
    "apartments": "residential",
    "house": "residential",
    "commercial": "commercial",
    "retail": "commercial",
    "office": "commercial",
    "industrial": "industrial",
    "warehouse": "industrial",
    "school": "education",
    "university": "education",
    "kindergarten": "education",
    "hospital": "health",
    "public": "public",
    "civic": "public",
    "government": "public",
}

# ``water=*`` first, then the tag that selected the feature (``waterway=riverbank``,
# ``landuse=reservoir``); anything else (``landuse=basin``, ``water=pond``) is ``other``.
WATER_TYPES: dict[str, str] = {
    "river": "river",
    "riverbank": "river",
    "lake": "lake",
    "reservoir": "reservoir",
    "canal": "canal",
}


class OSMError(ValueError):
    """An OSM import that cannot be done as asked; the message is fit for a user."""


@dataclass(frozen=True)
class _Rule:
    """How one layer is filled: the elements it takes and the fields it derives from tags."""

    criteria: Criteria
    shape: Shape
    fields: Callable[[pd.DataFrame], dict[str, Any]]


def read_osm(
    path: Path | str,
    layers: Iterable[str] | None = None,
    progress: Progress | None = None,
    *,
    catalogue: Catalogue | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """The features of an OSM extract, as canonical frames by layer id, without writing them.

    ``layers`` picks some of ``OSM_LAYERS`` (default: all of them); ``progress`` is called
    with the name of each step as it starts.
    """
    catalogue = catalogue or load_catalogue()
    wanted = _wanted_layers(layers)
    path = Path(path)
    if not path.is_file():
        raise OSMError(f"{path}: no such file")
    step = progress or (lambda name: None)
    rules = {layer_id: RULES[layer_id] for layer_id in wanted}

    step("reading nodes and ways")
    elements = _read_elements(path, rules.values())
    relations = _empty_elements()
    if any(rule.shape != "line" for rule in rules.values()):
        step("reading multipolygon relations")
        relations = _read_relations(path, rules.values())

    frames = {}
    for layer_id, rule in rules.items():
        step(layer_id)
        layer = catalogue[layer_id]
        frame = _layer_frame(rule, elements, relations)
        frames[layer_id] = conform(layer, frame) if len(frame) else empty_frame(layer)
    return frames


def import_osm(
    store: Store,
    path: Path | str,
    layers: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, WriteResult]:
    """Read an OSM extract (see ``read_osm``) and upsert each layer into ``store``."""
    frames = read_osm(path, layers, progress, catalogue=store.catalogue)
    step = progress or (lambda name: None)
    results = {}
    for layer_id, frame in frames.items():
        step(f"writing {layer_id}")
        results[layer_id] = store.upsert(layer_id, frame)
    return results


# -- the layers ------------------------------------------------------------------------------


def _rail_fields(f: pd.DataFrame) -> dict[str, Any]:
    fallback = "railway " + f["id"].astype(str)
    fast = _speed_kmh(_tag(f, "maxspeed")) >= HIGH_SPEED_KMH
    high_speed = (_tag(f, "highspeed") == "yes") | fast
    bridge, tunnel = _yes(_tag(f, "bridge")), _yes(_tag(f, "tunnel"))
    return {
        "line_name": _tag(f, "name").fillna(_tag(f, "ref")).fillna(fallback),
        "rail_type": np.where(high_speed, "high_speed", "conventional"),
        "structure": np.select([bridge, tunnel], ["bridge", "tunnel"], "track"),
    }


def _road_fields(f: pd.DataFrame) -> dict[str, Any]:
    speed = _speed_kmh(_tag(f, "maxspeed")).round()
    return {
        "road_name": _tag(f, "name"),
        "road_class": _tag(f, "highway").map(ROAD_CLASSES),
        "design_speed_kmh": speed.where((speed >= 5) & (speed <= 140)),
    }


def _target_fields(f: pd.DataFrame) -> dict[str, Any]:
    amenity = _tag(f, "amenity").where(_tag(f, "amenity").isin(TARGET_CATEGORIES["amenity"]))
    kind = amenity.fillna(_tag(f, "social_facility"))
    category = amenity.map(TARGET_CATEGORIES["amenity"])
    category = category.fillna(_tag(f, "social_facility").map(TARGET_CATEGORIES["social_facility"]))
    return {"name": _name(f, kind), "category": category}


def _building_fields(f: pd.DataFrame) -> dict[str, Any]:
    height = _length_m(_tag(f, "height"))
    # a fractional level count (an attic, a mezzanine) is one more floor
    floors = np.ceil(_number(_tag(f, "building:levels")))
    return {
        "name": _tag(f, "name"),
        "height_m": height.where((height >= 0) & (height <= 700)),
        "floors": floors.where((floors >= 0) & (floors <= 200)),
        "use": _tag(f, "building").map(BUILDING_USES).fillna("other"),
    }


def _park_fields(f: pd.DataFrame) -> dict[str, Any]:
    return {"name": _name(f, _tag(f, "landuse")), "park_type": "general"}


def _station_fields(f: pd.DataFrame) -> dict[str, Any]:
    return {"name": _name(f, _tag(f, "amenity"))}


def _water_fields(f: pd.DataFrame) -> dict[str, Any]:
    by_tag = _tag(f, "waterway").fillna(_tag(f, "landuse")).map(WATER_TYPES)
    return {
        "name": _tag(f, "name"),
        "water_type": _tag(f, "water").map(WATER_TYPES).fillna(by_tag).fillna("other"),
    }


RULES: dict[str, _Rule] = {
    "rail_corridors": _Rule({"railway": _RAILWAYS}, "line", _rail_fields),
    "road_sections": _Rule({"highway": frozenset(ROAD_CLASSES)}, "line", _road_fields),
    "protection_targets": _Rule(
        {key: frozenset(values) for key, values in TARGET_CATEGORIES.items()},
        "point_or_area",
        _target_fields,
    ),
    "buildings": _Rule({"building": None}, "area", _building_fields),
    "industrial_parks": _Rule({"landuse": frozenset({"industrial"})}, "area", _park_fields),
    "fire_stations": _Rule({"amenity": frozenset({"fire_station"})}, "point", _station_fields),
    "water_bodies": _Rule(
        {
            "natural": frozenset({"water"}),
            "waterway": frozenset({"riverbank"}),
            "landuse": frozenset({"reservoir", "basin"}),
        },
        "area",
        _water_fields,
    ),
}

OSM_LAYERS: tuple[str, ...] = tuple(RULES)

# Tags the field derivations read, besides the keys of the criteria.
_TAGS = ("name", "ref", "highspeed", "maxspeed", "bridge", "tunnel", "area", "height",
         "building:levels", "water", "type")  # fmt: skip


def _wanted_layers(layers: Iterable[str] | None) -> list[str]:
    if layers is None:
        return list(OSM_LAYERS)
    wanted = list(dict.fromkeys(layers))
    unknown = [name for name in wanted if name not in RULES]
    if unknown:
        raise OSMError(
            f"OpenStreetMap does not fill layer(s) {', '.join(map(repr, unknown))}; "
            f"it fills: {', '.join(OSM_LAYERS)}"
        )
    return wanted


# -- reading ---------------------------------------------------------------------------------


def _read_elements(path: Path, rules: Iterable[_Rule]) -> pd.DataFrame:
    """Every node and way any of ``rules`` may take, with each way's node ids.

    Relations are read apart (``_read_relations``): a read with relations would drop every
    member way of a matching relation, also those that are features of their own.
    """
    rules = list(rules)
    any_value = {key for rule in rules for key, values in rule.criteria.items() if values is None}
    chosen: dict[str, set[str]] = {}
    for rule in rules:
        for key, values in rule.criteria.items():
            if values is not None and key not in any_value:
                chosen.setdefault(key, set()).update(values)
    criteria: dict[str, Any] = {key: True for key in any_value}
    criteria |= {key: sorted(values) for key, values in chosen.items()}
    keep_nodes = any(rule.shape in ("point", "point_or_area") for rule in rules)
    return _pyrosm_read(
        path,
        custom_filter=criteria,
        keep_nodes=keep_nodes,
        keep_relations=False,
        keep_other_tags=False,
        tags_as_columns=_columns(criteria),
    )


def _read_relations(path: Path, rules: Iterable[_Rule]) -> pd.DataFrame:
    """The multipolygon relations any of ``rules`` may take, with their member lists."""
    brackets, keys = [], set()
    for rule in rules:
        if rule.shape == "line":
            continue
        for key, values in rule.criteria.items():
            keys.add(key)
            selectors = [f'["{key}"]'] if values is None else [f'["{key}"="{v}"]' for v in values]
            brackets += [f'{selector}["type"="multipolygon"]' for selector in sorted(selectors)]
    frame = _pyrosm_read(
        path,
        custom_filter=sorted(set(brackets)),
        keep_nodes=False,
        keep_ways=False,
        tags_as_columns=_columns(keys),
    )
    if len(frame):
        frame["members"] = [_outer_ways(tags) for tags in frame["tags"]]
    return frame


def _pyrosm_read(path: Path, **options: Any) -> pd.DataFrame:
    from pyrosm import OSM  # ~2 s of imports: only when a file is read

    # pyrosm's default out-of-core engine keeps memory bounded on a province-sized extract
    # (and keeps each read's result in its cache under the temporary folder)
    try:
        osm = OSM(str(path), keep_metadata=False, keep_node_info=True, progress=False)
    except ValueError as exc:
        raise OSMError(f"{path}: {exc}") from None
    with warnings.catch_warnings():
        # pyrosm warns when nothing matches; an empty layer is a fine answer here
        warnings.filterwarnings("ignore", message="Could not find any", category=UserWarning)
        frame = osm.get_data_by_custom_criteria(**options)
    if frame is None or not len(frame):
        return _empty_elements()
    frame = frame[frame.geometry.notna()].reset_index(drop=True)
    return pd.DataFrame(frame)


def _columns(keys: Iterable[str]) -> list[str]:
    return sorted({*keys, *_TAGS})


def _empty_elements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.Series([], dtype="int64"),
            "osm_type": pd.Series([], dtype=object),
            "geometry": pd.Series([], dtype=object),
        }
    )


def _outer_ways(tags: str | None) -> list[int]:
    """The ids of the ways that outline a relation (role ``outer`` or none)."""
    members = json.loads(tags).get("members", []) if isinstance(tags, str) else []
    return [
        int(m["member_id"])
        for m in members
        if m.get("member_type") == "way" and m.get("member_role") in ("outer", "", None)
    ]


# -- one layer -------------------------------------------------------------------------------


def _layer_frame(rule: _Rule, elements: pd.DataFrame, relations: pd.DataFrame) -> gpd.GeoDataFrame:
    chosen = elements[_matches(elements, rule.criteria)]
    nodes = chosen[chosen["osm_type"] == "node"]
    ways = chosen[chosen["osm_type"] == "way"]
    parts = []
    if rule.shape == "line":
        ways = ways[_tag(ways, "area") != "yes"]
        parts.append(_with_geometry(ways, _lines(ways)))
    else:
        if rule.shape in ("point", "point_or_area"):
            parts.append(_with_geometry(nodes, nodes["geometry"].to_numpy()))
        outlines = relations[_matches(relations, rule.criteria)]
        outlines = _with_geometry(outlines, _polygonal(outlines["geometry"].to_numpy()))
        if len(outlines):
            outer = np.concatenate([np.asarray(m, dtype=np.int64) for m in outlines["members"]])
            ways = ways[~ways["id"].isin(outer)]
        parts += [_with_geometry(ways, _way_areas(ways)), outlines]
    present = [part for part in parts if len(part)]
    frame = pd.concat(present, ignore_index=True) if present else parts[0]
    if rule.shape == "point":
        frame["geometry"] = _points(frame["geometry"].to_numpy())
    fields = rule.fields(frame) if len(frame) else {}
    data = {
        "id": "osm-" + frame["osm_type"].astype(str) + "-" + frame["id"].astype(str),
        **{name: np.asarray(values, dtype=object) for name, values in fields.items()},
        "source_crs": SOURCE_CRS,
    }
    out = pd.DataFrame(data, index=frame.index)
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(frame["geometry"], crs=4326), crs=4326)


def _matches(frame: pd.DataFrame, criteria: Criteria) -> NDArray[np.bool_]:
    """Which rows carry one of the selecting tags."""
    hit = np.zeros(len(frame), dtype=bool)
    for key, values in criteria.items():
        tag = _tag(frame, key)
        hit |= (tag.notna() & (tag != "no") if values is None else tag.isin(values)).to_numpy(bool)
    return hit


def _with_geometry(frame: pd.DataFrame, geometry: NDArray[Any]) -> pd.DataFrame:
    """``frame`` with ``geometry``, without the rows whose geometry is missing or empty."""
    frame = frame.assign(geometry=geometry)
    keep = shapely.is_geometry(geometry)
    keep[keep] = ~shapely.is_empty(geometry[keep])
    return frame[keep]


# -- geometry --------------------------------------------------------------------------------


def _lines(ways: pd.DataFrame) -> NDArray[Any]:
    """Each way as a line; None for one without two distinct positions.

    pyrosm makes a closed way whose tags mark an area (``amenity=parking`` on a service road)
    a Polygon; its ring is the way (should the extract cut such a way at its first node, the
    ring closes the gap with a straight segment).
    """
    geoms = ways["geometry"].to_numpy().copy()
    polygons = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    geoms[polygons] = _as_linestrings(shapely.get_exterior_ring(geoms[polygons]))
    geoms[~shapely.is_valid(geoms)] = None
    return geoms


def _way_areas(ways: pd.DataFrame) -> NDArray[Any]:
    """Each closed way whose nodes are all in the file as a valid polygon, else None.

    pyrosm builds a way from the nodes it finds, so a way is complete when its geometry has
    as many positions as the way has node ids.
    """
    geoms = ways["geometry"].to_numpy().copy()
    if not len(geoms):
        return geoms
    node_counts = np.fromiter((len(n) for n in ways["nodes"]), dtype=np.int64, count=len(ways))
    complete = shapely.get_num_coordinates(geoms) == node_counts
    types = shapely.get_type_id(geoms)
    closed_line = (
        (types == shapely.GeometryType.LINESTRING) & shapely.is_closed(geoms) & (node_counts >= 4)
    )
    # pyrosm leaves a closed way a line when its tags do not mark an area (e.g. only
    # ``social_facility``); the layer says it is one
    coords, index = shapely.get_coordinates(geoms[closed_line & complete], return_index=True)
    if len(coords):
        geoms[closed_line & complete] = shapely.polygons(shapely.linearrings(coords, indices=index))
    area = complete & ((types == shapely.GeometryType.POLYGON) | closed_line)
    geoms[~area] = None
    return _polygonal(geoms)


def _polygonal(geoms: NDArray[Any]) -> NDArray[Any]:
    """Valid polygons: invalid ones made valid, keeping only their polygonal parts."""
    geoms = np.asarray(geoms, dtype=object).copy()
    present = shapely.is_geometry(geoms)
    broken = present & ~shapely.is_valid(geoms)
    geoms[broken] = shapely.make_valid(geoms[broken])
    types = shapely.get_type_id(geoms)
    mixed = types == shapely.GeometryType.GEOMETRYCOLLECTION
    if mixed.any():
        geoms[mixed] = _polygonal_parts(geoms[mixed])
        types = shapely.get_type_id(geoms)
    polygonal = np.isin(types, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    geoms[~polygonal] = None
    return geoms


def _polygonal_parts(collections: NDArray[Any]) -> NDArray[Any]:
    """The polygons inside each geometry collection, as one (Multi)Polygon or None."""
    parts, owner = shapely.get_parts(collections, return_index=True)
    # a part may itself be a MultiPolygon: take its polygons
    polys, sub = shapely.get_parts(parts, return_index=True)
    owner = owner[sub]
    keep = shapely.get_type_id(polys) == shapely.GeometryType.POLYGON
    polys, owner = polys[keep], owner[keep]
    out = np.full(len(collections), None, dtype=object)
    counts = np.bincount(owner, minlength=len(collections))
    single = np.flatnonzero(counts == 1)
    out[single] = polys[np.isin(owner, single)]
    several = np.flatnonzero(counts > 1)
    if len(several):
        mask = np.isin(owner, several)
        out[several] = shapely.multipolygons(
            polys[mask], indices=np.searchsorted(several, owner[mask])
        )
    return out


def _as_linestrings(rings: NDArray[Any]) -> NDArray[Any]:
    if not len(rings):
        return rings
    coords, index = shapely.get_coordinates(rings, return_index=True)
    return shapely.linestrings(coords, indices=index)


def _points(geoms: NDArray[Any]) -> NDArray[Any]:
    """Points stay; an area becomes a point inside it (the layer holds points only)."""
    geoms = geoms.copy()
    areas = shapely.get_type_id(geoms) != shapely.GeometryType.POINT
    geoms[areas] = shapely.point_on_surface(geoms[areas])
    return geoms


# -- tags ------------------------------------------------------------------------------------


def _tag(frame: pd.DataFrame, key: str) -> pd.Series:
    """The values of tag ``key`` as text, missing ones as NaN (an absent column: all NaN)."""
    if key in frame:
        return frame[key].astype(object).where(frame[key].notna(), np.nan)
    return pd.Series(np.nan, index=frame.index, dtype=object)


def _yes(values: pd.Series) -> NDArray[np.bool_]:
    """Whether a tag like ``bridge`` or ``tunnel`` is set: any value but ``no``."""
    return (values.notna() & (values != "no")).to_numpy(bool)


def _name(f: pd.DataFrame, kind: pd.Series) -> pd.Series:
    """The ``name`` tag, or ``<kind> <osm id>`` where there is none."""
    return _tag(f, "name").fillna(kind.astype(str) + " " + f["id"].astype(str))


_NUMBER = r"^\s*(?P<value>\d+(?:[.,]\d+)?)\s*(?P<unit>[^\d\s].*?)?\s*$"


def _number(values: pd.Series) -> pd.Series:
    """The leading number of each value, NaN when the value is not a number with a unit."""
    parsed = values.astype("string").str.extract(_NUMBER)
    return pd.to_numeric(parsed["value"].str.replace(",", "."), errors="coerce").astype(float)


def _units(values: pd.Series) -> pd.Series:
    parsed = values.astype("string").str.extract(_NUMBER)
    return parsed["unit"].str.strip().str.lower().astype(object)


def _speed_kmh(values: pd.Series) -> pd.Series:
    """``maxspeed`` in km/h from ``50``, ``50 km/h``, ``30 mph``; NaN for ``walk``, ``none``."""
    number, unit = _number(values), _units(values)
    factor = unit.map({"km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": KMH_PER_MPH})
    factor = factor.where(unit.notna(), 1.0)
    return (number * factor.astype(float)).astype(float)


def _length_m(values: pd.Series) -> pd.Series:
    """A length in metres: ``12``, ``12 m``, ``12.5m``, ``40 ft``; NaN for anything else."""
    number, unit = _number(values), _units(values)
    factor = unit.map({"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0})
    factor = factor.fillna(unit.map({"ft": M_PER_FOOT, "feet": M_PER_FOOT, "'": M_PER_FOOT}))
    factor = factor.where(unit.notna(), 1.0)
    return (number * factor.astype(float)).astype(float)
