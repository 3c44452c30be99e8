"""Vector tiles from PostGIS: one statement per tile, ``ST_AsMVTGeom`` and ``ST_AsMVT``.

The statement applies the rules of ``geo_service.tiling.vector`` (the same ones the in-process
encoder applies), reading only the rows the GiST index finds near the tile
(``geom && ST_Transform(ST_TileEnvelope(z, x, y, margin), 4326)``):

- ``rows``: the candidates, their properties as MVT values and their geometry in EPSG:3857;
- ``placed``: per candidate its centre and size in tile units, whether it is a pixel-sized
  "speck", whether the tile is dense (more candidates than ``max_features``), its grid cell, and
  how many candidates share the cell;
- singles (drawn as they are, simplified below ``detail_zoom``; specks as their centre point),
  and one aggregate point per crowded cell of a dense tile, carrying ``count``;
- ``ST_AsMVT`` of the union.

Every value is a bound parameter; identifiers come from the SQLAlchemy ``Table``.
"""

from __future__ import annotations

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
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from geo_service.catalogue import FieldSpec, Layer
from geo_service.store.models import GEOMETRY_COLUMN
from geo_service.tiling.grid import HALF_WORLD, TileAddress
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
    names = ["id", *(spec.name for spec in fields)]
    rows = (
        select(
            table.c.id.label("id"),
            *(_mvt_value(table.c[spec.name], spec).label(spec.name) for spec in fields),
            func.ST_Transform(geom, 3857).label("g"),
        )
        .where(geom.op("&&")(search))
        .cte("rows")
    )

    g = rows.c.g
    mid_x = (func.ST_XMin(g) + func.ST_XMax(g)) / 2
    mid_y = (func.ST_YMin(g) + func.ST_YMax(g)) / 2
    unit_x, unit_y = (mid_x - left) * scale, (top - mid_y) * scale
    pixel = literal(float(policy.pixel), Double)
    is_point = func.GeometryType(g) == literal("POINT")
    is_points = func.ST_Dimension(g) == 0
    speck = and_(
        ~is_points,
        (func.ST_XMax(g) - func.ST_XMin(g)) * scale <= pixel,
        (func.ST_YMax(g) - func.ST_YMin(g)) * scale <= pixel,
    )
    candidates = select(func.count()).select_from(rows).scalar_subquery()
    dense = candidates > literal(policy.max_features, Integer)
    grouped = and_(dense, or_(is_points, speck))
    cell = literal(float(policy.cell), Double)
    cell_x, cell_y = func.floor(unit_x / cell), func.floor(unit_y / cell)
    placed = select(
        *(rows.c[name] for name in names),
        g.label("g"),
        func.ST_SetSRID(func.ST_MakePoint(mid_x, mid_y), 3857).label("centre"),
        is_point.label("is_point"),
        speck.label("speck"),
        grouped.label("grouped"),
        cell_x.label("cell_x"),
        cell_y.label("cell_y"),
        func.count().over(partition_by=[grouped, cell_x, cell_y]).label("members"),
    ).cte("placed")

    def mvt_geom(shape: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.ST_AsMVTGeom(
            shape, envelope, literal(policy.extent, Integer), literal(policy.buffer, Integer), True
        )

    p = placed.c
    shape: ColumnElement[Any] = p.g
    if simplify:
        shape = func.ST_SimplifyPreserveTopology(p.g, bindparam("tolerance", type_=Double))
    drawn = case(
        (p.is_point, mvt_geom(p.g)),
        (p.speck, mvt_geom(p.centre)),
        # a line or polygon that vanishes at this resolution, though really in the tile:
        # its centre stands for it
        else_=func.coalesce(
            mvt_geom(shape),
            case((func.ST_Intersects(p.g, buffered), mvt_geom(p.centre)), else_=null()),
        ),
    )
    singles = select(
        *(p[name] for name in names),
        cast(null(), BigInteger).label(COUNT),
        drawn.label("geom"),
    ).where(or_(~p.grouped, p.members == 1))

    severest = severity_field(layer)
    cell_centre = func.ST_SetSRID(
        func.ST_MakePoint(
            left + (p.cell_x + 0.5) * cell / scale, top - (p.cell_y + 0.5) * cell / scale
        ),
        3857,
    )
    aggregate_columns: list[ColumnElement[Any]] = []
    for name, spec in zip(names, [None, *fields], strict=True):
        if name == severest:
            aggregate_columns.append(_most_severe(p[name]).label(name))
        else:
            kind = Text() if spec is None else _MVT_TYPES[spec.type]
            aggregate_columns.append(cast(null(), kind).label(name))
    aggregates = (
        select(
            *aggregate_columns,
            func.count().cast(BigInteger).label(COUNT),
            mvt_geom(cell_centre).label("geom"),
        )
        .where(and_(p.grouped, p.members > 1))
        .group_by(p.cell_x, p.cell_y)
    )
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


def _most_severe(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The most severe risk class among a cell's features."""
    rank = func.max(case({name: rank for name, rank in SEVERITY.items()}, value=column))
    return case({rank: literal(name) for name, rank in SEVERITY.items()}, value=rank)
