"""Tiles kept in memory between requests, and the ETag that names a tile's content.

A tile's content depends on the stored data, the catalogue, the layer, the tile, the properties
asked for and the tile rules, so its ETag is a digest of exactly those. The cache keeps tiles
of one data version: when a request sees a new data version, every cached tile is dropped.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TileKey:
    """Everything a tile's bytes depend on."""

    data_version: str
    catalogue_version: str
    kind: str  # "mvt" or "png"
    layer_id: str
    tile: str  # z/x/y
    variant: str = ""  # e.g. the properties asked for

    @property
    def etag(self) -> str:
        """A strong ETag (quoted) for these bytes."""
        parts = [
            self.data_version,
            self.catalogue_version,
            self.kind,
            self.layer_id,
            self.tile,
            self.variant,
        ]
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        return f'"{digest}"'


class TileCache:
    """A least-recently-used cache of tile bytes, bounded in bytes, safe across threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._tiles: OrderedDict[TileKey, bytes] = OrderedDict()
        self._size = 0
        self._data_version: str | None = None
        self._facts: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: TileKey, make: Callable[[], bytes]) -> bytes:
        """The cached bytes of ``key``, or ``make()``'s (then kept for next time)."""
        with self._lock:
            self._follow(key.data_version)
            found = self._tiles.get(key)
            if found is not None:
                self._tiles.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        data = make()  # outside the lock: tiles of other requests are made meanwhile
        with self._lock:
            self._follow(key.data_version)
            if key.data_version == self._data_version and len(data) <= self.max_bytes:
                if key not in self._tiles:
                    self._tiles[key] = data
                    self._size += len(data)
                while self._size > self.max_bytes:
                    _, dropped = self._tiles.popitem(last=False)
                    self._size -= len(dropped)
        return data

    def remember(self, data_version: str, key: Hashable, make: Callable[[], T]) -> T:
        """A small fact about the data (a layer's extent…), kept until the data changes."""
        with self._lock:
            self._follow(data_version)
            if key in self._facts:
                found: T = self._facts[key]
                return found
        value = make()
        with self._lock:
            self._follow(data_version)
            if data_version == self._data_version:
                self._facts[key] = value
        return value

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size

    def clear(self) -> None:
        """Drop every tile."""
        with self._lock:
            self._tiles.clear()
            self._facts.clear()
            self._size = 0

    def _follow(self, data_version: str) -> None:
        """Drop every tile when the data changed (called with the lock held)."""
        if data_version != self._data_version:
            self._tiles.clear()
            self._facts.clear()
            self._size = 0
            self._data_version = data_version
