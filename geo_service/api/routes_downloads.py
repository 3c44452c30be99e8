"""Downloads of a whole layer or a filtered selection: GeoJSON, GeoPackage, CSV, NDJSON.

``/collections/{id}/download`` takes the filters of the items pages (``bbox``, CQL2 ``filter``,
property values, ``datetime``, ``properties``, ``sortby``, ``crs``) but has no page: every
matching feature is written, as a file to save (``Content-Disposition: attachment``). GeoJSON,
CSV and NDJSON stream from the store in constant memory; a GeoPackage is built in a temporary
file first (``geo_service.api.attachments``). The collection documents link each format as an
``enclosure``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from geo_service.api.attachments import attachment, geopackage_response
from geo_service.api.crs import content_crs
from geo_service.api.deps import StoreDep
from geo_service.api.downloads import CHUNK_SIZE, FORMATS, FormatName, byte_stream, file_name
from geo_service.api.encode import primed
from geo_service.api.errors import BadRequestRoute
from geo_service.api.params import FilterQuery, selection
from geo_service.api.routes_features import CollectionDep

router = APIRouter(route_class=BadRequestRoute, tags=["Downloads"])

_F_DESCRIPTION = "File format: " + ", ".join(
    f"`{fmt.name}` → {fmt.media_type} (`.{fmt.extension}`)" for fmt in FORMATS.values()
)


@router.get(
    "/collections/{collection_id}/download",
    summary="Download a layer or a filtered selection",
    response_model=None,
    responses={
        200: {"content": {fmt.media_type: {} for fmt in FORMATS.values()}},
        400: {"description": "A bad parameter, named in the message"},
        404: {"description": "No such collection"},
    },
)
def download(
    request: Request,
    layer: CollectionDep,
    store: StoreDep,
    query: Annotated[FilterQuery, Depends()],
    f: Annotated[FormatName, Query(description=_F_DESCRIPTION)] = "geojson",
) -> Response:
    """Every feature of the collection that the filters select, as one file of any size.

    Named ``<collection>.<ext>``, or ``<collection>-filtered.<ext>`` when a filter (``bbox``,
    ``filter``, a property value or ``datetime``) narrows it. Other query parameters are
    property filters, as on the items pages.
    """
    chosen = selection(layer, query, request)
    filtered = chosen.bbox is not None or chosen.filter is not None
    name = file_name(layer, f, filtered=filtered)
    headers = content_crs(chosen.crs)
    chunks = store.iter_query(
        layer.id,
        bbox=chosen.bbox,
        filter=chosen.filter,
        sortby=chosen.sortby,
        properties=chosen.properties,
        chunk_size=CHUNK_SIZE,
    )
    if f == "gpkg":
        return geopackage_response(layer, chunks, chosen, name, headers)
    body = byte_stream(layer, primed(chunks), f, crs=chosen.crs, properties=chosen.properties)
    return StreamingResponse(
        body, media_type=FORMATS[f].media_type, headers=headers | attachment(name)
    )
