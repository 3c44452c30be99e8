"""Buffer and proximity queries: what lies within a distance of a place or a feature.

``POST /query/buffer`` (the map's drawing tool) and ``GET /query/buffer`` answer an RFC 7946
FeatureCollection of the features within the distance, each with ``collection`` and
``distance_m`` among its properties, and a ``summary`` foreign member (counts per collection
and category, the buffer's area, the people inside). ``GET /query/near`` answers pairs between
two layers as features whose geometry is the shortest line between the two, in pages.

Caps come from the settings: ``distance_m`` above ``query_max_distance_m`` is a 400; more
features than ``query_max_features`` (pairs than ``query_max_pairs``) a 413 — an answer is
never cut short silently. Every other client mistake is a 400 naming the parameter, an unknown
reference feature a 404. The work is ``geo_service.query``; this module only checks and encodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import shapely.errors
import shapely.geometry
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from geo_service import query
from geo_service.api import ogc
from geo_service.api.deps import SettingsDep, StoreDep
from geo_service.api.errors import BadRequest, BadRequestRoute, NotFound, TooLarge
from geo_service.api.params import MEDIA_TYPES

router = APIRouter(route_class=BadRequestRoute, tags=["query"])

#: Pairs a ``/query/near`` page holds by default, and at most.
NEAR_DEFAULT_LIMIT = 100
NEAR_MAX_LIMIT = 10_000

_GEOJSON = MEDIA_TYPES["geojson"]
_FILTER = (
    "CQL2 filter applied to each collection, e.g. `category = 'school'`; every property it "
    "names must be a queryable of each collection asked (`/collections/{id}/queryables`)."
)
_FILTER_LANG = "Language of `filter`: `cql2-text` (default for text) or `cql2-json`."
_DISTANCE = "Distance in metres (0 or more, at most the service's `query_max_distance_m`)."
_COLLECTIONS = "Collections (vector layers) to search; default: every input layer."
FilterLang = Literal["cql2-text", "cql2-json"]


class FeatureRef(BaseModel):
    """A stored feature to centre the query on (it is itself left out of the answer)."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(description="Collection of the feature, e.g. `chemical_plants`.")
    featureId: str = Field(description="Id of the feature in that collection, e.g. `plant-001`.")


class BufferRequest(BaseModel):
    """A buffer query: a geometry or a stored feature, a distance, collections and a filter."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "feature": {"collection": "chemical_plants", "featureId": "plant-001"},
                    "distance_m": 1000,
                    "collections": ["protection_targets"],
                    "filter": "category IN ('school', 'kindergarten')",
                },
                {"geometry": {"type": "Point", "coordinates": [110.6, 30.55]}, "distance_m": 500},
            ]
        },
    )

    geometry: dict[str, Any] | None = Field(
        default=None,
        description="A GeoJSON geometry (Point, LineString, Polygon or their Multi forms) in "
        "EPSG:4326, longitude first. Give this or `feature`.",
    )
    feature: FeatureRef | None = Field(
        default=None, description="A stored feature to measure from. Give this or `geometry`."
    )
    distance_m: float = Field(
        ge=0,
        allow_inf_nan=False,
        description=_DISTANCE + " 0 with a polygon: what lies inside it.",
    )
    collections: list[str] | None = Field(default=None, description=_COLLECTIONS)
    filter: str | dict[str, Any] | None = Field(
        default=None, description=_FILTER + " CQL2 JSON as an object."
    )
    filter_lang: FilterLang | None = Field(
        default=None,
        alias="filter-lang",
        description="Language of `filter`; inferred from its type when left out.",
    )


@router.post(
    "/query/buffer",
    summary="What lies within a distance of a geometry or a feature",
    response_class=JSONResponse,
    responses={200: {"content": {_GEOJSON: {}}}, 404: {}, 413: {}},
)
def post_buffer(body: BufferRequest, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Features within ``distance_m`` of the geometry (or feature), with a ``summary``.

    Each feature carries its layer's fields plus ``collection`` and ``distance_m`` (exact, in
    metres, to the query geometry); features come per collection, nearest first.
    """
    with _client_errors():
        geometry = None if body.geometry is None else _geometry(body.geometry)
        result = query.buffer_query(
            store,
            geometry=geometry,
            feature=None
            if body.feature is None
            else (body.feature.collection, body.feature.featureId),
            distance_m=body.distance_m,
            collections=body.collections,
            filter=body.filter,
            filter_lang=body.filter_lang,
            max_distance_m=settings.query_max_distance_m,
            max_features=settings.query_max_features,
        )
    return JSONResponse(result.to_geojson(), media_type=_GEOJSON)


@router.get(
    "/query/buffer",
    summary="What lies within a distance of a point",
    response_class=JSONResponse,
    responses={200: {"content": {_GEOJSON: {}}}, 413: {}},
)
def get_buffer(
    store: StoreDep,
    settings: SettingsDep,
    lon: Annotated[
        float, Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude (EPSG:4326).")
    ],
    lat: Annotated[
        float, Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude (EPSG:4326).")
    ],
    distance_m: Annotated[float, Query(ge=0, allow_inf_nan=False, description=_DISTANCE)],
    collections: Annotated[
        str | None, Query(description=_COLLECTIONS + " Comma-separated, e.g. `buildings,mines`.")
    ] = None,
    filter: Annotated[str | None, Query(description=_FILTER)] = None,
    filter_lang: Annotated[
        FilterLang | None, Query(alias="filter-lang", description=_FILTER_LANG)
    ] = None,
) -> JSONResponse:
    """The answer of ``POST /query/buffer`` for a point, from query parameters."""
    with _client_errors():
        result = query.buffer_query(
            store,
            geometry=shapely.geometry.Point(lon, lat),
            distance_m=distance_m,
            collections=_names(collections),
            filter=filter,
            filter_lang=filter_lang,
            max_distance_m=settings.query_max_distance_m,
            max_features=settings.query_max_features,
        )
    return JSONResponse(result.to_geojson(), media_type=_GEOJSON)


@router.get(
    "/query/near",
    summary="Pairs of features of two layers within a distance",
    response_class=JSONResponse,
    responses={200: {"content": {_GEOJSON: {}}}, 413: {}},
)
def get_near(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    from_: Annotated[
        str, Query(alias="from", description="Collection measured from, e.g. `chemical_plants`.")
    ],
    to: Annotated[str, Query(description="Collection measured to, e.g. `protection_targets`.")],
    distance_m: Annotated[float, Query(ge=0, allow_inf_nan=False, description=_DISTANCE)],
    filter: Annotated[
        str | None,
        Query(description="CQL2 filter on the `to` collection, e.g. `category = 'school'`."),
    ] = None,
    from_filter: Annotated[
        str | None, Query(alias="from-filter", description="CQL2 filter on the `from` collection.")
    ] = None,
    filter_lang: Annotated[
        FilterLang | None,
        Query(alias="filter-lang", description=_FILTER_LANG + " Applies to both filters."),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=NEAR_MAX_LIMIT,
            description=f"At most this many pairs in the page (1 to {NEAR_MAX_LIMIT}).",
        ),
    ] = NEAR_DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, description="Skip this many pairs first (paging).")] = 0,
) -> JSONResponse:
    """Every pair (a `from` feature, a `to` feature) within ``distance_m``, in pages.

    Each pair is a Feature: the shortest line from one to the other, with ``from_collection``,
    ``from_id``, ``from_name``, ``from_category``, the same for ``to``, and ``distance_m``.
    Pairs are ordered by ``from_id``, then distance; ``numberMatched`` counts them all and a
    ``next`` link follows while more remain. ``summary`` says how many features of each side
    take part.
    """
    with _client_errors():
        pairs = query.near_pairs(
            store,
            from_,
            to,
            distance_m,
            filter,
            filter_lang=filter_lang,
            from_filter=from_filter,
            max_distance_m=settings.query_max_distance_m,
            max_pairs=settings.query_max_pairs,
        )
    features = pairs.to_geojson(offset, limit)
    links = [ogc.link(str(request.url), "self", "geojson")]
    if offset + limit < len(pairs):
        links.append(ogc.link(_with_offset(request, offset + limit), "next", "geojson"))
    if offset > 0:
        links.append(ogc.link(_with_offset(request, max(0, offset - limit)), "prev", "geojson"))
    document = {
        "type": "FeatureCollection",
        "features": features,
        "summary": pairs.summary,
        "numberMatched": len(pairs),
        "numberReturned": len(features),
        "links": links,
    }
    return JSONResponse(document, media_type=_GEOJSON)


@contextmanager
def _client_errors() -> Iterator[None]:
    """A query's refusal as the HTTP answer it deserves: 404, 413, else 400."""
    try:
        yield
    except query.UnknownFeature as exc:
        raise NotFound(str(exc)) from None
    except query.TooManyFeatures as exc:
        raise TooLarge(str(exc)) from None
    except query.QueryError as exc:
        raise BadRequest(str(exc)) from None


def _geometry(data: dict[str, Any]) -> Any:
    """A GeoJSON geometry object as shapely, checked (EPSG:4326 lon/lat); 400 naming it."""
    crs = data.get("crs")
    if crs is not None:
        raise query.QueryError(
            f"geometry: a crs member ({crs!r}) is not supported; GeoJSON is EPSG:4326 lon/lat"
        )
    kind = data.get("type")
    try:
        geometry = shapely.geometry.shape(data)
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        shapely.errors.ShapelyError,
    ):
        raise query.QueryError(f"geometry: not a valid GeoJSON {kind or 'geometry'}") from None
    return query.check_lonlat(geometry, "geometry")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else text.split(",")


def _with_offset(request: Request, offset: int) -> str:
    return str(request.url.include_query_params(offset=offset))
