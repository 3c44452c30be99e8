"""The embedded store: one GeoPackage file, no server to install.

Writes are copy-on-write: the file is copied, the copy changed and synced to disk, then renamed
over the original. A rename is atomic, so a crash at any point leaves either the old file or the
new one, never a half-written one. A lock file serialises writers; readers never wait.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pygeofilter.ast import AstType

from geo_service.catalogue import Catalogue, Layer
from geo_service.schema import conform, empty_frame, geometry_to_text, list_to_text
from geo_service.store.base import (
    BBox,
    Page,
    SortKey,
    Store,
    StoreError,
    WriteResult,
    check_unique_ids,
    non_negative,
)

if TYPE_CHECKING:
    from geo_service.tiling.vector import TilePolicy

GPKG_NAME = "georisk.gpkg"
META_TABLE = "georisk_meta"


class GeoPackageStore(Store):
    """Layers as tables of one GeoPackage under ``data_dir``; rasters as GeoTIFFs beside it."""

    def __init__(self, catalogue: Catalogue, data_dir: Path) -> None:
        super().__init__(catalogue)
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / GPKG_NAME
        self.raster_dir = self.data_dir / "rasters"
        # (file identity, data version): every write renames a new file into place
        self._version_seen: tuple[tuple[int, int, int, int], str] | None = None

    def upsert(self, layer_id: str, frame: gpd.GeoDataFrame) -> WriteResult:
        """Insert new ids, replace the rows of ids already stored."""
        layer = self.layer(layer_id)
        incoming = conform(layer, frame)
        check_unique_ids(layer, incoming)
        result = WriteResult(0, 0)

        def change(path: Path) -> None:
            nonlocal result
            current = _read_layer(path, layer)
            kept = current[~current["id"].isin(incoming["id"])]
            updated = len(current) - len(kept)
            result = WriteResult(inserted=len(incoming) - updated, updated=updated)
            merged = pd.concat([kept, incoming], ignore_index=True) if len(kept) else incoming
            _write_layer(path, layer, gpd.GeoDataFrame(merged, geometry="geometry", crs=4326))

        self._transaction(change)
        return result

    def replace(self, layer_id: str, frame: gpd.GeoDataFrame) -> WriteResult:
        """Make ``frame`` the whole layer."""
        layer = self.layer(layer_id)
        incoming = conform(layer, frame)
        check_unique_ids(layer, incoming)
        self._transaction(lambda path: _write_layer(path, layer, incoming))
        return WriteResult(inserted=len(incoming), updated=0)

    def read(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        ids: list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> gpd.GeoDataFrame:
        """Features ordered by id; ``bbox`` keeps those whose geometry intersects the box."""
        layer = self.layer(layer_id)
        frame = _read_layer(self.path, layer, bbox=bbox, ids=ids)
        if bbox is not None and len(frame):
            frame = frame[shapely.intersects(frame.geometry.values, shapely.box(*bbox))]
        start = non_negative(offset, "offset")
        stop = None if limit is None else start + non_negative(limit, "limit")
        return frame.iloc[start:stop].reset_index(drop=True)

    def count(self, layer_id: str, *, bbox: BBox | None = None) -> int:
        """Feature count; a bbox count reads only the geometries the R-tree selects."""
        layer = self.layer(layer_id)
        if not _has_layer(self.path, layer.id):
            return 0
        if bbox is None:
            return int(pyogrio.read_info(self.path, layer=layer.id)["features"])
        frame = pyogrio.read_dataframe(self.path, layer=layer.id, columns=[], bbox=bbox)
        return int(shapely.intersects(frame.geometry.values, shapely.box(*bbox)).sum())

    def query(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        filter: AstType | None = None,
        sortby: Sequence[SortKey] = (),
        limit: int = 10,
        offset: int = 0,
        properties: Sequence[str] | None = None,
        exact_count: bool = False,
    ) -> Page:
        """One page; the box goes to the R-tree, the filter is evaluated in pandas."""
        from geo_service.store import gpkg_query

        return gpkg_query.page(
            self.path,
            self.layer(layer_id),
            bbox=bbox,
            filter=filter,
            sortby=sortby,
            limit=non_negative(limit, "limit"),
            offset=non_negative(offset, "offset"),
            properties=properties,
        )

    def iter_query(
        self,
        layer_id: str,
        *,
        bbox: BBox | None = None,
        filter: AstType | None = None,
        sortby: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int = 0,
        properties: Sequence[str] | None = None,
        chunk_size: int = 1000,
    ) -> Iterator[gpd.GeoDataFrame]:
        """The matches in chunks, read by feature id one chunk at a time."""
        from geo_service.store import gpkg_query

        yield from gpkg_query.stream(
            self.path,
            self.layer(layer_id),
            bbox=bbox,
            filter=filter,
            sortby=sortby,
            limit=None if limit is None else non_negative(limit, "limit"),
            offset=non_negative(offset, "offset"),
            properties=properties,
            chunk_size=chunk_size,
        )

    def delete(self, layer_id: str, ids: list[str]) -> int:
        """Remove features by id."""
        layer = self.layer(layer_id)
        removed = 0

        def change(path: Path) -> None:
            nonlocal removed
            current = _read_layer(path, layer)
            kept = current[~current["id"].isin(ids)].reset_index(drop=True)
            removed = len(current) - len(kept)
            if removed:
                _write_layer(path, layer, kept)

        self._transaction(change)
        return removed

    def put_raster(self, layer_id: str, path: Path) -> None:
        """Copy the GeoTIFF in, atomically."""
        layer = self.layer(layer_id)
        if layer.kind != "raster":
            raise StoreError(f"layer {layer_id!r} is not a raster layer")
        self.raster_dir.mkdir(parents=True, exist_ok=True)
        target = self.raster_dir / f"{layer.id}.tif"
        with self._lock():
            staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            try:
                shutil.copyfile(path, staging)
                _fsync(staging)
                os.replace(staging, target)
            finally:
                staging.unlink(missing_ok=True)
            self._bump_version()

    def raster_path(self, layer_id: str) -> Path | None:
        """The stored GeoTIFF, if any."""
        path = self.raster_dir / f"{self.layer(layer_id).id}.tif"
        return path if path.exists() else None

    def data_version(self) -> str:
        """Changes on every write (features or rasters).

        Every write renames a new file into place, so the file's identity (inode, size, times)
        changes with the version: the version is read (with SQLite itself) only then, and
        otherwise costs one ``stat`` — cheap enough for every tile request to check it.
        """
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return "empty"
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        seen = self._version_seen
        if seen is not None and seen[0] == identity:
            return seen[1]
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True)) as db:
                row = db.execute(
                    f'SELECT value FROM "{META_TABLE}" WHERE key = ?', ("data_version",)
                ).fetchone()
        except sqlite3.Error:  # no meta table yet
            row = None
        version = "empty" if row is None else str(row[0])
        self._version_seen = (identity, version)
        return version

    def tile(
        self,
        layer_id: str,
        z: int,
        x: int,
        y: int,
        *,
        properties: list[str] | None = None,
        policy: TilePolicy | None = None,
    ) -> bytes:
        """The vector tile at ``z/x/y``, encoded here (``geo_service.tiling.vector``).

        An R-tree read of the ids, geometries and risk classes near the tile; the properties
        are read (by id) only for the features drawn alone, never for those a dense tile
        aggregates.
        """
        from geo_service.tiling.grid import TileAddress
        from geo_service.tiling.vector import (
            DEFAULT_POLICY,
            encode_frame,
            severity_field,
            tile_fields,
        )

        layer, policy = self.layer(layer_id), policy or DEFAULT_POLICY
        if layer.kind != "vector":
            raise StoreError(f"layer {layer_id!r} is a raster layer: it holds no features")
        tile = TileAddress.checked(z, x, y)
        fields = tile_fields(layer, properties)
        if not _has_layer(self.path, layer.id):
            return b""
        box = tile.frame(policy.extent).lonlat_bounds(policy.buffer)
        severest = severity_field(layer)
        near = pyogrio.read_dataframe(
            self.path,
            layer=layer.id,
            bbox=box,
            columns=["id", *([severest] if severest else [])],
            use_arrow=True,
        )
        near = near[shapely.intersects(near.geometry.values, shapely.box(*box))]

        def fetch(ids: list[str]) -> gpd.GeoDataFrame:
            if 2 * len(ids) > len(near):  # most of them: the R-tree again beats a long id list
                frame = self.read(layer.id, bbox=box)
                return frame[frame["id"].isin(ids)]
            return self.read(layer.id, ids=ids)

        return encode_frame(layer, near, tile, fields=fields, policy=policy, fetch=fetch)

    def extent(self, layer_id: str) -> BBox | None:
        """The layer's bounds, from the GeoPackage's own extent (no feature is read)."""
        layer = self.layer(layer_id)
        if not _has_layer(self.path, layer.id):
            return None
        info = pyogrio.read_info(self.path, layer=layer.id)
        if not info["features"]:
            return None
        west, south, east, north = (float(v) for v in info["total_bounds"])
        return west, south, east, north

    # -- writing ---------------------------------------------------------------------------

    def _transaction(self, change: Callable[[Path], None]) -> None:
        """Apply ``change`` to a copy of the file, then swap the copy in with one rename."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            staging = self.path.with_name(f".staging-{uuid.uuid4().hex}.gpkg")
            try:
                if self.path.exists():
                    shutil.copyfile(self.path, staging)
                change(staging)
                _write_meta(staging, {"data_version": uuid.uuid4().hex})
                _fsync(staging)
                os.replace(staging, self.path)
                _fsync(self.data_dir)
            finally:
                staging.unlink(missing_ok=True)

    def _bump_version(self) -> None:
        # called with the lock held; a version-only change is its own small transaction
        staging = self.path.with_name(f".staging-{uuid.uuid4().hex}.gpkg")
        try:
            if self.path.exists():
                shutil.copyfile(self.path, staging)
            _write_meta(staging, {"data_version": uuid.uuid4().hex})
            _fsync(staging)
            os.replace(staging, self.path)
        finally:
            staging.unlink(missing_ok=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".georisk.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _has_layer(path: Path, name: str) -> bool:
    return path.exists() and name in {str(row[0]) for row in pyogrio.list_layers(path)}


def _read_layer(
    path: Path, layer: Layer, *, bbox: BBox | None = None, ids: list[str] | None = None
) -> gpd.GeoDataFrame:
    if not _has_layer(path, layer.id):
        return empty_frame(layer)
    where = None
    if ids is not None:
        if not ids:
            return empty_frame(layer)
        quoted = ",".join("'" + str(i).replace("'", "''") + "'" for i in ids)
        where = f"id IN ({quoted})"
    frame = pyogrio.read_dataframe(path, layer=layer.id, bbox=bbox, where=where, use_arrow=True)
    return conform(layer, frame)


def _write_layer(path: Path, layer: Layer, frame: gpd.GeoDataFrame) -> None:
    stored = frame.copy()
    for spec in layer.fields:
        if spec.type == "list":
            stored[spec.name] = stored[spec.name].map(list_to_text).astype(object)
        elif spec.type == "geometry":
            stored[spec.name] = stored[spec.name].map(geometry_to_text).astype(object)
    stored = stored.sort_values("id", kind="stable")  # rows in id order: reads come back sorted
    pyogrio.write_dataframe(
        stored, path, layer=layer.id, driver="GPKG", geometry_type="Unknown", promote_to_multi=False
    )


def _write_meta(path: Path, values: dict[str, str]) -> None:
    current: dict[str, str] = {}
    if _has_layer(path, META_TABLE):
        meta = pyogrio.read_dataframe(path, layer=META_TABLE, read_geometry=False)
        current = dict(zip(meta["key"], meta["value"], strict=True))
    current.update(values)
    table = pd.DataFrame({"key": list(current), "value": list(current.values())})
    pyogrio.write_dataframe(table, path, layer=META_TABLE, driver="GPKG")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
