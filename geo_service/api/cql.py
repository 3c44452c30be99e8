"""Filters from requests: CQL2 text or JSON, property filters and ``datetime``, checked.

pygeofilter parses; this module then checks the tree against the layer and rewrites it into
the dialect the stores evaluate (``geo_service.store.filters``): every property is a queryable
field of the catalogue, every value has the field's type, literals sit on the right, spatial
literals are lon/lat, and temporal predicates on a date field become plain comparisons. What
does not fit is a 400 that names the parameter, never a store error.

Corrections to pygeofilter 0.4: ``T_INTERSECTS`` is parsed as ``T_OVERLAPS`` there (it is read
here as ``NOT T_DISJOINT``); a CQL2 JSON ``bbox`` literal has its numbers put in the wrong
places (it is turned into a polygon before parsing); and its CQL2 text grammar is extended with
CQL2's function form of temporal predicates and intervals of dates with open (``..``) ends.
Its grammar also learns ``''`` for a quote inside a text literal. Not supported: functions
(``CASEI`` …), arithmetic, property-to-property comparisons and array predicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from lark import Lark, v_args
from lark.exceptions import LarkError
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json.parser import parse as parse_cql2_json
from pygeofilter.parsers.cql2_json.parser import walk_cql_json
from pygeofilter.parsers.cql2_text import parser as cql2_text_module
from shapely.geometry.base import BaseGeometry

from geo_service.api.crs import CRS84, geometry_to_crs84
from geo_service.api.errors import BadRequest
from geo_service.catalogue import FieldSpec, Layer
from geo_service.store.filters import GEOMETRY, QUERYABLE_TYPES

FilterLang = Literal["cql2-text", "cql2-json"]

_FLIPPED = {
    ast.Equal: ast.Equal,
    ast.NotEqual: ast.NotEqual,
    ast.LessThan: ast.GreaterThan,
    ast.LessEqual: ast.GreaterEqual,
    ast.GreaterThan: ast.LessThan,
    ast.GreaterEqual: ast.LessEqual,
}
_CONVERSE = {ast.GeometryContains: ast.GeometryWithin, ast.GeometryWithin: ast.GeometryContains}
_SHOWN = 200  # characters of a bad filter quoted back


def queryable_fields(layer: Layer) -> list[FieldSpec]:
    """The fields a filter or ``sortby`` may name (besides ``id`` and ``geometry``)."""
    return [f for f in layer.fields if f.type in QUERYABLE_TYPES]


def parse_filter(
    layer: Layer, text: str, lang: FilterLang = "cql2-text", crs: str = CRS84
) -> ast.AstType:
    """The ``filter`` parameter as a checked AST; geometries in it are in ``crs``."""
    try:
        node, temporal = (
            (_text_parser().parse(text), {}) if lang == "cql2-text" else _parse_json(text)
        )
        return _Checker(layer, crs, f"filter {_shown(text)}", temporal).check(node)
    except LarkError as exc:
        where = getattr(exc, "column", None)
        at = f" at character {where}" if isinstance(where, int) and where > 0 else ""
        raise BadRequest(f"filter {_shown(text)}: not valid {lang}{at}") from None
    except RecursionError:
        raise BadRequest(f"filter {_shown(text)}: nested too deeply") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise BadRequest(f"filter {_shown(text)}: not valid {lang}") from None


def property_filter(layer: Layer, name: str, text: str) -> ast.AstType:
    """``name=text`` from the query string: the queryable equals the value, typed."""
    spec = _queryable(layer, name, f"parameter {name!r}")
    value = _from_text(spec, text, name) if spec is not None else text
    if spec is not None and spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(map(str, spec.enum))
        raise BadRequest(f"{name} {text!r}: not one of {allowed}")
    return ast.Equal(ast.Attribute(name), value)


def datetime_filter(layer: Layer, text: str) -> ast.AstType:
    """``datetime`` (an instant, or ``start/end`` with ``..`` for an open end) on the date field."""
    spec = layer.date_field
    if spec is None:
        raise BadRequest(f"datetime {text!r}: layer {layer.id!r} has no date field to filter on")
    parts = text.split("/")
    try:
        if len(parts) == 1:
            return ast.Equal(ast.Attribute(spec.name), _day(parts[0]))
        if len(parts) != 2:
            raise ValueError
        start, end = (None if p in ("..", "") else _day(p) for p in parts)
    except ValueError:
        raise BadRequest(
            f"datetime {text!r}: expected a date or time (RFC 3339), or start/end with .. "
            "for an open end"
        ) from None
    if start is not None and end is not None and start > end:
        raise BadRequest(f"datetime {text!r}: the start is after the end")
    return _within(ast.Attribute(spec.name), start, end)


def combine(*nodes: ast.AstType | None) -> ast.AstType | None:
    """All of the given filters (None where there are none)."""
    present = [node for node in nodes if node is not None]
    return ast.And.from_items(*present) if len(present) > 1 else (present or [None])[0]


# -- parsing --------------------------------------------------------------------------------


# CQL2's own syntax for temporal predicates and intervals, beside pygeofilter's infix one:
# T_INTERSECTS(deadline, INTERVAL('2022-01-01', '..')) with dates, times or ".." as bounds;
# and '' for a quote inside a text literal, as CQL2 (and SQL) write it
_GRAMMAR_EXTENSION = r"""
%extend temporal_predicate: _binary_temporal_predicate_func "(" expression "," expression ")" \
    -> temporal_function
%override interval: "INTERVAL"i "(" "'" _bound "'" "," "'" _bound "'" ")"
_bound: DATETIME | DATE | OPEN_END
OPEN_END: ".."
%override SINGLE_QUOTED: /'(?:[^']|'')*'/
"""


@dataclass(frozen=True)
class _Temporal:
    """A temporal predicate by its CQL2 name (pygeofilter's AST has no ``T_INTERSECTS``)."""

    op: str
    lhs: Any
    rhs: Any


@v_args(inline=True)
class _Transformer(cql2_text_module.CQLTransformer):
    """pygeofilter's CQL2 text transformer, keeping temporal predicates by name."""

    def binary_temporal_predicate(self, lhs: Any, op: Any, rhs: Any) -> _Temporal:
        return _Temporal(str(op).lower(), lhs, rhs)

    def temporal_function(self, op: Any, lhs: Any, rhs: Any) -> _Temporal:
        return _Temporal(str(op).lower(), lhs, rhs)

    def interval(self, start: Any, end: Any) -> values.Interval:
        return values.Interval(start, end)

    def SINGLE_QUOTED(self, token: Any) -> str:  # Lark's callback for the terminal
        return str(token)[1:-1].replace("''", "'")

    def OPEN_END(self, token: Any) -> None:
        return None


@cache
def _text_parser() -> Lark:
    grammar = Path(cql2_text_module.__file__).with_name("grammar.lark").read_text()
    return Lark(
        grammar + _GRAMMAR_EXTENSION,
        parser="lalr",
        maybe_placeholders=False,
        transformer=_Transformer(),
        import_paths=[str(Path(cql2_text_module.__file__).parent.parent)],
    )


def _parse_json(text: str) -> tuple[ast.AstType, dict[str, _Temporal]]:
    """The AST, and the temporal predicates it holds as ``IsNull(<placeholder>)``.

    pygeofilter's JSON parser knows neither ``t_intersects`` nor ``t_disjoint``: temporal
    predicates are taken out before it runs and put back by the checker.
    """
    temporal: dict[str, _Temporal] = {}
    return parse_cql2_json(_fix_json(json.loads(text), temporal)), temporal


def _fix_json(node: Any, temporal: dict[str, _Temporal]) -> Any:
    """Temporal predicates replaced by placeholders; ``bbox`` literals as polygons."""
    if isinstance(node, list):
        return [_fix_json(item, temporal) for item in node]
    if not isinstance(node, dict):
        return node
    if str(node.get("op", "")).startswith("t_"):
        lhs, rhs = node["args"]
        placeholder = f"\0temporal{len(temporal)}"
        temporal[placeholder] = _Temporal(
            node["op"], walk_cql_json(lhs), walk_cql_json(_fix_json(rhs, temporal))
        )
        return {"op": "isNull", "args": [{"property": placeholder}]}
    if set(node) == {"bbox"}:
        box = [float(v) for v in node["bbox"]]
        box = [box[0], box[1], box[3], box[4]] if len(box) == 6 else box
        return shapely.geometry.mapping(shapely.box(*box))
    return {key: _fix_json(value, temporal) for key, value in node.items()}


# -- checking -------------------------------------------------------------------------------


class _Checker:
    """Walks a parsed filter, checking it against the layer and rewriting it into the dialect."""

    def __init__(self, layer: Layer, crs: str, what: str, temporal: dict[str, _Temporal]) -> None:
        self.layer, self.crs, self.what, self.temporal = layer, crs, what, temporal

    def check(self, node: Any) -> ast.AstType:
        if isinstance(node, ast.And | ast.Or):
            return type(node)(self.check(node.lhs), self.check(node.rhs))
        if isinstance(node, ast.Not):
            return ast.Not(self.check(node.sub_node))
        if isinstance(node, ast.IsNull) and getattr(node.lhs, "name", None) in self.temporal:
            return self._temporal(self.temporal[node.lhs.name])
        if isinstance(node, _Temporal):
            return self._temporal(node)
        if isinstance(node, ast.Comparison):
            return self._comparison(node)
        if isinstance(node, ast.Between):
            spec = self._property(node.lhs)
            low, high = self._value(spec, node.low), self._value(spec, node.high)
            return ast.Between(node.lhs, low, high, node.not_)
        if isinstance(node, ast.In):
            spec = self._property(node.lhs)
            options = [self._value(spec, option) for option in node.sub_nodes]
            return ast.In(node.lhs, options, node.not_)
        if isinstance(node, ast.IsNull):
            self._property(node.lhs)
            return ast.IsNull(node.lhs, node.not_)
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.SpatialComparisonPredicate):
            return self._spatial(node)
        if isinstance(node, ast.BBox):
            box = shapely.box(node.minx, node.miny, node.maxx, node.maxy)
            return self._spatial(ast.GeometryIntersects(node.lhs, box))
        raise self._error(f"{_describe(node)} is not supported")

    def _comparison(self, node: ast.Comparison) -> ast.AstType:
        lhs, rhs, kind = node.lhs, node.rhs, type(node)
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs, kind = rhs, lhs, _FLIPPED[kind]
        spec = self._property(lhs)
        return kind(lhs, self._value(spec, rhs))

    def _like(self, node: ast.Like) -> ast.AstType:
        spec = self._property(node.lhs)
        if spec is not None and spec.type != "string":
            raise self._error(f"LIKE needs a text property; {spec.name} is {spec.type}")
        pattern = node.pattern
        if not isinstance(pattern, str) or (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            raise self._error("a LIKE pattern is text and does not end in a lone backslash")
        return ast.Like(node.lhs, pattern, False, "%", "_", "\\", node.not_)

    def _spatial(self, node: ast.SpatialComparisonPredicate) -> ast.AstType:
        lhs, rhs, kind = node.lhs, node.rhs, type(node)
        if not _is_geometry_property(lhs) and _is_geometry_property(rhs):
            lhs, rhs, kind = rhs, lhs, _CONVERSE.get(kind, kind)
        if not _is_geometry_property(lhs):
            raise self._error(f"a spatial predicate compares {GEOMETRY!r} with a geometry")
        try:
            geometry = geometry_to_crs84(self._geometry(rhs), self.crs)
        except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError):
            raise self._error("the geometry literal is not a valid geometry") from None
        if not shapely.is_valid(geometry) or not _finite(geometry):
            reason = shapely.is_valid_reason(geometry)
            raise self._error(f"the geometry is not valid ({reason})")
        return kind(lhs, values.Geometry(shapely.geometry.mapping(geometry)))

    def _temporal(self, node: _Temporal) -> ast.AstType:
        """A temporal predicate on a date field (a whole day) as comparisons of days."""
        spec = self._property(node.lhs)
        if spec is None or spec.type != "date":
            raise self._error(f"{node.op.upper()} needs a date property, not {_describe(node.lhs)}")
        prop, rhs, op = node.lhs, node.rhs, node.op
        if isinstance(rhs, values.Interval):
            start, end = (None if v is None else _as_day(v) for v in (rhs.start, rhs.end))
        elif isinstance(rhs, date):
            start = end = _as_day(rhs)
        else:
            raise self._error(f"{op.upper()} compares a date property with a date or an interval")
        if start is not None and end is not None and start > end:
            raise self._error("the interval starts after it ends")
        if op == "t_intersects":
            return _within(prop, start, end)
        if start is None and end is None:
            raise self._error("an interval open at both ends leaves nothing to compare")
        if op == "t_before" and start is not None:
            return ast.LessThan(prop, start)
        if op == "t_after" and end is not None:
            return ast.GreaterThan(prop, end)
        if op == "t_equals" and not isinstance(rhs, values.Interval):
            return ast.Equal(prop, start)
        if op == "t_disjoint":
            sides = [ast.LessThan(prop, start)] if start is not None else []
            sides += [ast.GreaterThan(prop, end)] if end is not None else []
            return sides[0] if len(sides) == 1 else ast.Or(*sides)
        if op == "t_during" and isinstance(rhs, values.Interval):
            inside = [ast.GreaterThan(prop, start)] if start is not None else []
            inside += [ast.LessThan(prop, end)] if end is not None else []
            return inside[0] if len(inside) == 1 else ast.And(*inside)
        raise self._error(
            f"{op.upper()} with this argument is not supported on {spec.name} (a date); use "
            "T_INTERSECTS, T_DISJOINT, T_BEFORE, T_AFTER, T_EQUALS (a date) or T_DURING "
            "(an interval)"
        )

    def _property(self, node: Any) -> FieldSpec | None:
        """The field an attribute names (None for ``id``)."""
        if not isinstance(node, ast.Attribute):
            raise self._error(f"expected a property, found {_describe(node)}")
        return _queryable(self.layer, node.name, self.what)

    def _value(self, spec: FieldSpec | None, value: Any) -> Any:
        kind = "string" if spec is None else spec.type
        name = "id" if spec is None else spec.name
        if isinstance(value, ast.Node | values.Geometry | values.Interval):
            raise self._error(f"{name} is compared with {_describe(value)}; expected a {kind}")
        checked = _typed(kind, value)
        if checked is None and kind == "date" and isinstance(value, datetime):
            raise self._error(f"{name} holds dates: compare it with DATE('YYYY-MM-DD')")
        if checked is None:
            raise self._error(f"{name} is a {kind}; {value!r} is not")
        return checked

    def _geometry(self, node: Any) -> BaseGeometry:
        if isinstance(node, values.Geometry):
            return shapely.geometry.shape(node.geometry)
        if isinstance(node, BaseGeometry):
            return node
        if isinstance(node, ast.Function) and node.name.lower() == "bbox":
            box = [float(v) for v in node.arguments]
            return shapely.box(*(box[:2] + box[3:5] if len(box) == 6 else box))
        raise self._error(f"expected a geometry, found {_describe(node)}")

    def _error(self, message: str) -> BadRequest:
        return BadRequest(f"{self.what}: {message}")


def _queryable(layer: Layer, name: str, what: str) -> FieldSpec | None:
    if name == "id":
        return None
    spec = layer.field_map.get(name)
    if spec is None or spec.type not in QUERYABLE_TYPES:
        known = ", ".join(["id", *(f.name for f in queryable_fields(layer))])
        why = (
            "is not a property" if spec is None else f"is a {spec.type} field and cannot be queried"
        )
        raise BadRequest(f"{what}: {name!r} {why} of {layer.id}; queryables: {known}")
    return spec


def _typed(kind: str, value: Any) -> Any:
    """``value`` as a value of a field of type ``kind``, None when it is not one."""
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind in ("integer", "number"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok and (not isinstance(value, float) or value == value) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, datetime):  # a date field compares with dates, not times
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _from_text(spec: FieldSpec, text: str, name: str) -> Any:
    """A property filter's text as a value of the field's type."""
    try:
        if spec.type == "integer":
            return int(text)
        if spec.type == "number":
            value = float(text)
            if value != value:
                raise ValueError
            return value
        if spec.type == "boolean":
            flags = {"true": True, "1": True, "false": False, "0": False}
            return flags[text.strip().lower()]
        if spec.type == "date":
            return date.fromisoformat(text)
    except (ValueError, KeyError):
        raise BadRequest(f"{name} {text!r}: expected a {spec.type}") from None
    return text


def _within(prop: ast.Attribute, start: date | None, end: date | None) -> ast.AstType:
    """The date property within ``[start, end]`` (either end open)."""
    if start is None and end is None:
        return ast.IsNull(prop, not_=True)
    if start == end:
        return ast.Equal(prop, start)
    if start is None:
        return ast.LessEqual(prop, end)
    if end is None:
        return ast.GreaterEqual(prop, start)
    return ast.Between(prop, start, end, False)


def _day(text: str) -> date:
    """A date, or the UTC date of an RFC 3339 time (``2022-01-01T``, as GDAL writes a date, too)."""
    text = text.strip().rstrip("Tt")
    if "T" in text.upper() or " " in text:
        return _as_day(datetime.fromisoformat(text.replace("z", "Z")))
    return date.fromisoformat(text)


def _as_day(moment: date) -> date:
    """The day of a date, or the UTC day of a time (dates are whole days)."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).date()
    return moment


def _finite(geometry: BaseGeometry) -> bool:
    return bool(np.isfinite(shapely.get_coordinates(geometry)).all())


def _is_geometry_property(node: Any) -> bool:
    return isinstance(node, ast.Attribute) and node.name == GEOMETRY


def _describe(node: Any) -> str:
    if isinstance(node, ast.Function):
        return f"function {node.name.upper()}()"
    if isinstance(node, ast.Attribute):
        return f"property {node.name!r}"
    if isinstance(node, ast.Node):
        return type(node).__name__
    return repr(node)


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")
