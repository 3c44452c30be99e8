"""Metres everywhere in China: the zone helper against the spheroid (pyproj.Geod)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from geo_service.metric import buffer_m, distance_m, metric_crs, to_metric_by_zone

GEOD = pyproj.Geod(ellps="WGS84")


def _geod_distance(a: shapely.Point, b: shapely.Point) -> float:
    return float(GEOD.inv(a.x, a.y, b.x, b.y)[2])


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (110.6, 30.55, 4546),  # CM 111°E
        (116.39, 39.91, 4548),  # Beijing, CM 117°E
        (87.6, 43.8, 4538),  # Ürümqi, CM 87°E
        (126.6, 45.8, 4551),  # Harbin, CM 126°E
        (-3.7, 40.4, 32630),  # Madrid: outside China, UTM 30N
        (151.2, -33.9, 32756),  # Sydney: UTM 56S
    ],
)
def test_metric_crs_is_the_local_zone(lon: float, lat: float, epsg: int) -> None:
    assert metric_crs(lon, lat).to_epsg() == epsg


@pytest.mark.parametrize("lat", [18.3, 30.5, 40.0, 53.0])
@pytest.mark.parametrize("metres", [15.0, 1000.0, 20000.0])
def test_distance_between_polygons_matches_the_spheroid(lat: float, metres: float) -> None:
    # two small squares east-west apart; their gap measured on the spheroid is the reference
    lon = 110.9
    lon2 = GEOD.fwd(lon, lat, 90, metres)[0]
    a = shapely.Point(lon, lat).buffer(1e-6)
    b = shapely.Point(lon2, lat).buffer(1e-6)
    expected = _geod_distance(
        shapely.Point(lon, lat), shapely.Point(lon2, lat)
    ) - 2 * 1e-6 * 111_320 * np.cos(np.radians(lat))
    got = distance_m([a], [b])[0]
    assert got == pytest.approx(expected, rel=0.005)


def test_distance_across_a_zone_edge_matches_the_spheroid() -> None:
    # 109.5°E is the edge between the CM 108°E and CM 111°E zones
    a, b = shapely.Point(109.45, 30.0), shapely.Point(109.56, 30.01)
    line_a, line_b = (
        shapely.LineString([(109.45, 30.0), (109.45, 30.0001)]),
        shapely.LineString([(109.56, 30.01), (109.56, 30.0101)]),
    )
    expected = _geod_distance(a, b)
    assert distance_m([a], [b])[0] == pytest.approx(
        expected, rel=1e-9
    )  # points: the spheroid itself
    assert distance_m([line_a], [line_b])[0] == pytest.approx(expected, rel=0.005)


def test_buffer_area_is_pi_r_squared_at_several_latitudes_and_zone_edges() -> None:
    points = gpd.GeoSeries(
        [
            shapely.Point(110.6, 30.55),
            shapely.Point(109.499, 25.0),
            shapely.Point(109.501, 45.0),
            shapely.Point(87.6, 43.8),
        ],
        crs=4326,
    )
    buffered = buffer_m(points, 1000.0)
    areas = np.array([abs(GEOD.geometry_area_perimeter(g)[0]) for g in buffered])
    assert areas == pytest.approx(np.pi * 1000.0**2, rel=0.005)
    # each point lies 1000 m (on the spheroid) from its buffer's boundary
    for point, ring in zip(points, buffered.exterior, strict=True):
        xs, ys = np.asarray(ring.xy)
        _, _, d = GEOD.inv(np.full(len(xs), point.x), np.full(len(ys), point.y), xs, ys)
        assert np.abs(d - 1000.0).max() < 5.0


def test_buffer_takes_per_feature_distances_and_refuses_projected_input() -> None:
    points = gpd.GeoSeries([shapely.Point(110.6, 30.55), shapely.Point(110.7, 30.55)], crs=4326)
    areas = [abs(GEOD.geometry_area_perimeter(g)[0]) for g in buffer_m(points, [100.0, 300.0])]
    assert areas[1] / areas[0] == pytest.approx(9.0, rel=0.005)
    with pytest.raises(ValueError, match="EPSG:4326"):
        buffer_m(points.to_crs(3857), 10.0)


def test_data_across_zones_is_split_by_zone() -> None:
    geoms = gpd.GeoSeries(
        [shapely.Point(109.4, 30), shapely.Point(109.6, 30), shapely.Point(116.4, 39.9)], crs=4326
    )
    groups = to_metric_by_zone(geoms)
    assert sorted(crs.to_epsg() for crs in groups) == [4545, 4546, 4548]
    assert sorted(i for g in groups.values() for i in g.index) == [0, 1, 2]


def test_distance_needs_aligned_inputs() -> None:
    with pytest.raises(ValueError, match="aligned"):
        distance_m([shapely.Point(0, 0)], [shapely.Point(0, 0), shapely.Point(1, 1)])
    assert distance_m([], []).shape == (0,)
