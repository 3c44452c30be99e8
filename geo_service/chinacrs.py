"""Source coordinate systems, including the offset systems of Chinese web maps.

Data copied from AMap (高德) or Tencent are in GCJ-02, from Baidu in BD-09: WGS 84 shifted by a
published obfuscation, typically 50–500 m. The forward shift is public; the inverse is solved by
fixed-point iteration to well under 0.5 m. Outside mainland China GCJ-02 equals WGS 84.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyproj
from numpy.typing import NDArray

Array = NDArray[np.float64]

# Krasovsky 1940, the ellipsoid the GCJ-02 shift is defined on
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_FACTOR = np.pi * 3000.0 / 180.0
OFFSET_SYSTEMS = ("gcj02", "bd09")


@dataclass(frozen=True)
class SourceCRS:
    """Where coordinates come from: a real CRS, or one of the Chinese offset systems."""

    label: str  # what the record keeps: "EPSG:4547", "gcj02", "bd09"
    crs: pyproj.CRS  # the real CRS of the numbers once any offset is removed
    offset: str | None = None  # "gcj02" / "bd09", or None

    @property
    def is_geographic(self) -> bool:
        """Whether the numbers are longitude/latitude."""
        return bool(self.crs.is_geographic)


class UnknownCRSError(ValueError):
    """A CRS that cannot be understood."""


def parse_source_crs(text: str) -> SourceCRS:
    """Read ``--crs``: an EPSG code (``4547``, ``EPSG:4547``), ``gcj02``/``bd09``, or WKT/PROJ."""
    key = text.strip().lower().replace("-", "").replace("_", "")
    if key in OFFSET_SYSTEMS:
        return SourceCRS(label=key, crs=pyproj.CRS.from_epsg(4326), offset=key)
    try:
        crs = pyproj.CRS.from_user_input(int(text) if text.strip().isdigit() else text)
    except pyproj.exceptions.CRSError:
        raise UnknownCRSError(
            f"unknown CRS {text!r}: give an EPSG code (e.g. 4490, 4547) or gcj02 / bd09"
        ) from None
    return from_crs(crs)


def from_crs(crs: pyproj.CRS) -> SourceCRS:
    """A SourceCRS for a real CRS, labelled by its EPSG code when it has one."""
    code = crs.to_epsg(min_confidence=70)
    return SourceCRS(label=f"EPSG:{code}" if code else crs.to_string(), crs=crs)


def gcj02_to_wgs84(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Remove the GCJ-02 shift (iterative inverse of the public forward shift)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Remove Baidu's BD-09 shift (iterative inverse of GCJ-02 followed by BD-09)."""
    return _invert(wgs84_to_bd09, lon, lat)


def wgs84_to_bd09(lon: Array, lat: Array) -> tuple[Array, Array]:
    """WGS 84 to BD-09: the GCJ-02 shift, then Baidu's rotation."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def wgs84_to_gcj02(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Apply the public GCJ-02 forward shift (identity outside mainland China)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlat = _shift_lat(lon - 105.0, lat - 35.0)
    dlon = _shift_lon(lon - 105.0, lat - 35.0)
    rad = np.radians(lat)
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    inside = _in_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_bd09(lon: Array, lat: Array) -> tuple[Array, Array]:
    """GCJ-02 to BD-09 (Baidu's published forward)."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_FACTOR)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_FACTOR)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def to_wgs84(offset: str, lon: Array, lat: Array) -> tuple[Array, Array]:
    """Remove an offset system's shift."""
    return gcj02_to_wgs84(lon, lat) if offset == "gcj02" else bd09_to_wgs84(lon, lat)


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]], lon: Array, lat: Array
) -> tuple[Array, Array]:
    """Solve ``forward(w) = g`` by fixed-point iteration ``w ← w + (g − forward(w))``.

    The shifts change slowly with position, so each step gains about three digits; stopping
    under 1e-8° leaves an error below 1 mm.
    """
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(30):
        flon, flat = forward(wlon, wlat)
        dlon, dlat = lon - flon, lat - flat
        wlon, wlat = wlon + dlon, wlat + dlat
        if np.all(np.abs(dlon) < 1e-8) and np.all(np.abs(dlat) < 1e-8):
            break
    return wlon, wlat


def _in_china(lon: Array, lat: Array) -> NDArray[np.bool_]:
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _shift_lat(x: Array, y: Array) -> Array:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _shift_lon(x: Array, y: Array) -> Array:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret
