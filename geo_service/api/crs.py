"""The coordinate reference systems the feature API speaks (OGC API – Features Part 2).

Features are stored in lon/lat (``CRS84``, the default of every response). A client may ask
for EPSG:4326 or EPSG:4490 (CGCS2000), both in their authority axis order (latitude first), or
for EPSG:3857 (Web Mercator, metres); and may give ``bbox`` and ``filter`` geometries in any of
them (``bbox-crs``, ``filter-crs``). A CRS is named by its OGC URI; ``EPSG:4326`` and ``CRS84``
are accepted too. Anything else is a 400 naming the parameter.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo_service.api.errors import BadRequest
from geo_service.store import BBox

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"

#: Supported CRS URIs → the name pyproj knows them by.
SUPPORTED: dict[str, str] = {
    CRS84: "OGC:CRS84",
    EPSG_URI.format(code=4326): "EPSG:4326",
    EPSG_URI.format(code=4490): "EPSG:4490",
    EPSG_URI.format(code=3857): "EPSG:3857",
}
STORAGE_CRS = CRS84

# the valid range of each CRS's coordinates, in its own axis order
_BOUNDS: dict[str, BBox] = {
    CRS84: (-180.0, -90.0, 180.0, 90.0),
    EPSG_URI.format(code=4326): (-90.0, -180.0, 90.0, 180.0),
    EPSG_URI.format(code=4490): (-90.0, -180.0, 90.0, 180.0),
    EPSG_URI.format(code=3857): (-20037508.3427892, -20048966.1, 20037508.3427892, 20048966.1),
}


def parse_crs(value: str | None, parameter: str) -> str:
    """The URI of the CRS ``value`` names (CRS84 when None); 400 naming ``parameter`` if unknown."""
    if value is None:
        return CRS84
    text = value.strip().strip("[]<>")
    upper = text.upper()
    if upper in {"CRS84", "OGC:CRS84"}:
        return CRS84
    if upper.startswith("EPSG:"):
        text = EPSG_URI.format(code=upper.removeprefix("EPSG:"))
    if text.replace("https://", "http://") in SUPPORTED:
        return text.replace("https://", "http://")
    raise BadRequest(f"{parameter} {value!r}: not supported; use one of {', '.join(SUPPORTED)}")


def content_crs(uri: str) -> dict[str, str]:
    """The ``Content-Crs`` header of a response in ``uri``."""
    return {"Content-Crs": f"<{uri}>"}


def parse_bbox(text: str, crs: str, parameter: str = "bbox") -> BBox:
    """A ``bbox`` in ``crs`` (four numbers, or six with heights) as a lon/lat box."""
    parts = text.split(",")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 6:  # minx, miny, minz, maxx, maxy, maxz: heights are not kept
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise BadRequest(
            f"{parameter} {text!r}: expected four numbers (lower corner, upper corner)"
        )
    a0, b0, a1, b1 = numbers
    low0, low1, high0, high1 = _BOUNDS[crs]
    if not (low0 <= a0 <= a1 <= high0 and low1 <= b0 <= b1 <= high1):
        raise BadRequest(
            f"{parameter} {text!r}: expected min <= max on each axis, within "
            f"[{low0}, {high0}] and [{low1}, {high1}] in {crs}"
        )
    if crs == CRS84:
        return a0, b0, a1, b1
    west, south, east, north = _to_crs84(crs).transform_bounds(a0, b0, a1, b1, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def geometry_to_crs84(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    """A geometry given in ``crs`` (its axis order) in lon/lat."""
    if crs == CRS84:
        return geometry
    return _transform(np.asarray([geometry], dtype=object), _to_crs84(crs))[0]


def geometries_from_crs84(geometries: np.ndarray, crs: str) -> np.ndarray:
    """Lon/lat geometries in ``crs``, in its axis order (latitude first for EPSG:4326)."""
    if crs == CRS84:
        return geometries
    return _transform(geometries, _from_crs84(crs))


def _transform(geometries: np.ndarray, transformer: Transformer) -> np.ndarray:
    def move(xy: np.ndarray) -> np.ndarray:
        first, second = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([first, second])

    return np.asarray(shapely.transform(geometries, move), dtype=object)


def _from_crs84(crs: str) -> Transformer:
    return _transformer("OGC:CRS84", SUPPORTED[crs])


def _to_crs84(crs: str) -> Transformer:
    return _transformer(SUPPORTED[crs], "OGC:CRS84")


def _transformer(source: str, target: str) -> Transformer:
    """One transformer per thread and pair (pyproj objects are not to be shared by threads)."""
    cache: dict[tuple[str, str], Transformer] = _per_thread.__dict__.setdefault("cache", {})
    if (source, target) not in cache:
        cache[source, target] = Transformer.from_crs(source, target)
    return cache[source, target]


_per_thread = threading.local()
