"""Small GeoTIFFs for the rule tests: one float64 band from an array, a transform and a CRS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio

GK_114E = "EPSG:4547"  # CGCS2000 3-degree Gauss-Krüger CM 114°E
NODATA = -9999.0


def write_tif(
    path: Path,
    z: np.ndarray,
    transform: rasterio.Affine,
    crs: Any = GK_114E,
    nodata: float = NODATA,
) -> Path:
    """Write ``z`` as a one-band GeoTIFF at ``path`` (parent folders made) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=z.shape[1],
        height=z.shape[0],
        count=1,
        dtype="float64",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(z, 1)
    return path
