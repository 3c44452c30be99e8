"""The documents of the feature API: landing page, conformance, collections, queryables, links.

Each is a plain dict ready for JSON (and for the HTML templates). Links are absolute, built
from the request's base URL, so clients that follow them (GDAL, QGIS, OWSLib) stay on the
server they asked.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from geo_service.api.cql import queryable_fields
from geo_service.api.crs import STORAGE_CRS, SUPPORTED
from geo_service.api.downloads import FORMATS
from geo_service.api.params import MEDIA_TYPES, OPENAPI_MEDIA_TYPE, SCHEMA_MEDIA_TYPE
from geo_service.catalogue import Catalogue, FieldSpec, Layer
from geo_service.store import BBox

#: Conformance classes implemented in full (temporal functions only partly: not claimed).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
_JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
_SCHEMA_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def url(request: Request, path: str, **params: Any) -> str:
    """The absolute URL of ``path`` on this server, with query ``params`` (None ones left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return str(request.base_url).rstrip("/") + path + (f"?{query}" if query else "")


def link(href: str, rel: str, kind: str, title: str | None = None) -> dict[str, str]:
    """A link object; ``kind`` is a format name or a media type."""
    entry = {"href": href, "rel": rel, "type": MEDIA_TYPES.get(kind, kind)}
    return entry | ({"title": title} if title else {})


def self_links(request: Request, path: str, current: str, formats: tuple[str, ...]) -> list[Any]:
    """``self`` in the format answered, ``alternate`` in the others."""
    return [
        link(url(request, path, f=name), "self" if name == current else "alternate", name)
        for name in formats
    ]


def landing(request: Request, current: str) -> dict[str, Any]:
    """The landing page: what the service is and where everything is."""
    return {
        "title": "georisk",
        "description": "Hazards beside people, graded in four colours: every layer of the "
        "catalogue as an OGC API – Features collection.",
        "links": [
            *self_links(request, "/", current, ("json", "html")),
            link(url(request, "/api"), "service-desc", OPENAPI_MEDIA_TYPE, "The API definition"),
            link(url(request, "/docs"), "service-doc", "html", "The API documentation"),
            link(url(request, "/conformance"), "conformance", "json", "Conformance classes"),
            link(url(request, "/collections"), "data", "json", "The collections"),
        ],
    }


def conformance(request: Request, current: str) -> dict[str, Any]:
    """The conformance classes the service implements."""
    return {
        "conformsTo": CONFORMANCE,
        "links": self_links(request, "/conformance", current, ("json", "html")),
    }


def collection(
    request: Request,
    layer: Layer,
    bbox: BBox | None,
    dates: tuple[date, date] | None,
    *,
    current: str = "json",
) -> dict[str, Any]:
    """A collection document: titles, extent from the data, CRSs and links."""
    base = f"/collections/{layer.id}"
    extent: dict[str, Any] = {}
    if bbox is not None:
        extent["spatial"] = {"bbox": [list(bbox)], "crs": STORAGE_CRS}
    if dates is not None:
        extent["temporal"] = {"interval": [[d.isoformat() for d in dates]], "trs": GREGORIAN}
    return {
        "id": layer.id,
        "title": f"{layer.title.zh} · {layer.title.en}",
        "description": layer.description or layer.title.en,
        "itemType": "feature",
        "crs": list(SUPPORTED),
        "storageCrs": STORAGE_CRS,
        **({"extent": extent} if extent else {}),
        "links": [
            *self_links(request, base, current, ("json", "html")),
            link(url(request, f"{base}/items"), "items", "geojson", "The features (GeoJSON)"),
            link(url(request, f"{base}/items", f="html"), "items", "html", "The features (HTML)"),
            link(url(request, f"{base}/items", f="csv"), "items", "csv", "The features (CSV)"),
            link(url(request, f"{base}/queryables"), "queryables", SCHEMA_MEDIA_TYPE),
            # GDAL types the fields of a collection by this (its rel spelled as GDAL matches it)
            link(url(request, f"{base}/schema"), "describedBy", SCHEMA_MEDIA_TYPE),
            *download_links(request, layer),
        ],
    }


def download_links(request: Request, layer: Layer) -> list[dict[str, str]]:
    """``enclosure`` links to the whole layer as a file in each download format."""
    return [
        link(
            url(request, f"/collections/{layer.id}/download", f=fmt.name),
            "enclosure",
            fmt.media_type,
            f"The whole layer ({fmt.title})",
        )
        for fmt in FORMATS.values()
    ]


def collections(request: Request, documents: list[dict[str, Any]], current: str) -> dict[str, Any]:
    """The collections document."""
    return {
        "links": self_links(request, "/collections", current, ("json", "html")),
        "collections": documents,
    }


def queryables(request: Request, layer: Layer) -> dict[str, Any]:
    """The layer's queryables as a JSON Schema (OGC API – Features Part 3)."""
    properties: dict[str, Any] = {
        "id": {"title": "Feature id", "type": "string"},
        "geometry": {
            "title": "Geometry",
            "format": "geometry-any"
            if len(layer.geometry) > 1
            else f"geometry-{layer.geometry[0].lower()}",
        },
    }
    properties |= {spec.name: _field_schema(spec) for spec in queryable_fields(layer)}
    return {
        "$schema": _JSON_SCHEMA,
        "$id": url(request, f"/collections/{layer.id}/queryables"),
        "type": "object",
        "title": f"{layer.title.zh} · {layer.title.en}",
        "properties": properties,
        "additionalProperties": False,
    }


def feature_schema(request: Request, layer: Layer) -> dict[str, Any]:
    """A JSON Schema of the collection's GeoJSON features: every property, typed.

    Clients type their fields by it (GDAL's OAPIF driver reads it through the collection's
    ``describedBy`` link), also for a collection that holds no feature yet.
    """
    properties = {spec.name: _field_schema(spec) for spec in layer.fields}
    properties["source_crs"] = {"title": "Source CRS", "type": "string"}
    return {
        "$schema": _JSON_SCHEMA,
        "$id": url(request, f"/collections/{layer.id}/schema"),
        "title": f"{layer.title.zh} · {layer.title.en}",
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": {"title": "Geometry", "format": "geometry-any"},
            "properties": {"type": "object", "properties": properties},
        },
    }


def catalogue_layers(catalogue: Catalogue) -> list[Layer]:
    """The layers served as collections: every vector layer (results such as findings included)."""
    return catalogue.vector_layers


def _field_schema(spec: FieldSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": f"{spec.title.zh} · {spec.title.en}"}
    if spec.type == "date":
        schema |= {"type": "string", "format": "date"}
    elif spec.type == "list":
        schema |= {"type": "array", "items": {"type": "string", "enum": spec.items_enum}}
        schema["items"] = {k: v for k, v in schema["items"].items() if v is not None}
    elif spec.type == "geometry":
        schema |= {"type": "object", "format": "geometry-any"}
    else:
        schema["type"] = _SCHEMA_TYPES[spec.type]
    extra = {
        "description": spec.description,
        "enum": spec.enum,
        "minimum": spec.minimum,
        "maximum": spec.maximum,
        "pattern": spec.pattern,
        "x-ogc-unit": spec.unit,
    }
    return schema | {key: value for key, value in extra.items() if value is not None}
