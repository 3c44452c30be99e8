"""Offline basemaps: MBTiles files and XYZ folders under the tiles folder, served as tiles."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["basemaps"])
