"""Downloads of a whole layer or a filtered selection: GeoJSON, GeoPackage, CSV, XLSX."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["downloads"])
