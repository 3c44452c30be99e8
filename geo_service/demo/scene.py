"""The scene being built: the terrain, every layer's features so far, and what is true by design."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from geo_service.demo.region import Feature, Frame
from geo_service.demo.terrain import Dem


def generator(seed: int, purpose: str) -> np.random.Generator:
    """The random generator for one purpose of one seed."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


@dataclass
class Village:
    """A cluster of houses and its people (spread over the population raster around its centre)."""

    name: str
    centre: tuple[float, float]
    kind: str  # headtop (below a pond) | upstream (behind one) | floor | mountain
    admin_code: str = ""
    building_ids: list[str] = field(default_factory=list)
    residents: int = 0
    spread_m: float = 130.0


@dataclass
class Scene:
    """Everything built so far, in local metres; ``truth``: what each part was built to show."""

    seed: int
    frame: Frame
    dem: Dem
    layers: dict[str, list[Feature]] = field(default_factory=dict)
    villages: list[Village] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, BaseGeometry] = field(default_factory=dict)  # named guide geometries
    keepout: KeepOut = field(default_factory=lambda: KeepOut())
    compounds: dict[str, tuple[BaseGeometry, int]] = field(
        default_factory=dict
    )  # outline, residents

    def rng(self, purpose: str) -> np.random.Generator:
        """A generator of its own for each purpose, so one layer's draws never shift another's."""
        return generator(self.seed, purpose)

    def add(
        self, layer_id: str, props: dict[str, Any], geometry: BaseGeometry, prefix: str, width: int
    ) -> str:
        """Append a feature with the next id ``prefix-NNN``; returns the id."""
        features = self.layers.setdefault(layer_id, [])
        fid = f"{prefix}-{len(features) + 1:0{width}d}"
        features.append(Feature(fid, geometry, props))
        return fid

    def geometries(self, layer_id: str) -> list[BaseGeometry]:
        """Geometries of a layer built so far."""
        return [f.geometry for f in self.layers.get(layer_id, [])]


class KeepOut:
    """Areas a new building may not touch (roads, rails, water, plant sites, other buildings)."""

    def __init__(self) -> None:
        self._geoms: list[BaseGeometry] = []
        self._tree: STRtree | None = None

    def add(self, geoms: list[BaseGeometry] | BaseGeometry, margin: float = 0.0) -> None:
        """Keep new things out of ``geoms`` widened by ``margin`` metres."""
        items = [geoms] if isinstance(geoms, BaseGeometry) else list(geoms)
        if margin:
            items = list(shapely.buffer(np.array(items, dtype=object), margin, quad_segs=4))
        self._geoms.extend(items)
        self._tree = None

    def free(self, candidates: list[BaseGeometry]) -> np.ndarray:
        """Which candidates touch nothing kept out (ignoring overlaps among the candidates)."""
        if not candidates:
            return np.zeros(0, dtype=bool)
        if not self._geoms:
            return np.ones(len(candidates), dtype=bool)
        if self._tree is None:
            self._tree = STRtree(self._geoms)
        hit = self._tree.query(np.array(candidates, dtype=object), predicate="intersects")[0]
        ok = np.ones(len(candidates), dtype=bool)
        ok[np.unique(hit)] = False
        return ok
