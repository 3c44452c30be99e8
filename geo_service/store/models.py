"""The PostGIS tables, built from the layer catalogue.

Every vector layer is one table named as the layer: ``id`` (text, primary key, ``C`` collation so
rows sort by code point exactly as ``schema.conform`` sorts them), one column per catalogue field,
``source_crs`` and ``geom`` (any geometry in EPSG:4326, with a GiST index, and a second GiST index
on ``geom::geography`` so searches in metres use an index too). Beside them, ``georisk_meta``
holds the data version and ``georisk_rasters`` the GeoTIFFs of raster layers.

The tables follow the catalogue: a layer added to ``layers/`` gets its table from the same code,
with no migration to write.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import Function
from sqlalchemy.types import TypeEngine

from geo_service.catalogue import Catalogue, FieldType, Layer
from geo_service.store.base import StoreError

META_TABLE = "georisk_meta"
RASTER_TABLE = "georisk_rasters"
VERSION_TABLE = "georisk_alembic_version"
GEOMETRY_COLUMN = "geom"

_RESERVED_TABLES = {META_TABLE, RASTER_TABLE, VERSION_TABLE}

COLUMN_TYPES: dict[FieldType, type[TypeEngine[Any]] | TypeEngine[Any]] = {
    "string": Text,
    "integer": BigInteger,
    "number": Double,
    "boolean": Boolean,
    "date": Date,
    "list": ARRAY(Text),
    "geometry": Text,  # a second geometry (e.g. a pond's outline) as WKT in EPSG:4326
}


def build_metadata(catalogue: Catalogue) -> MetaData:
    """The tables of a catalogue: one per vector layer, plus the meta and raster tables."""
    metadata = MetaData()
    Table(
        META_TABLE,
        metadata,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
    )
    Table(
        RASTER_TABLE,
        metadata,
        Column("layer_id", Text, primary_key=True),
        Column("data", LargeBinary, nullable=False),
        Column("sha256", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    for layer in catalogue.vector_layers:
        layer_table(metadata, layer)
    return metadata


def layer_table(metadata: MetaData, layer: Layer) -> Table:
    """The table of one vector layer, added to ``metadata``."""
    if layer.id in _RESERVED_TABLES:
        raise StoreError(
            f"layer id {layer.id!r} is reserved by the PostGIS store; rename the layer"
        )
    if GEOMETRY_COLUMN in layer.field_map:
        raise StoreError(
            f"layer {layer.id!r}: field name {GEOMETRY_COLUMN!r} is reserved by the PostGIS store"
        )
    table = Table(
        layer.id,
        metadata,
        Column("id", Text(collation="C"), primary_key=True),
        *(Column(spec.name, COLUMN_TYPES[spec.type]) for spec in layer.fields),
        Column("source_crs", Text),
        Column(GEOMETRY_COLUMN, Geometry(geometry_type="GEOMETRY", srid=4326, spatial_index=True)),
    )
    Index(f"idx_{layer.id}_geog", geography(table.c[GEOMETRY_COLUMN]), postgresql_using="gist")
    return table


def geography(column: ColumnElement[Any]) -> Function[Any]:
    """``geom::geography``, spelled as the geography GiST index is declared."""
    return func.geography(column)
