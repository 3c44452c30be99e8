"""Offline basemaps: MBTiles files and XYZ folders under the tiles folder, served as tiles.

The map's background on an intranet with no internet (``GEORISK_BASEMAP=<name>``). Tiles are
files that change only when someone replaces the set, so they carry an ``ETag`` from the file's
size and time and are answered 304 while unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from geo_service.api.deps import CatalogueDep, SettingsDep
from geo_service.api.errors import BadRequest, NotFound
from geo_service.api.routes_tiles import etag_matches
from geo_service.tiling.grid import TileAddress, TileOutOfRange
from geo_service.tiling.offline import TileSet, tile_sets
from geo_service.tiling.offline import tile_set as find_tile_set

router = APIRouter(tags=["basemaps"])

NameParam = Annotated[
    str, Path(description="Name of an offline tile set in the tiles folder, e.g. `city`.")
]


@router.get("/basemaps", summary="Offline basemaps")
def list_basemaps(
    request: Request, settings: SettingsDep, catalogue: CatalogueDep
) -> list[dict[str, Any]]:
    """The offline image tile sets in the tiles folder that can be the map's background."""
    return [
        {
            "name": tile_set.name,
            "kind": tile_set.kind,
            "format": tile_set.format,
            "minzoom": tile_set.minzoom,
            "maxzoom": tile_set.maxzoom,
            "attribution": tile_set.attribution,
            "tiles": [f"{request.base_url}basemaps/{tile_set.name}/{{z}}/{{x}}/{{y}}"],
            "selected": tile_set.name == settings.basemap,
        }
        for tile_set in tile_sets(
            settings.tiles_dir, exclude={layer.id for layer in catalogue}
        ).values()
    ]


@router.get(
    "/basemaps/{name}/{z}/{x}/{y}",
    summary="A basemap tile",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        204: {"description": "The set has no tile here (outside its area or zooms)."},
        304: {"description": "Unchanged since the ETag given in If-None-Match"},
    },
)
def basemap_tile(
    request: Request,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    name: NameParam,
    z: Annotated[int, Path(description="Zoom level.")],
    x: Annotated[int, Path(description="Column, from the west.")],
    y: Annotated[int, Path(description="Row, from the north (XYZ, as Leaflet asks).")],
) -> Response:
    """One tile of an offline basemap (rows counted from the north, as in XYZ)."""
    # `georisk tiles build` writes <layer>.mbtiles of catalogue layers: overlays, not basemaps
    tile_set = None if name in catalogue else find_tile_set(settings.tiles_dir, name)
    if tile_set is None:
        raise NotFound(f"no offline basemap {name!r} in the tiles folder; see /basemaps")
    try:
        tile = TileAddress.checked(z, x, y)
    except TileOutOfRange as exc:
        raise BadRequest(str(exc)) from None
    etag = _etag(tile_set, tile)
    headers = {"ETag": etag, "Cache-Control": "public, no-cache"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    data = tile_set.tile(tile)
    if data is None:  # empty, not an error: Leaflet then draws nothing there
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=tile_set.media_type, headers=headers)


def _etag(tile_set: TileSet, tile: TileAddress) -> str:
    stat = tile_set.path.stat()
    stamp = f"{tile_set.path}:{stat.st_size}:{stat.st_mtime_ns}:{tile}"
    return '"' + hashlib.blake2b(stamp.encode(), digest_size=12).hexdigest() + '"'
