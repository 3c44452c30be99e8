"""GCJ-02 / BD-09 conversions: the published forward shifts and their inverses."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from geo_service.chinacrs import (
    UnknownCRSError,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    parse_source_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = pyproj.Geod(ellps="WGS84")
# spread over mainland China: Beijing, Shanghai, Guangzhou, Chengdu, Ürümqi, Harbin, Lhasa, Qinghe
LON = np.array([116.391263, 121.4737, 113.2644, 104.0665, 87.6168, 126.6424, 91.1409, 110.6])
LAT = np.array([39.907250, 31.2304, 23.1291, 30.5723, 43.8256, 45.7560, 29.6456, 30.55])


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def test_gcj02_shift_is_the_published_one() -> None:
    # Tiananmen: the widely published GCJ-02 position of WGS84 (116.391263, 39.907250)
    glon, glat = wgs84_to_gcj02(LON[:1], LAT[:1])
    assert glon[0] == pytest.approx(116.397504, abs=2e-6)
    assert glat[0] == pytest.approx(39.908651, abs=2e-6)


def test_offsets_are_the_typical_hundreds_of_metres() -> None:
    glon, glat = wgs84_to_gcj02(LON, LAT)
    shift = _metres(LON, LAT, glon, glat)
    assert np.all((shift > 50) & (shift < 800))
    blon, blat = wgs84_to_bd09(LON, LAT)
    assert np.all(_metres(LON, LAT, blon, blat) > shift)  # Baidu adds its own shift on top


def test_inverse_recovers_wgs84_under_half_a_metre() -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(LON, LAT))
    assert _metres(LON, LAT, *back).max() < 0.01
    back = bd09_to_wgs84(*wgs84_to_bd09(LON, LAT))
    assert _metres(LON, LAT, *back).max() < 0.01


def test_outside_china_gcj02_is_wgs84() -> None:
    lon, lat = np.array([2.35, -74.0]), np.array([48.85, 40.7])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.array_equal(glon, lon) and np.array_equal(glat, lat)


def test_parse_source_crs() -> None:
    assert parse_source_crs("4547").label == "EPSG:4547"
    assert parse_source_crs("EPSG:4490").label == "EPSG:4490"
    gcj = parse_source_crs("GCJ-02")
    assert (gcj.label, gcj.offset, gcj.is_geographic) == ("gcj02", "gcj02", True)
    assert parse_source_crs("bd09").offset == "bd09"
    with pytest.raises(UnknownCRSError, match="unknown CRS 'EPSG:999999'"):
        parse_source_crs("EPSG:999999")
