"""PNG map tiles of raster layers (rio-tiler on the stored GeoTIFF, WebMercatorQuad).

Each raster layer is drawn with one colour ramp (``raster_style``):

- ``risk_surface``: the four risk colours by the class thresholds of the catalogue (a cell
  scoring at least ``red`` is red, at least ``orange`` orange, at least ``yellow`` yellow, any
  other positive score blue);
- ``population``: a sequential ramp on a log scale from 1 person to the raster's 99th
  percentile of populated cells (higher values take the darkest colour);
- any other raster: the same ramp, linear from its 2nd to its 98th percentile.

Nodata cells, cells outside the raster and cells of 0 (nobody lives there, no risk) are
transparent. Tiles are 256 × 256 pixels, read with nearest-neighbour resampling so cells stay
crisp and classes are never blended.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.utils import render

from geo_service.catalogue import RISK_CLASSES, Catalogue, Layer, RiskClass
from geo_service.store.base import BBox
from geo_service.tiling.grid import TILE_MATRIX_SET, TileAddress

PNG_MEDIA_TYPE = "image/png"
TILE_SIZE = 256
RISK_LAYER = "risk_surface"
POPULATION_LAYER = "population"

# the colours the catalogue's layers give the four classes (style.classes)
DEFAULT_RISK_COLOURS: dict[RiskClass, str] = {
    "red": "#e53935",
    "orange": "#fb8c00",
    "yellow": "#fdd835",
    "blue": "#1e88e5",
}
# ColorBrewer BuPu (9 classes): sequential, and unlike any of the four risk colours
SEQUENTIAL_RAMP = (
    "#f7fcfd",
    "#e0ecf4",
    "#bfd3e6",
    "#9ebcda",
    "#8c96c6",
    "#8c6bb1",
    "#88419d",
    "#810f7c",
    "#4d004b",
)

WGS84 = "EPSG:4326"

Colormap = dict[int, tuple[int, int, int, int]]


class RasterStyleError(ValueError):
    """The catalogue does not say how to colour a raster; the message says what to add."""


@dataclass(frozen=True)
class RiskClasses:
    """Colour by class: the lowest score of red, orange and yellow (blue below yellow)."""

    thresholds: dict[RiskClass, float]
    colours: dict[RiskClass, str] = field(default_factory=lambda: dict(DEFAULT_RISK_COLOURS))

    def legend(self) -> dict[str, object]:
        """How the tiles are coloured, for a map legend."""
        return {
            "type": "classes",
            "classes": [
                {"class": name, "min": self.thresholds.get(name, 0.0), "color": self.colours[name]}
                for name in RISK_CLASSES
            ],
        }


@dataclass(frozen=True)
class Ramp:
    """Colour along ``SEQUENTIAL_RAMP`` from ``low`` to ``high``, linear or on a log scale."""

    scale: str  # "log" (from 1) or "linear"
    percentile: float  # the percentile of positive cells that takes the darkest colour

    def legend(self, path: Path) -> dict[str, object]:
        """How the tiles of the raster at ``path`` are coloured, for a map legend."""
        low, high = _ramp_range(path, self)
        return {
            "type": "ramp",
            "scale": self.scale,
            "min": low,
            "max": high,
            "colors": list(SEQUENTIAL_RAMP),
        }


RasterStyle = RiskClasses | Ramp


@dataclass(frozen=True)
class RasterInfo:
    """Where a raster is and at which zooms its tiles make sense."""

    bounds: BBox
    minzoom: int
    maxzoom: int


def raster_style(catalogue: Catalogue, layer: Layer) -> RasterStyle:
    """How ``layer`` (a raster layer of ``catalogue``) is coloured."""
    if layer.id == RISK_LAYER:
        return RiskClasses(risk_thresholds(catalogue), _risk_colours(layer))
    if layer.id == POPULATION_LAYER:
        return Ramp("log", 99.0)
    return Ramp("linear", 98.0)


def risk_thresholds(catalogue: Catalogue) -> dict[RiskClass, float]:
    """The lowest score of red, orange and yellow on the risk surface.

    From ``risk_surface``'s ``grading.classes``, else the classes every graded hazard layer
    shares (the surface keeps their scores).
    """
    own = catalogue[RISK_LAYER].grading.get("classes") if RISK_LAYER in catalogue else None
    found = (
        [own]
        if own
        else [
            layer.grading["classes"]
            for layer in catalogue.vector_layers
            if isinstance(layer.grading.get("classes"), dict)
        ]
    )
    distinct = {tuple(sorted(c.items())) for c in found}
    if len(distinct) != 1:
        reason = "no layer grades" if not distinct else "the graded layers disagree on"
        raise RasterStyleError(
            f"{reason} the class thresholds of the risk surface: give layers/{RISK_LAYER}.yaml "
            "`grading: {classes: {red: …, orange: …, yellow: …}}`"
        )
    classes = dict(distinct.pop())
    try:
        thresholds: dict[RiskClass, float] = {
            "red": float(classes["red"]),
            "orange": float(classes["orange"]),
            "yellow": float(classes["yellow"]),
        }
    except (KeyError, TypeError, ValueError):
        raise RasterStyleError(
            f"risk class thresholds need numbers for red, orange and yellow, got {classes}"
        ) from None
    if not thresholds["red"] > thresholds["orange"] > thresholds["yellow"] > 0:
        raise RasterStyleError(f"risk class thresholds need red > orange > yellow > 0: {classes}")
    return thresholds


def render_tile(path: Path, style: RasterStyle, tile: TileAddress) -> bytes | None:
    """The PNG of ``tile`` (RGBA, 256 × 256); None when every pixel would be transparent."""
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no Overviews.*")
        with Reader(str(path), tms=TILE_MATRIX_SET) as reader:
            try:
                image = reader.tile(tile.x, tile.y, tile.z, tilesize=TILE_SIZE)
            except TileOutsideBounds:
                return None
    values = np.ma.masked_invalid(image.array[0].astype("float64"))
    index, colormap = _colour_index(values, style, path)
    if not index.any():
        return None
    alpha = np.where(index > 0, 255, 0).astype("uint8")
    png: bytes = render(index[np.newaxis], mask=alpha, img_format="PNG", colormap=colormap)
    return png


@cache
def transparent_tile() -> bytes:
    """A fully transparent 256 × 256 PNG (what a tile with nothing to draw is)."""
    index = np.zeros((1, TILE_SIZE, TILE_SIZE), dtype="uint8")
    png: bytes = render(index, mask=index[0], img_format="PNG", colormap={0: (0, 0, 0, 0)})
    return png


def raster_info(path: Path) -> RasterInfo:
    """The raster's lon/lat bounds and its useful zooms (to its resolution, and 2 beyond)."""
    key = _file_key(path)
    return _raster_info(*key)


def legend(style: RasterStyle, path: Path) -> dict[str, object]:
    """How tiles of the raster at ``path`` drawn with ``style`` are coloured."""
    return style.legend() if isinstance(style, RiskClasses) else style.legend(path)


# -- colours ---------------------------------------------------------------------------------


def _colour_index(
    values: np.ma.MaskedArray, style: RasterStyle, path: Path
) -> tuple[np.ndarray, Colormap]:
    """Per pixel an index into the returned colour map; 0 is transparent."""
    drawn = ~np.ma.getmaskarray(values) & (values.filled(0.0) > 0)
    data = values.filled(0.0)
    if isinstance(style, RiskClasses):
        order: list[RiskClass] = ["blue", "yellow", "orange", "red"]
        classes = np.ones(data.shape, dtype="uint8")  # blue: above 0, below yellow
        for rank, name in enumerate(order[1:], start=2):
            classes[data >= style.thresholds[name]] = rank
        colormap: Colormap = {0: (0, 0, 0, 0)}
        for rank, name in enumerate(order, start=1):
            colormap[rank] = (*_rgb(style.colours[name]), 255)
        return np.where(drawn, classes, 0).astype("uint8"), colormap
    low, high = _ramp_range(path, style)
    if style.scale == "log":
        span = math.log(high) - math.log(low)
        position = (np.log(np.maximum(data, low)) - math.log(low)) / span
    else:
        position = (data - low) / (high - low)
    steps = np.clip(np.floor(np.clip(position, 0, 1) * 254) + 1, 1, 255).astype("uint8")
    return np.where(drawn, steps, 0).astype("uint8"), _ramp_colormap()


@lru_cache(maxsize=1)
def _ramp_colormap() -> Colormap:
    stops = np.array([_rgb(c) for c in SEQUENTIAL_RAMP], dtype=float)
    at = np.linspace(0, 1, len(stops))
    colormap: Colormap = {0: (0, 0, 0, 0)}
    for index in range(1, 256):
        t = (index - 1) / 254
        rgb = [round(float(np.interp(t, at, stops[:, band]))) for band in range(3)]
        colormap[index] = (rgb[0], rgb[1], rgb[2], 255)
    return colormap


def _ramp_range(path: Path, ramp: Ramp) -> tuple[float, float]:
    """(low, high) of the ramp for the raster at ``path`` (from its populated cells)."""
    return _percentiles(*_file_key(path), ramp.scale, ramp.percentile)


@lru_cache(maxsize=32)
def _percentiles(
    path: str, _inode: int, _mtime: int, _size: int, scale: str, percentile: float
) -> tuple[float, float]:
    with rasterio.open(path) as src:
        factor = max(1, math.ceil(max(src.width, src.height) / 2048))  # a decimated read
        data = src.read(
            1, masked=True, out_shape=(src.height // factor or 1, src.width // factor or 1)
        )
    values = np.ma.masked_invalid(data.astype("float64")).compressed()
    values = values[values > 0]
    if not len(values):
        return (1.0, 10.0)
    high = float(np.percentile(values, percentile))
    if scale == "log":
        return 1.0, max(high, 10.0)
    low = float(np.percentile(values, 100 - percentile))
    return low, high if high > low else low + 1.0


def _risk_colours(layer: Layer) -> dict[RiskClass, str]:
    """The layer's own ``style.classes`` colours when it names all four, else the defaults."""
    own = layer.style.classes
    if all(name in own for name in RISK_CLASSES):
        return {name: own[name] for name in RISK_CLASSES}
    return dict(DEFAULT_RISK_COLOURS)


def _rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


# -- the file ----------------------------------------------------------------------------------


def _file_key(path: Path) -> tuple[str, int, int, int]:
    """The path and what changes when the file is replaced (keys the caches above)."""
    stat = os.stat(path)
    return str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=32)
def _raster_info(path: str, _inode: int, _mtime: int, _size: int) -> RasterInfo:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no Overviews.*")
        with Reader(path, tms=TILE_MATRIX_SET) as reader:
            west, south, east, north = reader.get_geographic_bounds(WGS84)
            minzoom, maxzoom = reader.minzoom, reader.maxzoom
    return RasterInfo((west, south, east, north), max(0, minzoom - 2), maxzoom + 2)
