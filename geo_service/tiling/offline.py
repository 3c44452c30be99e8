"""Offline tile sets in the tiles folder: MBTiles files and XYZ folders, for basemaps.

An intranet with no internet keeps its basemap as ``<tiles_dir>/<name>.mbtiles`` (MBTiles 1.3,
rows counted from the bottom) or as a folder ``<tiles_dir>/<name>/{z}/{x}/{y}.<ext>`` (png, jpg,
jpeg or webp). Only image tile sets are basemaps: vector (pbf) sets are left out, and so are the
sets ``georisk tiles build`` writes for catalogue layers (those are overlays, not backgrounds).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Set
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from geo_service.tiling.grid import TileAddress
from geo_service.tiling.mbtiles import read_tile

IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a file name, never a path


@dataclass(frozen=True)
class TileSet:
    """One offline image tile set: where it is, its image format and zoom range."""

    name: str
    kind: Literal["mbtiles", "xyz"]
    path: Path
    format: str
    minzoom: int
    maxzoom: int
    attribution: str

    @property
    def media_type(self) -> str:
        """The tiles' MIME type."""
        return IMAGE_TYPES[self.format]

    def tile(self, tile: TileAddress) -> bytes | None:
        """The image of ``tile`` (an XYZ address), or None where the set has none."""
        if self.kind == "mbtiles":
            return read_tile(self.path, tile)
        image = self.path / str(tile.z) / str(tile.x) / f"{tile.y}.{self.format}"
        return image.read_bytes() if image.is_file() else None


def tile_sets(tiles_dir: Path, exclude: Set[str] = frozenset()) -> dict[str, TileSet]:
    """The offline image tile sets in ``tiles_dir`` by name, but those named in ``exclude``."""
    found: dict[str, TileSet] = {}
    if not tiles_dir.is_dir():
        return found
    for entry in sorted(tiles_dir.iterdir()):
        name = entry.stem if entry.suffix == ".mbtiles" else entry.name
        if name in exclude or name in found or not NAME.match(name):
            continue
        tile_set = _read(name, entry, entry.stat().st_mtime_ns)
        if tile_set is not None:
            found[name] = tile_set
    return found


def tile_set(tiles_dir: Path, name: str) -> TileSet | None:
    """The offline image tile set called ``name`` in ``tiles_dir``, or None."""
    if not NAME.match(name):
        return None
    for entry in (tiles_dir / f"{name}.mbtiles", tiles_dir / name):
        if entry.exists():
            found = _read(name, entry, entry.stat().st_mtime_ns)
            if found is not None:
                return found
    return None


@lru_cache(maxsize=64)
def _read(name: str, entry: Path, stamp: int) -> TileSet | None:
    """The tile set at ``entry``, read again only when ``stamp`` (its modification time) moves.

    A tile request must not read the file's metadata, or walk a folder, every time.
    """
    return _mbtiles(name, entry) if entry.suffix == ".mbtiles" else _xyz(name, entry)


def _mbtiles(name: str, path: Path) -> TileSet | None:
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
    except sqlite3.Error:
        return None  # not an MBTiles file: not a tile set
    image = str(meta.get("format", "png")).lower()
    if image not in IMAGE_TYPES or zooms[0] is None:
        return None
    return TileSet(
        name, "mbtiles", path, image, int(zooms[0]), int(zooms[1]), str(meta.get("attribution", ""))
    )


def _xyz(name: str, folder: Path) -> TileSet | None:
    if not folder.is_dir():
        return None
    zooms = sorted(int(z.name) for z in folder.iterdir() if z.is_dir() and z.name.isdigit())
    if not zooms:
        return None
    first = next((p for p in (folder / str(zooms[0])).rglob("*.*") if p.is_file()), None)
    image = first.suffix.lstrip(".").lower() if first is not None else ""
    if image not in IMAGE_TYPES:
        return None
    attribution = folder / "ATTRIBUTION"
    credit = attribution.read_text(encoding="utf-8").strip() if attribution.is_file() else ""
    return TileSet(name, "xyz", folder, image, zooms[0], zooms[-1], credit)
