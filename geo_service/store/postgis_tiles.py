"""Vector tiles from PostGIS: one statement per tile, ``ST_AsMVTGeom`` and ``ST_AsMVT``.

The statement applies the rules of ``geo_service.tiling.vector`` (the same ones the in-process
encoder applies), reading only the rows the GiST index finds near the tile
(``geom && ST_Transform(ST_TileEnvelope(z, x, y, margin), 4326)``):

- ``rows``: per candidate only what placing it needs: its id, its risk class, and its bounds in
  EPSG:3857 computed from its lon/lat bounds (no geometry is transformed for a candidate that
  ends up in an aggregate, nor its properties read);
- ``placed``: whether the tile is dense (more candidates than ``max_features``), whether the
  candidate is point-like (a point, or a "speck" fitting in a pixel) and so grouped, its cell;
- ``cells``: the grouped candidates per cell: how many, one id, the most severe class;
- singles (the candidates not grouped, and those alone in their cell) read again by primary key
  for their geometry and properties, drawn as they are (simplified below ``detail_zoom``;
  specks as their centre point), and one aggregate point per crowded cell carrying ``count``;
- ``ST_AsMVT`` of the union.

Every value is a bound parameter; identifiers come from the SQLAlchemy ``Table``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    Integer,
    LargeBinary,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from geo_service.catalogue import FieldSpec, Layer
from geo_service.store.models import GEOMETRY_COLUMN
from geo_service.tiling.grid import EARTH_RADIUS, HALF_WORLD, MAX_LATITUDE, TileAddress
from geo_service.tiling.vector import COUNT, SEVERITY, TilePolicy, severity_field

_MVT_TYPES: dict[str, TypeEngine[Any]] = {
    "string": Text(),
    "integer": BigInteger(),
    "number": Double(),
    "boolean": Boolean(),
    "date": Text(),
    "list": Text(),
}


def mvt_statement(
    table: Table,
    layer: Layer,
    fields: Sequence[FieldSpec],
    policy: TilePolicy,
    *,
    simplify: bool,
) -> Select[Any]:
    """``SELECT ST_AsMVT(…)``: the vector tile of ``layer`` as one bytea.

    The tile comes in as bound parameters (``mvt_parameters``), so one statement serves every
    tile of a layer and SQLAlchemy compiles it once.
    """
    z, x, y = (bindparam(name, type_=Integer) for name in ("z", "x", "y"))
    envelope = func.ST_TileEnvelope(z, x, y)
    world = func.ST_MakeEnvelope(-HALF_WORLD, -HALF_WORLD, HALF_WORLD, HALF_WORLD, 3857)
    margin = literal(policy.buffer / policy.extent, Double)
    buffered = func.ST_TileEnvelope(z, x, y, world, margin)
    search = func.ST_Transform(buffered, 4326)
    scale = bindparam("scale", type_=Double)
    left, top = bindparam("left", type_=Double), bindparam("top", type_=Double)
    geom = table.c[GEOMETRY_COLUMN]
    severest = severity_field(layer)
    # Web Mercator keeps the axes apart: the lon/lat bounds give the EPSG:3857 bounds
    west, east = _mercator_x(func.ST_XMin(geom)), _mercator_x(func.ST_XMax(geom))
    south, north = _mercator_y(func.ST_YMin(geom)), _mercator_y(func.ST_YMax(geom))
    rank = _rank(table.c[severest]) if severest else cast(null(), Integer)
    rows = (
        select(
            table.c.id.label("id"),
            rank.label("rank"),
            (func.ST_Dimension(geom) == 0).label("is_points"),
            ((west + east) / 2).label("mid_x"),
            ((south + north) / 2).label("mid_y"),
            (east - west).label("width"),
            (north - south).label("height"),
        )
        .where(geom.op("&&")(search))
        .cte("rows")
    )
    r = rows.c
    pixel = literal(float(policy.pixel), Double)
    cell = literal(float(policy.cell), Double)
    dense = select(func.count()).select_from(rows).scalar_subquery() > literal(
        policy.max_features, Integer
    )
    speck = and_(r.width * scale <= pixel, r.height * scale <= pixel)
    placed = select(
        r.id,
        r.rank,
        and_(dense, or_(r.is_points, speck)).label("grouped"),
        func.floor((r.mid_x - left) * scale / cell).label("cell_x"),
        func.floor((top - r.mid_y) * scale / cell).label("cell_y"),
    ).cte("placed")
    p = placed.c
    cells = (
        select(
            p.cell_x,
            p.cell_y,
            func.count().label("members"),
            func.min(p.id).label("first_id"),
            func.max(p.rank).label("rank"),
        )
        .where(p.grouped)
        .group_by(p.cell_x, p.cell_y)
        .cte("cells")
    )
    c = cells.c
    single_ids = union_all(
        select(p.id.label("id")).where(~p.grouped),
        select(c.first_id.label("id")).where(c.members == 1),
    ).subquery("single_ids")

    def mvt_geom(shape: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.ST_AsMVTGeom(
            shape, envelope, literal(policy.extent, Integer), literal(policy.buffer, Integer), True
        )

    # a feature drawn alone: its row read again by primary key (LIMIT 1: a lookup per id the
    # planner keeps as one, rather than joining the whole table)
    g = func.ST_Transform(geom, 3857)
    feature = (
        select(
            table.c.id.label("id"),
            *(_mvt_value(table.c[spec.name], spec).label(spec.name) for spec in fields),
            g.label("g"),
            (func.GeometryType(geom) == literal("POINT")).label("is_point"),
            (func.ST_Dimension(geom) == 0).label("is_points"),
        )
        .where(table.c.id == single_ids.c.id)
        .limit(1)
        .lateral("feature")
    )
    f = feature.c
    centre = func.ST_SetSRID(
        func.ST_MakePoint(
            (func.ST_XMin(f.g) + func.ST_XMax(f.g)) / 2, (func.ST_YMin(f.g) + func.ST_YMax(f.g)) / 2
        ),
        3857,
    )
    is_speck = and_(
        ~f.is_points,
        (func.ST_XMax(f.g) - func.ST_XMin(f.g)) * scale <= pixel,
        (func.ST_YMax(f.g) - func.ST_YMin(f.g)) * scale <= pixel,
    )
    shape: ColumnElement[Any] = f.g
    if simplify:
        shape = func.ST_SimplifyPreserveTopology(f.g, bindparam("tolerance", type_=Double))
    drawn = case(
        (f.is_point, mvt_geom(f.g)),
        (is_speck, mvt_geom(centre)),
        # a line or polygon that vanishes at this resolution, though really in the tile:
        # its centre stands for it
        else_=func.coalesce(
            mvt_geom(shape),
            case((func.ST_Intersects(f.g, buffered), mvt_geom(centre)), else_=null()),
        ),
    )
    names = ["id", *(spec.name for spec in fields)]
    singles = select(
        *(f[name] for name in names), cast(null(), BigInteger).label(COUNT), drawn.label("geom")
    ).select_from(single_ids.join(feature, true()))

    cell_centre = func.ST_SetSRID(
        func.ST_MakePoint(
            left + (c.cell_x + 0.5) * cell / scale, top - (c.cell_y + 0.5) * cell / scale
        ),
        3857,
    )
    aggregate_columns: list[ColumnElement[Any]] = []
    for name, spec in zip(names, [None, *fields], strict=True):
        if name == severest:
            aggregate_columns.append(_class_of(c.rank).label(name))
        else:
            kind = Text() if spec is None else _MVT_TYPES[spec.type]
            aggregate_columns.append(cast(null(), kind).label(name))
    aggregates = select(
        *aggregate_columns,
        c.members.cast(BigInteger).label(COUNT),
        mvt_geom(cell_centre).label("geom"),
    ).where(c.members > 1)
    features = union_all(singles, aggregates).subquery("features")
    return select(
        func.ST_AsMVT(
            features.table_valued(),
            literal(layer.id, Text),
            literal(policy.extent, Integer),
            literal("geom", Text),
            type_=LargeBinary,
        )
    )  # ST_AsMVT skips the rows whose geometry is NULL (clipped away)


def mvt_parameters(tile: TileAddress, policy: TilePolicy) -> dict[str, Any]:
    """The bound parameters of ``mvt_statement`` for ``tile``."""
    frame = tile.frame(policy.extent)
    return {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "scale": frame.scale,
        "left": frame.left,
        "top": frame.top,
        "tolerance": policy.pixel / frame.scale,  # one pixel, in metres
    }


def _mvt_value(column: ColumnElement[Any], spec: FieldSpec) -> ColumnElement[Any]:
    """A column as an MVT value: dates as ``YYYY-MM-DD``, lists as JSON array text."""
    if spec.type == "date":
        return func.to_char(column, literal("YYYY-MM-DD"))
    if spec.type == "list":
        return cast(func.array_to_json(column), Text)
    return column


def _mercator_x(lon: ColumnElement[Any]) -> ColumnElement[Any]:
    """EPSG:3857 x of a longitude (as ``ST_Transform`` computes it)."""
    return literal(EARTH_RADIUS, Double) * func.radians(lon)


def _mercator_y(lat: ColumnElement[Any]) -> ColumnElement[Any]:
    """EPSG:3857 y of a latitude, clamped to the grid's ±85.05°."""
    clamped = func.greatest(func.least(lat, MAX_LATITUDE), -MAX_LATITUDE)
    return literal(EARTH_RADIUS, Double) * func.ln(
        func.tan(literal(math.pi / 4, Double) + func.radians(clamped) / 2)
    )


def _rank(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A risk class as its severity rank (blue 1 … red 4); other values NULL."""
    return case(dict(SEVERITY), value=column)


def _class_of(rank: ColumnElement[Any]) -> ColumnElement[Any]:
    """The risk class of a severity rank."""
    return case({value: literal(name) for name, value in SEVERITY.items()}, value=rank)
