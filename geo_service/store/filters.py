r"""The filter dialect both stores take, and its evaluation on in-memory frames.

A store's ``query`` takes a pygeofilter AST (parsed from CQL2 and checked against the layer by
``geo_service.api.cql``) made only of:

- ``And``, ``Or``, ``Not``;
- ``Equal`` … ``GreaterEqual`` with an ``Attribute`` on the left and a literal on the right;
- ``Between`` (attribute, two literals), ``In`` (attribute, literals), ``IsNull`` (attribute);
- ``Like`` (attribute, CQL2 pattern: ``%`` any run of characters, ``_`` one, ``\`` escapes);
- a spatial comparison (``GeometryIntersects`` … ``GeometryEquals``) of ``Attribute("geometry")``
  with a ``values.Geometry`` in lon/lat (EPSG:4326).

Attributes are ``id`` or the layer's scalar fields (``QUERYABLE_TYPES``); literals are ``str``,
``int``, ``float``, ``bool`` or, for date fields, ``datetime.date``. Logic is SQL's: a comparison
with a missing value is unknown, ``NOT`` unknown stays unknown, and only rows for which the
whole filter is true match. PostGIS evaluates the AST as SQL (``postgis_query``); the
embedded store evaluates it here, on pandas columns with three-valued (Kleene) booleans, so
both select the same features.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.geopandas.evaluate import GeoPandasEvaluator

from geo_service.catalogue import Layer
from geo_service.store.base import SortKey

QUERYABLE_TYPES = frozenset({"string", "integer", "number", "boolean", "date"})
GEOMETRY = "geometry"

#: Spatial comparisons of the dialect, by the name GEOS/shapely (and PostGIS, ``ST_…``) give them.
SPATIAL_PREDICATES: dict[type[ast.SpatialComparisonPredicate], str] = {
    ast.GeometryIntersects: "intersects",
    ast.GeometryDisjoint: "disjoint",
    ast.GeometryContains: "contains",
    ast.GeometryWithin: "within",
    ast.GeometryTouches: "touches",
    ast.GeometryCrosses: "crosses",
    ast.GeometryOverlaps: "overlaps",
    ast.GeometryEquals: "equals",
}

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def attributes(node: ast.AstType | None) -> set[str]:
    """The attribute names a filter reads."""
    if node is None:
        return set()
    if isinstance(node, ast.Attribute):
        return {node.name}
    found: set[str] = set()
    for sub in node.get_sub_nodes() if isinstance(node, ast.Node) else []:
        found |= attributes(sub)
    return found


def frame_mask(layer: Layer, frame: gpd.GeoDataFrame, node: ast.AstType) -> np.ndarray:
    """Which rows of ``frame`` (canonical dtypes, at least the columns read) match ``node``."""
    columns: dict[str, Any] = {}
    for name in attributes(node):
        if name == GEOMETRY:
            columns[name] = frame.geometry
        elif name == "id" or layer.field_map[name].type == "string":
            columns[name] = frame[name].astype("string")
        else:
            columns[name] = frame[name]
    result = _FrameEvaluator(pd.DataFrame(columns, index=frame.index)).evaluate(node)
    return pd.Series(result, index=frame.index).astype("boolean").fillna(False).to_numpy(bool)


def sort_order(frame: pd.DataFrame, sortby: Sequence[SortKey]) -> np.ndarray:
    """Row positions of ``frame`` in ``sortby`` order, then by id; missing values last.

    Text sorts by code point, as PostgreSQL's ``C`` collation does.
    """
    keys = [key for key in sortby if key.name != "id"] + [
        next((key for key in sortby if key.name == "id"), SortKey("id"))
    ]
    data = {
        str(i): frame[key.name].astype("string")
        if frame[key.name].dtype == object
        else frame[key.name]
        for i, key in enumerate(keys)
    }
    ordered = (
        pd.DataFrame(data)
        .reset_index(drop=True)
        .sort_values(
            by=list(data),
            ascending=[not key.descending for key in keys],
            na_position="last",
            kind="stable",
        )
    )
    return ordered.index.to_numpy()


def in_order(frame: gpd.GeoDataFrame, ids: Sequence[str]) -> gpd.GeoDataFrame:
    """The rows of ``frame`` (one per id) in the order of ``ids``."""
    positions = pd.Index(frame["id"]).get_indexer(list(ids))
    return frame.iloc[positions].reset_index(drop=True)


def like_regex(pattern: str) -> str:
    """A CQL2 ``LIKE`` pattern as a regular expression matching the whole text."""
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "".join(parts)


class _FrameEvaluator(GeoPandasEvaluator):
    """pygeofilter's geopandas backend with SQL's three-valued logic.

    Every predicate answers a nullable ``boolean`` Series (missing where an operand is), so
    ``And``/``Or``/``Not`` (inherited) follow Kleene logic exactly as SQL does.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__(frame)

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> pd.Series:
        return _unknown_if_missing(_COMPARE[node.op.value](lhs, rhs), lhs)

    @handle(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> pd.Series:
        inside = _unknown_if_missing(lhs.between(low, high, inclusive="both"), lhs)
        return ~inside if node.not_ else inside

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> pd.Series:
        matched = lhs.str.fullmatch(like_regex(node.pattern), flags=re.DOTALL)
        matched = _unknown_if_missing(matched, lhs)
        return ~matched if node.not_ else matched

    @handle(ast.In)
    def in_(self, node: ast.In, lhs: Any, *options: Any) -> pd.Series:
        found = _unknown_if_missing(lhs.isin(list(options)), lhs)
        return ~found if node.not_ else found

    @handle(ast.IsNull)
    def null(self, node: ast.IsNull, lhs: Any) -> pd.Series:
        missing = lhs.isna().astype("boolean")
        return ~missing if node.not_ else missing

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial_operation(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> Any:
        predicate = getattr(shapely, SPATIAL_PREDICATES[type(node)])
        geometries = np.asarray(lhs.values, dtype=object)
        result = pd.Series(predicate(geometries, rhs), index=lhs.index)
        return _unknown_if_missing(result, lhs)

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> Any:
        return shapely.geometry.shape(node.geometry)

    @handle(date)
    def date_literal(self, node: date) -> pd.Timestamp:
        return pd.Timestamp(node)


def _unknown_if_missing(result: Any, operand: pd.Series) -> pd.Series:
    """``result`` as a nullable boolean Series, unknown (NA) where ``operand`` is missing."""
    answer = pd.Series(result, index=operand.index).astype("boolean")
    return answer.mask(operand.isna().to_numpy(bool))
