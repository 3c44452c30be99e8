"""Request parameters of the feature API: formats by ``f`` or ``Accept``, and the items query.

Every parameter is declared once with its description, so the OpenAPI document at ``/api``
describes it; values are checked here and a bad one is a 400 naming the parameter and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Query, Request
from pygeofilter.ast import AstType

from geo_service.api.cql import (
    FilterLang,
    combine,
    datetime_filter,
    parse_filter,
    property_filter,
    queryable_fields,
)
from geo_service.api.crs import parse_bbox, parse_crs
from geo_service.api.errors import BadRequest
from geo_service.catalogue import Layer
from geo_service.store import BBox, SortKey

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000

MEDIA_TYPES = {
    "json": "application/json",
    "geojson": "application/geo+json",
    "html": "text/html",
    "csv": "text/csv",
    "ndjson": "application/x-ndjson",
    "gpkg": "application/geopackage+sqlite3",
}
OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_MEDIA_TYPE = "application/schema+json"

Format = Literal["json", "html"]
ItemFormat = Literal["geojson", "json", "html"]
ItemsFormat = Literal["geojson", "json", "html", "csv", "ndjson", "gpkg"]

_F_DESCRIPTION = (
    "Response format; without it the `Accept` header decides ({}), and JSON is the default."
)


def negotiate(request: Request, f: str | None, offered: tuple[str, ...]) -> str:
    """The format to answer in: ``f`` when given, else the best ``Accept`` match, else the first.

    Ties go to the order of ``offered``, so ``*/*`` (OWSLib, curl) gets JSON and a browser,
    which prefers ``text/html``, gets HTML.
    """
    if f is not None:
        return f
    qualities = _accepted(request.headers.get("accept", ""))
    best, best_q = offered[0], 0.0
    for name in offered:
        kind = MEDIA_TYPES[name]
        q = max(
            qualities.get(kind, 0.0),
            qualities.get(kind.split("/")[0] + "/*", 0.0),
            qualities.get("*/*", 0.0),
        )
        if q > best_q:
            best, best_q = name, q
    return best


def f_query(*names: str) -> object:
    """The ``f`` parameter's declaration, naming the media type of each format."""
    shown = ", ".join(f"`{name}` → {MEDIA_TYPES[name]}" for name in names)
    return Query(description=_F_DESCRIPTION.format(shown))


CrsParam = Annotated[
    str | None,
    Query(
        description="CRS of the returned geometries: a URI from the collection's `crs` list, or "
        "`EPSG:4326`, `EPSG:4490` (both latitude first), `EPSG:3857`; default CRS84 (longitude "
        "first). The `Content-Crs` header names it.",
    ),
]


@dataclass
class FilterQuery:
    """Which features of a collection to select, and how (OGC API – Features Parts 2, 3).

    Shared by the items pages and the downloads (``geo_service.api.routes_downloads``).
    """

    bbox: Annotated[
        str | None,
        Query(
            description="Only features intersecting this box: `minx,miny,maxx,maxy` in "
            "`bbox-crs` (default CRS84: `minlon,minlat,maxlon,maxlat`), e.g. "
            "`110.5,30.5,110.6,30.6`.",
        ),
    ] = None
    bbox_crs: Annotated[
        str | None,
        Query(
            alias="bbox-crs",
            description="CRS of `bbox`: a URI from the collection's `crs` list, or `EPSG:4326`, "
            "`EPSG:4490` (both latitude first), `EPSG:3857`; default CRS84 (longitude first).",
        ),
    ] = None
    crs: CrsParam = None
    filter: Annotated[
        str | None,
        Query(
            description="A CQL2 filter on the queryables, e.g. `major_hazard_grade <= 2 AND "
            "S_INTERSECTS(geometry, BBOX(110.5,30.5,110.6,30.6))` or `T_INTERSECTS("
            "relocation_deadline, INTERVAL('2022-01-01','2022-12-31'))`.",
        ),
    ] = None
    filter_lang: Annotated[
        FilterLang,
        Query(alias="filter-lang", description="Encoding of `filter`: CQL2 text or CQL2 JSON."),
    ] = "cql2-text"
    filter_crs: Annotated[
        str | None,
        Query(
            alias="filter-crs",
            description="CRS of the geometries in `filter` (as for `bbox-crs`); default CRS84.",
        ),
    ] = None
    sortby: Annotated[
        str | None,
        Query(
            description="Sort keys, comma-separated queryables, `-` before one for descending, "
            "e.g. `-major_hazard_grade,name`; features with no value come last; ties by id.",
        ),
    ] = None
    properties: Annotated[
        str | None,
        Query(
            description="Only these properties (comma-separated); default all. The id and the "
            "geometry always come.",
        ),
    ] = None
    datetime: Annotated[
        str | None,
        Query(
            description="Only features whose date (the layer's `temporal_field`, else its first "
            "date field) lies in this instant or interval: `2022-12-31`, "
            "`2022-01-01/2022-12-31`, `../2022-12-31`, `2022-01-01/..`.",
        ),
    ] = None


@dataclass
class ItemsQuery(FilterQuery):
    """Which features of a collection to return, and how (OGC API – Features Parts 1, 2, 3)."""

    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description=f"At most this many features (1 to {MAX_LIMIT})."),
    ] = DEFAULT_LIMIT
    offset: Annotated[
        int, Query(ge=0, description="Skip this many matching features first (paging).")
    ] = 0
    result_type: Annotated[
        Literal["results", "hits"],
        Query(
            alias="resultType",
            description="`hits`: no features, only `numberMatched`, counted exactly.",
        ),
    ] = "results"


#: Query parameters of the items route; any other name must be a queryable (a property filter).
RESERVED = frozenset(
    {"f", "bbox", "bbox-crs", "crs", "limit", "offset", "filter", "filter-lang", "filter-crs"}
    | {"sortby", "properties", "datetime", "resultType"}
)


@dataclass(frozen=True)
class Selection:
    """What the store is asked for: the checked form of an ``ItemsQuery``."""

    bbox: BBox | None
    filter: AstType | None
    sortby: list[SortKey]
    properties: list[str] | None
    crs: str


def selection(layer: Layer, query: FilterQuery, request: Request | None) -> Selection:
    """Check every parameter against the layer; 400 naming the first bad one.

    The request's other query parameters are property filters; without a request (the CLI)
    there are none.
    """
    crs = parse_crs(query.crs, "crs")
    bbox_crs = parse_crs(query.bbox_crs, "bbox-crs")
    bbox = None if query.bbox is None else parse_bbox(query.bbox, bbox_crs)
    pairs = [] if request is None else request.query_params.multi_items()
    by_property = [
        property_filter(layer, name, value) for name, value in pairs if name not in RESERVED
    ]
    cql = None
    if query.filter is not None:
        filter_crs = parse_crs(query.filter_crs, "filter-crs")
        cql = parse_filter(layer, query.filter, query.filter_lang, filter_crs)
    when = None if query.datetime is None else datetime_filter(layer, query.datetime)
    return Selection(
        bbox=bbox,
        filter=combine(*by_property, cql, when),
        sortby=sort_keys(layer, query.sortby),
        properties=property_names(layer, query.properties),
        crs=crs,
    )


def sort_keys(layer: Layer, text: str | None) -> list[SortKey]:
    """``sortby`` as keys: queryables (or ``id``), ``-`` for descending, ``+`` or none ascending."""
    if not text:
        return []
    sortable = {"id", *(f.name for f in queryable_fields(layer))}
    keys = []
    for item in text.split(","):
        name = item.strip().lstrip("+-").strip()
        if name not in sortable:
            raise BadRequest(
                f"sortby {text!r}: {name!r} is not a sortable property of {layer.id}; "
                f"sortable: {', '.join(sorted(sortable))}"
            )
        keys.append(SortKey(name, descending=item.strip().startswith("-")))
    return keys


def property_names(layer: Layer, text: str | None) -> list[str] | None:
    """``properties`` as field names (None: all); 400 naming an unknown one."""
    if text is None:
        return None
    known = [f.name for f in layer.fields] + ["source_crs"]
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadRequest(
            f"properties {text!r}: {', '.join(map(repr, unknown))} not properties of {layer.id}; "
            f"known: {', '.join(known)}"
        )
    return [name for name in known if name in names]


def _accepted(header: str) -> dict[str, float]:
    """Media types of an ``Accept`` header with their quality (``q``)."""
    qualities: dict[str, float] = {}
    for item in header.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind:
            qualities[kind.lower()] = max(q, qualities.get(kind.lower(), 0.0))
    return qualities
