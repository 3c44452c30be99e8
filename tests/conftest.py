"""Shared fixtures: the shipped catalogue and a throw-away embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_service.catalogue import Catalogue, load_catalogue
from geo_service.store.gpkg import GeoPackageStore


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def gpkg_store(tmp_path: Path, catalogue: Catalogue) -> GeoPackageStore:
    return GeoPackageStore(catalogue, tmp_path / "data")
