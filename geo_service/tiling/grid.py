"""The one tile grid georisk serves: OGC WebMercatorQuad (EPSG:3857), from morecantile.

A tile is addressed as OGC API – Tiles does, ``tileMatrix/tileRow/tileCol``, which is the
``{z}/{y}/{x}`` of XYZ clients (Leaflet, MapLibre, TileJSON). ``parse_tile`` turns the three
path segments into a checked ``TileAddress``; ``TileFrame`` holds the numbers that put lon/lat
coordinates into a tile's integer grid (``extent`` units, y down, as in a Mapbox Vector Tile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import morecantile
import numpy as np

from geo_service.store.base import BBox

TILE_MATRIX_SET_ID = "WebMercatorQuad"
TILE_MATRIX_SET = morecantile.tms.get(TILE_MATRIX_SET_ID)
TILE_MATRIX_SET_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_URI = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MIN_ZOOM = TILE_MATRIX_SET.minzoom
MAX_ZOOM = TILE_MATRIX_SET.maxzoom

EARTH_RADIUS = 6378137.0  # the sphere of EPSG:3857
# 20,037,508.34 m: the grid's origin is (-HALF_WORLD, HALF_WORLD)
HALF_WORLD = math.pi * EARTH_RADIUS
MAX_LATITUDE = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511°: the grid's edge


class TileAddressError(ValueError):
    """A tile address that is not three whole numbers; the message names the bad part."""


class TileOutOfRange(ValueError):
    """A tile address outside the tile matrix set; the message says the valid range."""


@dataclass(frozen=True, order=True)
class TileAddress:
    """One tile of WebMercatorQuad: zoom (tileMatrix), column (x, tileCol) and row (y, tileRow)."""

    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"

    @classmethod
    def checked(cls, z: int, x: int, y: int) -> TileAddress:
        """The tile z/x/y; ``TileOutOfRange`` when it is not a tile of WebMercatorQuad."""
        if not MIN_ZOOM <= z <= MAX_ZOOM:
            raise TileOutOfRange(
                f"tileMatrix {z} is outside {TILE_MATRIX_SET_ID} (tile matrices {MIN_ZOOM} to "
                f"{MAX_ZOOM})"
            )
        last = (1 << z) - 1
        for name, value in (("tileRow", y), ("tileCol", x)):
            if not 0 <= value <= last:
                raise TileOutOfRange(
                    f"{name} {value} is outside tile matrix {z} of {TILE_MATRIX_SET_ID} "
                    f"(0 to {last})"
                )
        return cls(z, x, y)

    @property
    def tms_row(self) -> int:
        """The row counted from the bottom, as MBTiles stores it (TMS)."""
        return (1 << self.z) - 1 - self.y

    def frame(self, extent: int = 4096) -> TileFrame:
        """The numbers that map lon/lat into this tile's ``extent`` grid."""
        return TileFrame(self, extent)


def parse_tile(tile_matrix: str, tile_row: str, tile_col: str) -> TileAddress:
    """The tile named by three path segments, checked against WebMercatorQuad.

    Raises ``TileAddressError`` when a segment is not a whole number, ``TileOutOfRange`` when
    the zoom, row or column lies outside the tile matrix set.
    """
    z = _whole_number("tileMatrix", tile_matrix)
    y = _whole_number("tileRow", tile_row)
    x = _whole_number("tileCol", tile_col)
    return TileAddress.checked(z, x, y)


def tiles_covering(bbox: BBox, zoom: int) -> list[TileAddress]:
    """The tiles of ``zoom`` that cover ``bbox`` (lon/lat), row by row."""
    west, south, east, north = bbox
    found = TILE_MATRIX_SET.tiles(west, south, east, north, [zoom])
    return sorted((TileAddress(t.z, t.x, t.y) for t in found), key=lambda t: (t.y, t.x))


def lonlat_to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:4326 degrees to EPSG:3857 metres (latitudes clamped to the grid's ±85.05°)."""
    lat = np.clip(lat, -MAX_LATITUDE, MAX_LATITUDE)
    x = EARTH_RADIUS * np.radians(lon)
    y = EARTH_RADIUS * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))
    return x, y


def mercator_to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:3857 metres to EPSG:4326 degrees."""
    lon = np.degrees(x / EARTH_RADIUS)
    lat = np.degrees(2 * np.arctan(np.exp(y / EARTH_RADIUS)) - np.pi / 2)
    return lon, lat


@dataclass(frozen=True)
class TileFrame:
    """A tile's place in EPSG:3857 and the affine map into its ``extent`` × ``extent`` grid."""

    tile: TileAddress
    extent: int = 4096

    @cached_property
    def span(self) -> float:
        """Width (= height) of the tile in EPSG:3857 metres."""
        return 2 * HALF_WORLD / (1 << self.tile.z)

    @cached_property
    def left(self) -> float:
        """West edge in EPSG:3857 metres."""
        return -HALF_WORLD + self.tile.x * self.span

    @cached_property
    def top(self) -> float:
        """North edge in EPSG:3857 metres."""
        return HALF_WORLD - self.tile.y * self.span

    @property
    def scale(self) -> float:
        """Grid units per metre."""
        return self.extent / self.span

    def to_grid(self, coords: np.ndarray) -> np.ndarray:
        """``(n, 2)`` lon/lat coordinates into grid units (x right, y down)."""
        x, y = lonlat_to_mercator(coords[:, 0], coords[:, 1])
        return np.column_stack(((x - self.left) * self.scale, (self.top - y) * self.scale))

    def lonlat_bounds(self, margin: float = 0.0) -> BBox:
        """The tile's bounds in lon/lat, widened by ``margin`` grid units on every side."""
        pad = margin / self.scale
        south = max(self.top - self.span - pad, -HALF_WORLD)
        north = min(self.top + pad, HALF_WORLD)
        lon, lat = mercator_to_lonlat(
            np.array([self.left - pad, self.left + self.span + pad]), np.array([south, north])
        )
        return float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])


def _whole_number(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise TileAddressError(f"{name} {text!r}: expected a whole number, 0 or more")
    return int(text)
