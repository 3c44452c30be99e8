"""Tiles: vector tiles of layers, PNG map tiles of rasters, MBTiles files (WebMercatorQuad).

Named ``tiling`` because ``tiles/`` at the top of the repository holds built tile sets.
"""

from geo_service.tiling.cache import TileCache, TileKey
from geo_service.tiling.grid import (
    TILE_MATRIX_SET,
    TILE_MATRIX_SET_ID,
    TileAddress,
    TileAddressError,
    TileOutOfRange,
    parse_tile,
)
from geo_service.tiling.vector import DEFAULT_POLICY, TilePolicy, UnknownProperty, tile_fields

__all__ = [
    "DEFAULT_POLICY",
    "TILE_MATRIX_SET",
    "TILE_MATRIX_SET_ID",
    "TileAddress",
    "TileAddressError",
    "TileCache",
    "TileKey",
    "TileOutOfRange",
    "TilePolicy",
    "UnknownProperty",
    "parse_tile",
    "tile_fields",
]
