"""Risk endpoints: findings per feature, the two lists, progress, status changes with API keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["risk"])
