"""The layout of the fictional city: the river, the valley floor, the side valleys, the core.

Everything is laid out in local metres ``(u, v)``: east and north of the region's centre in its
CGCS2000 3-degree Gauss–Krüger zone. The valley is described by smooth functions of ``u`` (the
river's centreline, its level, the half-width of the valley floor); other modules place features
relative to them, so the terrain, the roads and the villages agree with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pyproj
import rasterio
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

from geo_service.catalogue import Layer
from geo_service.metric import metric_crs
from geo_service.schema import conform

Array = NDArray[np.float64]
Side = Literal["north", "south"]

CENTRE_LONLAT = (110.60, 30.55)
HALF_U = 12_000.0  # the region is 24 km east–west …
HALF_V = 9_000.0  # … and 18 km north–south
DEM_CELL = 30.0
RIDGE_DISTANCE = 5_000.0  # from the edge of the valley floor to the ridge crest

CORE_RADIUS = 2_000.0
CORE_U = -500.0
CORE_OFFSET = 900.0  # the core's centre lies this far north of the river

# suburbs around the core: easting, metres north of the river, radius (m), peak density (/km²)
SUBURBS = ((-4_600.0, 500.0, 650.0, 3_000.0), (3_500.0, 700.0, 650.0, 3_200.0),
           (1_600.0, -1_750.0, 600.0, 2_600.0))  # fmt: skip


def river_v(u: ArrayLike) -> Array:
    """Northing of the river's centreline at easting ``u``."""
    u = np.asarray(u, dtype=float)
    return (
        -300
        + 500 * np.sin(2 * np.pi * (u + HALF_U) / 16_000)
        + 150 * np.sin(2 * np.pi * u / 5_300 + 0.7)
    )


def river_z(u: ArrayLike) -> Array:
    """Water level of the river (m): 150 m in the west down to 122 m in the east."""
    return 150 - 28 * (np.asarray(u, dtype=float) + HALF_U) / (2 * HALF_U)


def river_half_width(u: ArrayLike) -> Array:
    """Half the river's width (m): the river is 66–114 m wide."""
    return 45 + 12 * np.sin(np.asarray(u, dtype=float) / 2_700 + 0.3)


def floor_half_width(u: ArrayLike) -> Array:
    """Half-width of the flat valley floor (m), widest in the city's basin."""
    u = np.asarray(u, dtype=float)
    return 1_300 + 1_900 * np.exp(-((u / 5_500) ** 2))


def ridge_relief(u: ArrayLike, north: ArrayLike) -> Array:
    """Height of the ridge crest above the edge of the valley floor (m)."""
    u = np.asarray(u, dtype=float)
    return np.where(north, 740 + 110 * np.sin(u / 3_100 + 1.0), 700 + 140 * np.sin(u / 3_700 - 0.5))


def across(u: ArrayLike, v: ArrayLike) -> Array:
    """Signed distance north of the river's centreline (m), measured along v."""
    return np.asarray(v, dtype=float) - river_v(u)


def beyond_floor(u: ArrayLike, v: ArrayLike) -> Array:
    """Distance beyond the edge of the valley floor, up the hillside (m; negative on the floor)."""
    return np.abs(across(u, v)) - floor_half_width(u)


def point_at(u: float, d: float) -> tuple[float, float]:
    """The point at easting ``u``, ``d`` metres north of the river (south when negative)."""
    return float(u), float(river_v(u) + d)


def point_up_hill(u: float, side: Side, s: float) -> tuple[float, float]:
    """The point at easting ``u``, ``s`` metres beyond the edge of the floor on ``side``."""
    sign = 1.0 if side == "north" else -1.0
    return point_at(u, sign * (float(floor_half_width(u)) + s))


def core_centre() -> tuple[float, float]:
    """Centre of the dense city core."""
    return point_at(CORE_U, CORE_OFFSET)


def valley_line(
    offset: Callable[[Array], Array], u0: float, u1: float, step: float = 50.0
) -> LineString:
    """A line along the valley at ``offset(u)`` metres north of the river, from ``u0`` to ``u1``."""
    u = np.linspace(u0, u1, max(2, round(abs(u1 - u0) / step) + 1))
    return LineString(np.column_stack([u, river_v(u) + offset(u)]))


def river_polygon() -> Polygon:
    """The river's water surface across the region."""
    u = np.linspace(-HALF_U - 200, HALF_U + 200, 981)
    centre = np.column_stack([u, river_v(u)])
    tangent = np.gradient(centre, axis=0)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.linalg.norm(normal, axis=1)[:, None]
    hw = river_half_width(u)[:, None]
    ring = np.vstack([centre + normal * hw, (centre - normal * hw)[::-1]])
    return Polygon(ring).intersection(region_box())


def region_box() -> Polygon:
    """The region's extent in local metres."""
    return shapely.box(-HALF_U, -HALF_V, HALF_U, HALF_V)


@dataclass(frozen=True)
class SideValley:
    """A tributary valley draining into the main valley, carved into the hills on one side."""

    name: str
    side: Side
    u: float  # easting of the valley's mouth
    wiggle: float = 150.0  # amplitude of its meanders (m)
    wavelength: float = 2_500.0
    phase: float = 0.0
    length: float = 4_600.0  # distance up the hillside where the valley fades out

    def centre_u(self, s: ArrayLike) -> Array:
        """Easting of the valley's thalweg ``s`` metres beyond the floor's edge."""
        s = np.asarray(s, dtype=float)
        return self.u + self.wiggle * np.sin(2 * np.pi * s / self.wavelength + self.phase)

    def thalweg_point(self, s: float) -> tuple[float, float]:
        """The point on the valley's thalweg ``s`` metres beyond the floor's edge."""
        return point_up_hill(float(self.centre_u(s)), self.side, s)


# The side valleys (沟): ponds sit in six of them, the reservoir in 龙潭沟.
SIDE_VALLEYS: dict[str, SideValley] = {
    v.name: v
    for v in (
        SideValley("龙潭沟", "north", -9_000, phase=0.5),
        SideValley("黄家沟", "north", -4_500, phase=1.6, length=5_400),
        SideValley("石门沟", "north", 3_500, phase=2.4),
        SideValley("青龙沟", "north", 10_800, wiggle=110, phase=0.9),
        SideValley("白岩沟", "south", -10_000, phase=2.0, length=5_600),
        SideValley("杨柳沟", "south", -6_000, phase=0.3),
        SideValley("桃树沟", "south", 4_500, phase=1.1, length=5_200),
        SideValley("大峪沟", "south", 10_000, wiggle=120, phase=2.8),
    )
}


@dataclass
class Feature:
    """One feature being built: an id, its attributes, and a geometry in local metres."""

    id: str
    geometry: BaseGeometry
    props: dict[str, Any] = field(default_factory=dict)


class Frame:
    """Local metres ↔ the metric CRS ↔ EPSG:4326 for the region."""

    def __init__(self) -> None:
        lon, lat = CENTRE_LONLAT
        self.crs = metric_crs(lon, lat)
        x, y = pyproj.Transformer.from_crs(4326, self.crs, always_xy=True).transform(lon, lat)
        # the origin on whole DEM cells, so cell edges fall on round coordinates
        self.x0 = round(x / DEM_CELL) * DEM_CELL
        self.y0 = round(y / DEM_CELL) * DEM_CELL
        self._to_lonlat = pyproj.Transformer.from_crs(self.crs, 4326, always_xy=True)
        self._from_lonlat = pyproj.Transformer.from_crs(4326, self.crs, always_xy=True)

    @property
    def crs_label(self) -> str:
        """The metric CRS as ``EPSG:nnnn``."""
        return f"EPSG:{self.crs.to_epsg()}"

    def to_metric(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Local metres → the metric CRS."""
        return shapely.transform(geoms, lambda xy: xy + np.array([self.x0, self.y0]))

    def lonlat_to_local(self, lon: Array, lat: Array) -> tuple[Array, Array]:
        """EPSG:4326 → local metres."""
        x, y = self._from_lonlat.transform(lon, lat)
        return np.asarray(x) - self.x0, np.asarray(y) - self.y0

    def local_to_lonlat(self, u: Array, v: Array) -> tuple[Array, Array]:
        """Local metres → EPSG:4326."""
        lon, lat = self._to_lonlat.transform(np.asarray(u) + self.x0, np.asarray(v) + self.y0)
        return np.asarray(lon), np.asarray(lat)

    def to_frame(self, layer: Layer, features: list[Feature]) -> gpd.GeoDataFrame:
        """A canonical frame (EPSG:4326) of ``features`` for ``layer``."""
        unknown = {k for f in features for k in f.props} - set(layer.field_map)
        if unknown:
            raise ValueError(f"{layer.id}: fields not in the catalogue: {sorted(unknown)}")
        data: dict[str, list[Any]] = {"id": [f.id for f in features]}
        for spec in layer.fields:
            data[spec.name] = [f.props.get(spec.name) for f in features]
        data["source_crs"] = [self.crs_label] * len(features)
        metric = self.to_metric(np.array([f.geometry for f in features], dtype=object))
        geometry = gpd.GeoSeries(metric, crs=self.crs).to_crs(4326)
        return conform(layer, gpd.GeoDataFrame(data, geometry=geometry.values, crs=4326))


def write_geotiff(
    path: Path,
    data: Array,
    *,
    crs: Any,
    transform: Any,
    nodata: float,
    units: str,
    description: str,
) -> None:
    """Write one float32 band as a tiled, compressed GeoTIFF with its units in the band tags."""
    rows, cols = data.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32), 1)
        dst.update_tags(1, units=units, description=description)
