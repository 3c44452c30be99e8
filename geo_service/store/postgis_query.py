"""Feature queries on PostGIS: one indexed query per page, streamed scans, bounded counts.

A page is one ``SELECT … WHERE … ORDER BY … LIMIT n + 1 OFFSET m``: the extra row tells whether
another page follows, so no count is needed for the paging links. ``ST_Intersects`` with the
query box uses the layer's GiST index. The filter (``geo_service.store.filters``) becomes a
SQLAlchemy expression through pygeofilter's SQLAlchemy backend: every value is a bound
parameter and every column comes from the catalogue's table, never from request text.

How many features match (``numberMatched``) costs nothing when the page is the last one. Else
the planner estimates it (``EXPLAIN``, nothing read); when the estimate is at most
``EXACT_COUNT_LIMIT`` the matches are counted (a ``COUNT`` over ``LIMIT cap + 1``, so a wrong
estimate costs at most that), else the estimate is the answer. A large table is never counted
in full unless the caller asks for an exact count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import geopandas as gpd
import shapely
from geoalchemy2 import Geometry
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator
from sqlalchemy import (
    Connection,
    LargeBinary,
    Select,
    Table,
    and_,
    bindparam,
    func,
    literal,
    not_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from geo_service.catalogue import Layer
from geo_service.store.base import BBox, Page, SortKey
from geo_service.store.filters import GEOMETRY, SPATIAL_PREDICATES, in_order
from geo_service.store.models import GEOMETRY_COLUMN

#: Matches are counted exactly up to this many; past it ``numberMatched`` is an estimate.
EXACT_COUNT_LIMIT = 10_000


def page(
    conn: Connection,
    layer: Layer,
    table: Table,
    *,
    bbox: BBox | None,
    filter: ast.AstType | None,
    sortby: Sequence[SortKey],
    limit: int,
    offset: int,
    properties: Sequence[str] | None,
    exact_count: bool,
) -> Page:
    """One page of matching features, with the number matched (counted or estimated)."""
    _small_query_settings(conn)
    where = conditions(layer, table, bbox, filter)
    query = (
        _selection(layer, table, properties).where(*where).order_by(*_order(layer, table, sortby))
    )
    rows = conn.execute(query.limit(limit + 1).offset(offset)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    frame = _in_row_order(layer, rows)
    if not more and (rows or offset == 0):
        return Page(frame, offset + len(rows), exact=True, more=False)
    matched, exact = _number_matched(conn, table, where, exact_count)
    return Page(frame, max(matched, offset + len(rows) + more), exact=exact, more=more)


def stream(
    conn: Connection,
    layer: Layer,
    table: Table,
    *,
    bbox: BBox | None,
    filter: ast.AstType | None,
    sortby: Sequence[SortKey],
    limit: int | None,
    offset: int,
    properties: Sequence[str] | None,
    chunk_size: int,
) -> Iterator[gpd.GeoDataFrame]:
    """The matching features in frames of ``chunk_size``: one query, read by a server cursor."""
    where = conditions(layer, table, bbox, filter)
    query = (
        _selection(layer, table, properties).where(*where).order_by(*_order(layer, table, sortby))
    )
    query = query.offset(offset) if offset else query
    query = query.limit(limit) if limit is not None else query
    streaming = conn.execution_options(stream_results=True, yield_per=chunk_size)
    for rows in streaming.execute(query).mappings().partitions():
        yield _in_row_order(layer, rows)


def conditions(
    layer: Layer, table: Table, bbox: BBox | None, filter: ast.AstType | None
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a query: the box (GiST-indexed) and the filter."""
    from geo_service.store.postgis import _intersects  # the store's own box test

    where = [] if bbox is None else [_intersects(table, bbox)]
    if filter is not None:
        where.append(_SQLEvaluator(layer, table).evaluate(filter))
    return where


def _small_query_settings(conn: Connection) -> None:
    """No parallel workers and no JIT for this transaction's queries (``set_config`` local).

    A page reads a few hundred rows at most; on stock settings PostgreSQL may still start
    workers and compile, which costs 15-30 ms against well under a millisecond of real work (a
    2x2 km box of a 300,000-point table: 14 ms parallel, 0.4 ms serial).
    """
    conn.execute(
        select(
            func.set_config("max_parallel_workers_per_gather", "0", True),
            func.set_config("jit", "off", True),
        )
    )


def _selection(layer: Layer, table: Table, properties: Sequence[str] | None) -> Select[Any]:
    """The id, the chosen fields (all when None), ``source_crs`` and the geometry as WKB."""
    names = [f.name for f in layer.fields] if properties is None else list(properties)
    wanted = {"id", "source_crs", *names}
    columns = [c for c in table.columns if c.name in wanted and c.name != GEOMETRY_COLUMN]
    wkb = func.ST_AsBinary(table.c[GEOMETRY_COLUMN], type_=LargeBinary).label(GEOMETRY_COLUMN)
    return select(*columns, wkb)


def _order(layer: Layer, table: Table, sortby: Sequence[SortKey]) -> list[Any]:
    """ORDER BY the keys (text by code point, missing values last), then by id."""
    keys = [key for key in sortby if key.name != "id"]
    keys.append(next((key for key in sortby if key.name == "id"), SortKey("id")))
    order = []
    for key in keys:
        column: Any = table.c[key.name]
        if key.name != "id" and layer.field_map[key.name].type == "string":
            column = column.collate("C")
        order.append((column.desc() if key.descending else column.asc()).nulls_last())
    return order


def _in_row_order(layer: Layer, rows: Sequence[Any]) -> gpd.GeoDataFrame:
    """A canonical frame of result rows, in the order the rows came (not re-sorted by id)."""
    from geo_service.store.postgis import _frame  # the store's own row conversion

    return in_order(_frame(layer, rows), [row["id"] for row in rows])


def _number_matched(
    conn: Connection, table: Table, where: list[ColumnElement[bool]], exact_count: bool
) -> tuple[int, bool]:
    """Counted if the planner expects at most ``EXACT_COUNT_LIMIT`` (or if asked), else guessed."""
    matches = select(literal(1)).select_from(table).where(*where)
    if exact_count:
        everything = select(func.count()).select_from(matches.subquery())
        return int(conn.execute(everything).scalar_one()), True
    plan = conn.execute(_Explain(matches)).scalar_one()
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if estimate > EXACT_COUNT_LIMIT:
        return estimate, False
    capped = select(func.count()).select_from(matches.limit(EXACT_COUNT_LIMIT + 1).subquery())
    counted = int(conn.execute(capped).scalar_one())
    return (counted, True) if counted <= EXACT_COUNT_LIMIT else (max(estimate, counted), False)


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <query>``: the planner's estimate, nothing read."""

    inherit_cache = False

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.query, **kw))


class _SQLEvaluator(SQLAlchemyFilterEvaluator):
    """pygeofilter's SQLAlchemy backend on one layer's table.

    Overridden where the dialect needs it: text compared in code-point order (``COLLATE "C"``,
    as the embedded store compares), CQL2 ``LIKE`` escapes, and geometries bound as WKB.
    """

    def __init__(self, layer: Layer, table: Table) -> None:
        columns = {c.name: c for c in table.columns if c.name != GEOMETRY_COLUMN}
        columns[GEOMETRY] = table.c[GEOMETRY_COLUMN]
        super().__init__(columns, undefined_as_null=False)
        self.text_fields = {f.name for f in layer.fields if f.type == "string"}

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> Any:
        ordered = node.op.value not in ("=", "<>")
        return super().comparison(node, self._ordered(node.lhs, lhs) if ordered else lhs, rhs)

    @handle(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> Any:
        inside = and_(self._ordered(node.lhs, lhs).between(low, high))
        return not_(inside) if node.not_ else inside

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> Any:
        matched = lhs.like(bindparam(None, node.pattern), escape="\\")
        return not_(matched) if node.not_ else matched

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial_operation(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> Any:
        predicate = getattr(func, "ST_" + SPATIAL_PREDICATES[type(node)].capitalize())
        return predicate(lhs, rhs)

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> Any:
        wkb = shapely.to_wkb(shapely.geometry.shape(node.geometry), output_dimension=2)
        return func.ST_GeomFromWKB(bindparam(None, wkb, type_=LargeBinary), 4326, type_=Geometry)

    def _ordered(self, attribute: Any, column: Any) -> Any:
        """Text columns in code-point order; ``id`` already is (its column collation is C)."""
        name = attribute.name if isinstance(attribute, ast.Attribute) else None
        return column.collate("C") if name in self.text_fields else column
