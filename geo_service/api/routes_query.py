"""Buffer and proximity queries: what lies within a distance of a place or a feature."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["query"])
