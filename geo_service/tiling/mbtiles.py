"""MBTiles 1.3 files: tiles in one SQLite file (``metadata`` and ``tiles`` tables).

Rows are counted from the bottom (TMS): ``tile_row = 2^z - 1 - y`` for the XYZ row ``y``.
A file is written under a temporary name and renamed into place when complete, so a reader
never sees half a tile set.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from geo_service.tiling.grid import TileAddress

SCHEMA = """
CREATE TABLE metadata (name TEXT, value TEXT);
CREATE UNIQUE INDEX metadata_name ON metadata (name);
CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
"""


def write_mbtiles(
    path: Path, metadata: dict[str, str], tiles: Iterable[tuple[TileAddress, bytes]]
) -> int:
    """Write ``tiles`` (XYZ addresses and their bytes) and ``metadata`` to ``path``.

    Returns the number of tiles written. ``path`` is replaced only once the file is complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    written = 0
    try:
        with closing(sqlite3.connect(staging)) as db:
            db.executescript(SCHEMA)
            db.executemany("INSERT INTO metadata (name, value) VALUES (?, ?)", metadata.items())
            batch: list[tuple[int, int, int, bytes]] = []
            for tile, data in tiles:
                batch.append((tile.z, tile.x, tile.tms_row, data))
                if len(batch) >= 500:
                    written += _insert(db, batch)
            written += _insert(db, batch)
            db.commit()
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return written


def read_tile(path: Path, tile: TileAddress) -> bytes | None:
    """The bytes of ``tile`` (an XYZ address) in the MBTiles file at ``path``, if present."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (tile.z, tile.x, tile.tms_row),
        ).fetchone()
    return None if row is None else bytes(row[0])


def _insert(db: sqlite3.Connection, batch: list[tuple[int, int, int, bytes]]) -> int:
    db.executemany(
        "INSERT INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?, ?, ?, ?)",
        batch,
    )
    count = len(batch)
    batch.clear()
    return count
