"""OGC API – Tiles: vector tiles of every vector layer, PNG map tiles of raster layers.

Vector tiles (Mapbox Vector Tile, one MVT layer named as the collection)::

    /collections/{collectionId}/tiles                                    tilesets
    /collections/{collectionId}/tiles/WebMercatorQuad                    tileset metadata
    /collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json      TileJSON 3.0
    /collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}

Map tiles of raster layers (PNG, 256 × 256), the same under ``/collections/{id}/map/tiles``.
``{tileMatrix}/{tileRow}/{tileCol}`` is XYZ's ``{z}/{y}/{x}``. A vector tile with nothing in it
is ``204 No Content``; a map tile with nothing in it is a transparent PNG (an ``<img>`` needs
an image). Every tile has an ``ETag`` (data version, catalogue version, layer, tile, properties)
and is answered ``304`` to a matching ``If-None-Match``; tiles are cached in memory until the
data changes. The thinning rules of dense tiles are in ``geo_service.tiling.vector``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from geo_service.api.deps import CatalogueDep, SettingsDep, StoreDep, get_layer
from geo_service.api.errors import BadRequest, NotFound, ServiceUnavailable
from geo_service.catalogue import Catalogue, FieldSpec, Layer
from geo_service.settings import Settings
from geo_service.store import BBox, Store
from geo_service.tiling import raster
from geo_service.tiling.cache import TileCache, TileKey
from geo_service.tiling.grid import (
    CRS84_URI,
    CRS_URI,
    MAX_LATITUDE,
    TILE_MATRIX_SET,
    TILE_MATRIX_SET_ID,
    TILE_MATRIX_SET_URI,
    TileAddress,
    TileAddressError,
    TileOutOfRange,
    parse_tile,
)
from geo_service.tiling.vector import (
    COUNT,
    DEFAULT_POLICY,
    ENCODER_VERSION,
    MVT_MEDIA_TYPE,
    UnknownProperty,
    tile_fields,
)

router = APIRouter(tags=["tiles"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/png",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
]
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
JSON = "application/json"
WORLD: BBox = (-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE)
_MVT_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean"}
_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Unchanged since the ETag given in If-None-Match"},
    400: {"description": "A tile address or property that is not valid"},
    404: {"description": "Unknown collection or tile matrix set, or a tile outside it"},
}


# -- path parameters ---------------------------------------------------------------------


def get_tile_cache(request: Request) -> TileCache:
    """The tile cache the lifespan created."""
    cache: TileCache = request.app.state.tile_cache
    return cache


CollectionId = Annotated[
    str, Path(description="Collection (layer) id from the catalogue, e.g. `chemical_plants`.")
]


def vector_collection(collectionId: CollectionId, catalogue: CatalogueDep) -> Layer:
    """A collection of features; 404 for an unknown one or a raster layer."""
    layer = get_layer(collectionId, catalogue)
    if layer.kind != "vector":
        raise NotFound(
            f"collection {layer.id!r} is a raster layer: its map tiles are at "
            f"/collections/{layer.id}/map/tiles"
        )
    return layer


def raster_collection(collectionId: CollectionId, catalogue: CatalogueDep) -> Layer:
    """A raster layer; 404 for an unknown one or a vector layer."""
    layer = get_layer(collectionId, catalogue)
    if layer.kind != "raster":
        raise NotFound(
            f"collection {layer.id!r} holds features, not a raster: its vector tiles are at "
            f"/collections/{layer.id}/tiles"
        )
    return layer


def tile_matrix_set(
    tileMatrixSetId: Annotated[
        str, Path(description="Tile matrix set: `WebMercatorQuad` (EPSG:3857), the only one.")
    ],
) -> str:
    """The tile matrix set named in the path; 404 naming the known one otherwise."""
    if tileMatrixSetId != TILE_MATRIX_SET_ID:
        raise NotFound(f"unknown tile matrix set {tileMatrixSetId!r}; known: {TILE_MATRIX_SET_ID}")
    return tileMatrixSetId


def tile_address(
    tileMatrix: Annotated[
        str, Path(description="Zoom level (XYZ `z`): a whole number from 0 to 24.")
    ],
    tileRow: Annotated[
        str, Path(description="Row, counted from the top (XYZ `y`): 0 to 2^tileMatrix − 1.")
    ],
    tileCol: Annotated[
        str, Path(description="Column, counted from the west (XYZ `x`): 0 to 2^tileMatrix − 1.")
    ],
) -> TileAddress:
    """The tile named in the path: 400 when not whole numbers, 404 when outside the grid."""
    try:
        return parse_tile(tileMatrix, tileRow, tileCol)
    except TileAddressError as exc:
        raise BadRequest(str(exc)) from None
    except TileOutOfRange as exc:
        raise NotFound(str(exc)) from None


def requested_properties(
    properties: Annotated[
        str | None,
        Query(
            description="Comma-separated fields each feature carries besides `id`, e.g. "
            "`name,risk_class`; default: every field of the layer.",
        ),
    ] = None,
) -> list[str] | None:
    """The ``properties`` asked for, as names (checked against the layer later)."""
    if properties is None:
        return None
    return [name.strip() for name in properties.split(",") if name.strip()]


TileCacheDep = Annotated[TileCache, Depends(get_tile_cache)]
VectorCollectionDep = Annotated[Layer, Depends(vector_collection)]
RasterCollectionDep = Annotated[Layer, Depends(raster_collection)]
TileMatrixSetDep = Annotated[str, Depends(tile_matrix_set)]
TileDep = Annotated[TileAddress, Depends(tile_address)]
PropertiesDep = Annotated[list[str] | None, Depends(requested_properties)]


# -- tile matrix sets ----------------------------------------------------------------------


@router.get("/tileMatrixSets", name="tile_matrix_sets")
def tile_matrix_sets(request: Request) -> dict[str, Any]:
    """The tiling schemes served: WebMercatorQuad."""
    href = str(request.url_for("tile_matrix_set_definition", tileMatrixSetId=TILE_MATRIX_SET_ID))
    return {
        "tileMatrixSets": [
            {
                "id": TILE_MATRIX_SET_ID,
                "title": "Google Maps Compatible for the World (EPSG:3857)",
                "uri": TILE_MATRIX_SET_URI,
                "links": [{"rel": "self", "type": JSON, "href": href}],
            }
        ]
    }


@router.get("/tileMatrixSets/{tileMatrixSetId}", name="tile_matrix_set_definition")
def tile_matrix_set_definition(tms: TileMatrixSetDep) -> JSONResponse:
    """The definition of WebMercatorQuad (OGC Two Dimensional Tile Matrix Set 2.0)."""
    return JSONResponse(TILE_MATRIX_SET.model_dump(exclude_none=True, mode="json"))


# -- vector tiles ----------------------------------------------------------------------------


@router.get("/collections/{collectionId}/tiles", name="vector_tilesets")
def vector_tilesets(request: Request, layer: VectorCollectionDep) -> dict[str, Any]:
    """The vector tilesets of a collection: one, in WebMercatorQuad."""
    return {
        "tilesets": [_tileset_reference(request, layer, "vector", "vector_tileset")],
        "links": [{"rel": "self", "type": JSON, "href": str(request.url)}],
    }


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", name="vector_tileset")
def vector_tileset(
    request: Request,
    layer: VectorCollectionDep,
    tms: TileMatrixSetDep,
    store: StoreDep,
    cache: TileCacheDep,
) -> dict[str, Any]:
    """Tileset metadata: the tile URL template, the zooms and the collection's extent."""
    bounds = _extent(store, cache, layer)
    fields = tile_fields(layer)
    template = _vector_template(request, layer, "{tileMatrix}", "{tileRow}", "{tileCol}")
    return {
        **_tileset_reference(request, layer, "vector", "vector_tileset"),
        "description": layer.description,
        "boundingBox": _bounding_box(bounds),
        "tileMatrixSetLimits": _limits(bounds, 0, DEFAULT_POLICY.detail_zoom),
        "layers": [
            {
                "id": layer.id,
                "title": layer.title.en,
                "dataType": "vector",
                "geometryDimension": _dimension(layer),
                "minTileMatrix": "0",
                "maxTileMatrix": str(DEFAULT_POLICY.detail_zoom),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        **{spec.name: _json_schema(spec) for spec in fields},
                        COUNT: {
                            "type": "integer",
                            "description": "Features a thinned point stands for (dense tiles).",
                        },
                    },
                },
            }
        ],
        "links": [
            *_tileset_reference(request, layer, "vector", "vector_tileset")["links"],
            {"rel": "item", "type": MVT_MEDIA_TYPE, "href": template, "templated": True},
            {
                "rel": "describedby",
                "type": JSON,
                "title": "TileJSON",
                "href": str(
                    request.url_for("vector_tilejson", collectionId=layer.id, tileMatrixSetId=tms)
                ),
            },
        ],
    }


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json", name="vector_tilejson"
)
def vector_tilejson(
    request: Request,
    layer: VectorCollectionDep,
    tms: TileMatrixSetDep,
    store: StoreDep,
    cache: TileCacheDep,
    properties: PropertiesDep = None,
) -> dict[str, Any]:
    """TileJSON 3.0 for MapLibre, Leaflet.VectorGrid or QGIS: ``tiles`` is ``…/{z}/{y}/{x}``."""
    fields = _fields(layer, properties)
    template = _vector_template(request, layer, "{z}", "{y}", "{x}")
    if properties is not None:
        template += f"?properties={','.join(spec.name for spec in fields)}"
    bounds = _extent(store, cache, layer) or WORLD
    maxzoom = DEFAULT_POLICY.detail_zoom
    return {
        "tilejson": "3.0.0",
        "name": layer.id,
        "description": f"{layer.title.zh} / {layer.title.en}",
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": 0,
        "maxzoom": maxzoom,
        "bounds": list(bounds),
        "center": [*_centre(bounds), min(maxzoom, 12)],
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.title.en,
                "minzoom": 0,
                "maxzoom": maxzoom,
                "fields": {
                    "id": "String",
                    **{spec.name: _MVT_TYPES.get(spec.type, "String") for spec in fields},
                    COUNT: "Number",
                },
            }
        ],
    }


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    name="vector_tile",
    response_class=Response,
    responses={
        200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "The tile"},
        204: {"description": "The tile is empty: no feature of the collection reaches it"},
        **_TILE_RESPONSES,
    },
)
def vector_tile(
    request: Request,
    layer: VectorCollectionDep,
    tms: TileMatrixSetDep,
    tile: TileDep,
    store: StoreDep,
    catalogue: CatalogueDep,
    cache: TileCacheDep,
    settings: SettingsDep,
    properties: PropertiesDep = None,
) -> Response:
    """A Mapbox Vector Tile of the collection; dense tiles thinned (``count``), never cut."""
    names = [spec.name for spec in _fields(layer, properties)]
    key = _key(store, catalogue, "mvt", layer, tile, f"{ENCODER_VERSION}:{','.join(names)}")
    return _tile_response(
        request,
        key,
        lambda: store.tile(layer.id, tile.z, tile.x, tile.y, properties=names),
        MVT_MEDIA_TYPE,
        cache,
        settings,
        empty_status=204,
    )


# -- map tiles of rasters ------------------------------------------------------------------


@router.get("/collections/{collectionId}/map/tiles", name="map_tilesets")
def map_tilesets(request: Request, layer: RasterCollectionDep) -> dict[str, Any]:
    """The map tilesets of a raster layer: one, in WebMercatorQuad, as PNG."""
    return {
        "tilesets": [_tileset_reference(request, layer, "map", "map_tileset")],
        "links": [{"rel": "self", "type": JSON, "href": str(request.url)}],
    }


@router.get("/collections/{collectionId}/map/tiles/{tileMatrixSetId}", name="map_tileset")
def map_tileset(
    request: Request,
    layer: RasterCollectionDep,
    tms: TileMatrixSetDep,
    store: StoreDep,
    catalogue: CatalogueDep,
) -> dict[str, Any]:
    """Map tileset metadata: the PNG URL template, the zooms, the extent and the legend."""
    path, style = _raster(store, catalogue, layer)
    info = raster.raster_info(path)
    reference = _tileset_reference(request, layer, "map", "map_tileset")
    template = _map_template(request, layer, "{tileMatrix}", "{tileRow}", "{tileCol}")
    return {
        **reference,
        "description": layer.description,
        "boundingBox": _bounding_box(info.bounds),
        "tileMatrixSetLimits": _limits(info.bounds, info.minzoom, info.maxzoom),
        "legend": raster.legend(style, path),
        "links": [
            *reference["links"],
            {"rel": "item", "type": raster.PNG_MEDIA_TYPE, "href": template, "templated": True},
        ],
    }


@router.get(
    "/collections/{collectionId}/map/tiles/{tileMatrixSetId}/tilejson.json", name="map_tilejson"
)
def map_tilejson(
    request: Request,
    layer: RasterCollectionDep,
    tms: TileMatrixSetDep,
    store: StoreDep,
    catalogue: CatalogueDep,
) -> dict[str, Any]:
    """TileJSON 3.0 of the raster's PNG tiles, with its legend."""
    path, style = _raster(store, catalogue, layer)
    info = raster.raster_info(path)
    return {
        "tilejson": "3.0.0",
        "name": layer.id,
        "description": f"{layer.title.zh} / {layer.title.en}",
        "scheme": "xyz",
        "tiles": [_map_template(request, layer, "{z}", "{y}", "{x}")],
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
        "bounds": list(info.bounds),
        "center": [*_centre(info.bounds), info.minzoom],
        "legend": raster.legend(style, path),
    }


@router.get(
    "/collections/{collectionId}/map/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    name="map_tile",
    response_class=Response,
    responses={
        200: {"content": {raster.PNG_MEDIA_TYPE: {}}, "description": "The tile (RGBA PNG)"},
        **_TILE_RESPONSES,
    },
)
def map_tile(
    request: Request,
    layer: RasterCollectionDep,
    tms: TileMatrixSetDep,
    tile: TileDep,
    store: StoreDep,
    catalogue: CatalogueDep,
    cache: TileCacheDep,
    settings: SettingsDep,
) -> Response:
    """A 256 × 256 PNG of the raster in its colours; nodata and empty cells transparent."""
    path, style = _raster(store, catalogue, layer)
    key = _key(store, catalogue, "png", layer, tile, f"{ENCODER_VERSION}:{path.name}")
    return _tile_response(
        request,
        key,
        lambda: raster.render_tile(path, style, tile) or raster.transparent_tile(),
        raster.PNG_MEDIA_TYPE,
        cache,
        settings,
    )


# -- helpers ---------------------------------------------------------------------------------


def _tile_response(
    request: Request,
    key: TileKey,
    make: Callable[[], bytes],
    media_type: str,
    cache: TileCache,
    settings: Settings,
    *,
    empty_status: int = 200,
) -> Response:
    """The tile (from the cache, or made), or 304 when the client's copy is current."""
    headers = {"ETag": key.etag, "Cache-Control": _cache_control(settings)}
    if etag_matches(request.headers.get("if-none-match"), key.etag):
        return Response(status_code=304, headers=headers)
    body = cache.get_or_make(key, make)
    if not body:
        return Response(status_code=empty_status, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _key(
    store: Store, catalogue: Catalogue, kind: str, layer: Layer, tile: TileAddress, variant: str
) -> TileKey:
    return TileKey(store.data_version(), catalogue.version, kind, layer.id, str(tile), variant)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags


def _cache_control(settings: Settings) -> str:
    if settings.tile_max_age > 0:
        return f"public, max-age={settings.tile_max_age}"
    return "public, no-cache"  # keep it, but ask each time: a 304 while the data is unchanged


def _fields(layer: Layer, properties: list[str] | None) -> list[FieldSpec]:
    try:
        return tile_fields(layer, properties)
    except UnknownProperty as exc:
        raise BadRequest(str(exc)) from None


def _raster(store: Store, catalogue: Catalogue, layer: Layer) -> tuple[Any, raster.RasterStyle]:
    path = store.raster_path(layer.id)
    if path is None:
        raise NotFound(f"raster layer {layer.id!r} holds no raster yet")
    try:
        style = raster.raster_style(catalogue, layer)
    except raster.RasterStyleError as exc:
        raise ServiceUnavailable(f"map tiles of {layer.id!r} cannot be coloured: {exc}") from None
    return path, style


def _extent(store: Store, cache: TileCache, layer: Layer) -> BBox | None:
    return cache.remember(
        store.data_version(), ("extent", layer.id), lambda: store.extent(layer.id)
    )


def _vector_template(request: Request, layer: Layer, z: str, y: str, x: str) -> str:
    return str(
        request.url_for(
            "vector_tile",
            collectionId=layer.id,
            tileMatrixSetId=TILE_MATRIX_SET_ID,
            tileMatrix=z,
            tileRow=y,
            tileCol=x,
        )
    )


def _map_template(request: Request, layer: Layer, z: str, y: str, x: str) -> str:
    return str(
        request.url_for(
            "map_tile",
            collectionId=layer.id,
            tileMatrixSetId=TILE_MATRIX_SET_ID,
            tileMatrix=z,
            tileRow=y,
            tileCol=x,
        )
    )


def _tileset_reference(
    request: Request, layer: Layer, data_type: str, route: str
) -> dict[str, Any]:
    title = f"{layer.title.en} ({TILE_MATRIX_SET_ID})"
    href = str(request.url_for(route, collectionId=layer.id, tileMatrixSetId=TILE_MATRIX_SET_ID))
    scheme = str(request.url_for("tile_matrix_set_definition", tileMatrixSetId=TILE_MATRIX_SET_ID))
    return {
        "title": title,
        "dataType": data_type,
        "crs": CRS_URI,
        "tileMatrixSetURI": TILE_MATRIX_SET_URI,
        "links": [
            {"rel": "self", "type": JSON, "title": title, "href": href},
            {"rel": REL_TILING_SCHEME, "type": JSON, "title": TILE_MATRIX_SET_ID, "href": scheme},
        ],
    }


def _bounding_box(bounds: BBox | None) -> dict[str, Any] | None:
    if bounds is None:
        return None
    return {"lowerLeft": list(bounds[:2]), "upperRight": list(bounds[2:]), "crs": CRS84_URI}


def _limits(bounds: BBox | None, minzoom: int, maxzoom: int) -> list[dict[str, Any]]:
    """The rows and columns holding data at each zoom (the whole matrix when unknown)."""
    west, south, east, north = bounds or WORLD
    limits = []
    for zoom in range(minzoom, maxzoom + 1):
        top_left = TILE_MATRIX_SET.tile(west, min(north, MAX_LATITUDE), zoom)
        bottom_right = TILE_MATRIX_SET.tile(east, max(south, -MAX_LATITUDE), zoom)
        last = (1 << zoom) - 1
        limits.append(
            {
                "tileMatrix": str(zoom),
                "minTileRow": max(0, top_left.y),
                "maxTileRow": min(last, bottom_right.y),
                "minTileCol": max(0, top_left.x),
                "maxTileCol": min(last, bottom_right.x),
            }
        )
    return limits


def _centre(bounds: BBox) -> list[float]:
    return [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2]


def _dimension(layer: Layer) -> int | None:
    dimensions = {{"Point": 0, "LineString": 1, "Polygon": 2}[kind] for kind in layer.geometry}
    return dimensions.pop() if len(dimensions) == 1 else None


def _json_schema(spec: FieldSpec) -> dict[str, Any]:
    kind = {"integer": "integer", "number": "number", "boolean": "boolean"}.get(spec.type, "string")
    schema: dict[str, Any] = {"type": kind, "title": spec.title.en}
    if spec.type == "date":
        schema["format"] = "date"
    if spec.type == "list":
        schema["contentMediaType"] = JSON  # a JSON array, as text
    if spec.enum:
        schema["enum"] = spec.enum
    return schema
