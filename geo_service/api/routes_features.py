"""OGC API – Features: every vector layer of the catalogue (findings included) as a collection.

Parts 1 (core, GeoJSON, HTML, OpenAPI 3.0), 2 (CRS) and 3 (queryables, CQL2 filters). Formats
by ``f`` or by the ``Accept`` header (GDAL, QGIS and OWSLib send no ``f``): JSON/GeoJSON by
default, HTML for browsers, CSV, NDJSON and GeoPackage for items. An items page is one store query;
``numberMatched`` is exact up to 10,000 matches and estimated past that on PostGIS. Large
results stream in constant memory. Every client mistake is a 400 naming the parameter (query
parameters this API does not know included), an unknown collection or feature a 404.
"""

from __future__ import annotations

from datetime import date
from itertools import chain
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pygeofilter import ast

from geo_service.api import ogc
from geo_service.api.attachments import geopackage_response
from geo_service.api.crs import content_crs, parse_crs
from geo_service.api.deps import CatalogueDep, StoreDep
from geo_service.api.encode import (
    Links,
    csv_stream,
    features,
    geojson_stream,
    ndjson_stream,
    page_document,
    primed,
)
from geo_service.api.errors import BadRequestRoute, LayerNotFound, NotFound
from geo_service.api.etags import feature_etag
from geo_service.api.params import (
    MEDIA_TYPES,
    SCHEMA_MEDIA_TYPE,
    CrsParam,
    Format,
    ItemFormat,
    ItemsFormat,
    ItemsQuery,
    Selection,
    f_query,
    negotiate,
    selection,
)
from geo_service.api.routes_pages import index_page
from geo_service.catalogue import Layer
from geo_service.store import BBox, SortKey, Store

#: Features per store chunk when streaming; GeoJSON pages up to this size are built whole.
CHUNK = 1000

Extent = tuple[BBox | None, tuple[date, date] | None]  # a layer's box and date range


router = APIRouter(route_class=BadRequestRoute, tags=["OGC API – Features"])
_templates = Environment(
    loader=PackageLoader("geo_service.api", "templates"), autoescape=select_autoescape()
)
_JSON_OR_HTML = ("json", "html")
_ITEMS_FORMATS = ("geojson", "json", "html", "csv", "ndjson", "gpkg")
_ITEM_FORMATS = ("geojson", "json", "html")
_VARY = {"Vary": "Accept"}  # the same URL answers JSON or HTML by the Accept header


def get_collection(
    collection_id: Annotated[
        str, Path(description="Collection id: a vector layer of the catalogue, e.g. `findings`.")
    ],
    catalogue: CatalogueDep,
) -> Layer:
    """The vector layer the path names; 404 naming it when there is none."""
    if collection_id not in catalogue:
        raise LayerNotFound(collection_id, [layer.id for layer in catalogue.vector_layers])
    layer = catalogue[collection_id]
    if layer.kind != "vector":
        raise NotFound(f"{collection_id!r} is a raster layer, not a feature collection")
    return layer


CollectionDep = Annotated[Layer, Depends(get_collection)]
FDep = Annotated[Format | None, f_query(*_JSON_OR_HTML)]


@router.get("/", summary="Landing page", response_model=None)
def landing(request: Request, store: StoreDep, catalogue: CatalogueDep, f: FDep = None) -> Response:
    """Links to the API definition, the conformance classes and the collections (or HTML)."""
    fmt = negotiate(request, f, _JSON_OR_HTML)
    if fmt == "html":
        return index_page(store, catalogue)
    return _json(ogc.landing(request, fmt))


@router.get("/conformance", summary="Conformance classes", response_model=None)
def conformance(request: Request, f: FDep = None) -> Response:
    """The OGC conformance classes this API implements."""
    fmt = negotiate(request, f, _JSON_OR_HTML)
    document = ogc.conformance(request, fmt)
    return _html("ogc_conformance.html", document) if fmt == "html" else _json(document)


@router.get("/collections", summary="The collections", response_model=None)
def collections(
    request: Request, store: StoreDep, catalogue: CatalogueDep, f: FDep = None
) -> Response:
    """Every vector layer of the catalogue, with its extent taken from the data."""
    fmt = negotiate(request, f, _JSON_OR_HTML)
    version = store.data_version()
    documents = [
        ogc.collection(request, layer, *_extent(request, store, layer, version))
        for layer in ogc.catalogue_layers(catalogue)
    ]
    document = ogc.collections(request, documents, fmt)
    return _html("ogc_collections.html", document) if fmt == "html" else _json(document)


@router.get(
    "/collections/{collection_id}",
    summary="A collection",
    response_model=None,
    responses={404: {"description": "No such collection"}},
)
def collection(request: Request, layer: CollectionDep, store: StoreDep, f: FDep = None) -> Response:
    """One collection: titles, extent, CRSs (``storageCrs`` CRS84) and links to its items."""
    fmt = negotiate(request, f, _JSON_OR_HTML)
    document = ogc.collection(request, layer, *_extent(request, store, layer), current=fmt)
    if fmt == "html":
        return _html("ogc_collection.html", document, queryables=ogc.queryables(request, layer))
    return _json(document)


@router.get(
    "/collections/{collection_id}/queryables",
    summary="What a filter may name",
    response_model=None,
    responses={404: {"description": "No such collection"}},
)
def queryables(request: Request, layer: CollectionDep, f: FDep = None) -> Response:
    """The properties ``filter``, ``sortby`` and property filters may use, as a JSON Schema."""
    document = ogc.queryables(request, layer)
    if negotiate(request, f, _JSON_OR_HTML) == "html":
        described = ogc.collection(request, layer, None, None)
        return _html("ogc_collection.html", described, queryables=document)
    return _json(document, SCHEMA_MEDIA_TYPE)


@router.get(
    "/collections/{collection_id}/schema",
    summary="The features' schema",
    response_model=None,
    responses={404: {"description": "No such collection"}},
)
def schema(request: Request, layer: CollectionDep) -> Response:
    """A JSON Schema of the collection's GeoJSON features, every property typed."""
    return _json(ogc.feature_schema(request, layer), SCHEMA_MEDIA_TYPE)


@router.get(
    "/collections/{collection_id}/items",
    summary="The features of a collection",
    response_model=None,
    responses={
        200: {"content": {MEDIA_TYPES[name]: {} for name in _ITEMS_FORMATS}},
        400: {"description": "A bad parameter, named in the message"},
        404: {"description": "No such collection"},
    },
)
def items(
    request: Request,
    layer: CollectionDep,
    store: StoreDep,
    query: Annotated[ItemsQuery, Depends()],
    f: Annotated[ItemsFormat | None, f_query(*_ITEMS_FORMATS)] = None,
) -> Response:
    """Features in pages, filtered, sorted and in the CRS asked.

    Filters: ``bbox``, a CQL2 ``filter``, property values (``name=value`` for any queryable)
    and ``datetime``. Past 1,000 features GeoJSON streams, as CSV and NDJSON always do, in
    constant memory; a GeoPackage page is written to a temporary file first.
    """
    fmt = negotiate(request, f, _ITEMS_FORMATS)
    chosen = selection(layer, query, request)
    ask: dict[str, Any] = {
        "bbox": chosen.bbox,
        "filter": chosen.filter,
        "sortby": chosen.sortby,
        "properties": chosen.properties,
    }
    headers = content_crs(chosen.crs)
    if query.result_type == "hits":
        hits = store.query(layer.id, **ask, limit=0, exact_count=True)
        return _json(page_document([], hits.number_matched, []), MEDIA_TYPES["geojson"], headers)
    if fmt in ("csv", "ndjson", "gpkg"):
        chunks = store.iter_query(
            layer.id, **ask, limit=query.limit, offset=query.offset, chunk_size=CHUNK
        )
        if fmt == "gpkg":  # a file (SQLite), not a stream: built first, deleted once sent
            return geopackage_response(layer, chunks, chosen, f"{layer.id}.gpkg", headers)
        encoder = csv_stream if fmt == "csv" else ndjson_stream
        body = encoder(layer, primed(chunks), chosen.crs, chosen.properties)
        return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers | _VARY)
    links = _page_links(request, layer, query, fmt)
    if fmt != "html" and query.limit > CHUNK:
        return _streamed_page(layer, store, query, chosen, ask, fmt, links, headers)
    page = store.query(layer.id, **ask, limit=query.limit, offset=query.offset)
    found = features(layer, page.frame, chosen.crs, chosen.properties)
    document = page_document(found, page.number_matched, links(page.more))
    if fmt == "html":
        names = [s.name for s in layer.fields] if chosen.properties is None else chosen.properties
        return _html(
            "ogc_items.html",
            document,
            layer=layer,
            names=names,
            item_url=lambda feature_id: _item_url(request, layer, feature_id),
        )
    return _json(document, MEDIA_TYPES[fmt], headers)


@router.get(
    "/collections/{collection_id}/items/{feature_id:path}",
    summary="One feature",
    response_model=None,
    responses={404: {"description": "No such collection or feature"}},
)
def item(
    request: Request,
    layer: CollectionDep,
    store: StoreDep,
    feature_id: Annotated[str, Path(description="The feature's id.")],
    crs: CrsParam = None,
    f: Annotated[ItemFormat | None, f_query(*_ITEM_FORMATS)] = None,
) -> Response:
    """One feature by id, as GeoJSON (in the CRS asked) or HTML."""
    fmt = negotiate(request, f, _ITEM_FORMATS)
    target = parse_crs(crs, "crs")
    frame = store.read(layer.id, ids=[feature_id])
    if not len(frame):
        raise NotFound(f"collection {layer.id!r} has no feature {feature_id!r}")
    feature = features(layer, frame, target, None)[0]
    here = _item_url(request, layer, feature_id)
    feature["links"] = [
        *(
            ogc.link(f"{here}?f={name}", "self" if name == fmt else "alternate", name)
            for name in _ITEM_FORMATS
        ),
        ogc.link(ogc.url(request, f"/collections/{layer.id}"), "collection", "json"),
    ]
    if fmt == "html":
        titles = {spec.name: f"{spec.title.zh} · {spec.title.en}" for spec in layer.fields}
        document = {"links": feature["links"]}
        return _html("ogc_item.html", document, feature=feature, layer=layer, titles=titles)
    # the stored version, whatever the format: a change may be sent with If-Match (routes_risk)
    headers = content_crs(target) | {"ETag": feature_etag(layer, frame)}
    return _json(feature, MEDIA_TYPES[fmt], headers)


# -- helpers --------------------------------------------------------------------------------


def _streamed_page(
    layer: Layer,
    store: Store,
    query: ItemsQuery,
    chosen: Selection,
    ask: dict[str, Any],
    fmt: str,
    links: Links,
    headers: dict[str, str],
) -> StreamingResponse:
    """A GeoJSON page of more than ``CHUNK`` features, written chunk by chunk.

    The first chunk (and ``numberMatched``) is read before answering, so a store failure is an
    error response, not a cut stream; the rest is read as it is sent, ``limit + 1`` rows so the
    last one tells whether a next page exists.
    """
    first = store.query(layer.id, **ask, limit=CHUNK, offset=query.offset)
    rest = store.iter_query(
        layer.id,
        **ask,
        limit=query.limit - CHUNK + 1,
        offset=query.offset + CHUNK,
        chunk_size=CHUNK,
    )
    body = geojson_stream(
        layer,
        chain([first.frame], rest if first.more else []),
        crs=chosen.crs,
        properties=chosen.properties,
        number_matched=first.number_matched,
        limit=query.limit,
        links=links,
    )
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers | _VARY)


def _page_links(request: Request, layer: Layer, query: ItemsQuery, fmt: str) -> Links:
    """The links of an items page, given whether another page follows."""

    def links(more: bool) -> list[dict[str, str]]:
        found = [ogc.link(str(request.url), "self", fmt)]
        found += [
            ogc.link(_with(request, f=name), "alternate", name)
            for name in _ITEMS_FORMATS
            if name != fmt
        ]
        if more:
            found.append(ogc.link(_with(request, offset=query.offset + query.limit), "next", fmt))
        if query.offset > 0:
            previous = max(0, query.offset - query.limit)
            found.append(ogc.link(_with(request, offset=previous), "prev", fmt))
        found.append(ogc.link(ogc.url(request, f"/collections/{layer.id}"), "collection", "json"))
        return found

    return links


def _with(request: Request, **changes: Any) -> str:
    """The request's URL with some query parameters replaced (the others kept, in order)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    query = urlencode(kept + [(k, str(v)) for k, v in changes.items()])
    return str(request.url.replace(query=query))


def _extent(request: Request, store: Store, layer: Layer, version: str | None = None) -> Extent:
    """The layer's box and date range, from the data; kept until the data changes."""
    version = version or store.data_version()
    cache: tuple[str, dict[str, Extent]] | None = getattr(request.app.state, "ogc_extents", None)
    if cache is None or cache[0] != version:
        cache = (version, {})
        request.app.state.ogc_extents = cache
    extents = cache[1]
    if layer.id not in extents:
        extents[layer.id] = (store.extent(layer.id), _date_range(store, layer))
    return extents[layer.id]


def _date_range(store: Store, layer: Layer) -> tuple[date, date] | None:
    """The first and last date of the layer's date field; None when it has none."""
    spec = layer.date_field
    if spec is None:
        return None
    dated = ast.IsNull(ast.Attribute(spec.name), not_=True)
    ends = []
    for descending in (False, True):
        page = store.query(
            layer.id,
            filter=dated,
            sortby=[SortKey(spec.name, descending)],
            limit=1,
            properties=[spec.name],
        )
        if not len(page.frame):
            return None
        ends.append(pd.Timestamp(page.frame[spec.name].iloc[0]).date())
    return ends[0], ends[1]


def _item_url(request: Request, layer: Layer, feature_id: str) -> str:
    return ogc.url(request, f"/collections/{layer.id}/items/{quote(str(feature_id), safe='')}")


def _json(
    document: dict[str, Any],
    media_type: str = MEDIA_TYPES["json"],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(document, media_type=media_type, headers=(headers or {}) | _VARY)


def _html(template: str, document: dict[str, Any], **context: Any) -> HTMLResponse:
    page = _templates.get_template(template).render(
        doc=document, links=document.get("links", []), **context
    )
    return HTMLResponse(page, headers=_VARY)
