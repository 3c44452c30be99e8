"""Responses that arrive as files: a ``Content-Disposition`` header, and GeoPackages.

A GeoPackage is a SQLite database, not a stream: it is written chunk by chunk to a temporary
file (``geo_service.api.downloads``), sent, and deleted once sent (or when sending fails).
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from geo_service.api.downloads import FORMATS, remove_temporary, temporary_geopackage
from geo_service.api.params import Selection
from geo_service.catalogue import Layer


def attachment(name: str) -> dict[str, str]:
    """The header that makes a browser save the response as the file ``name``."""
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def geopackage_response(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    chosen: Selection,
    name: str,
    headers: dict[str, str],
) -> FileResponse:
    """The features as a GeoPackage file named ``name``, deleted once sent."""
    path = temporary_geopackage(layer, chunks, crs=chosen.crs, properties=chosen.properties)
    return FileResponse(
        path,
        media_type=FORMATS["gpkg"].media_type,
        headers=headers | attachment(name),
        background=BackgroundTask(remove_temporary, path),
    )
