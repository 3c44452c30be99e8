"""Initial schema: PostGIS, the meta and raster tables, and one table per catalogue layer.

Layer tables follow the declarative catalogue (``layers/*.yaml``): they are built by
``geo_service.store.models.build_metadata`` from the catalogue the store is opened with (the one
shipped with georisk when none is handed over), so adding a layer needs no code and no new
revision. ``geo_service.store.postgis.upgrade`` runs this revision and then, on every upgrade,
creates the tables of layers added to the catalogue later (``create_all(checkfirst=True)``) and
adds the columns of fields added later. Changes to ``georisk_meta`` or ``georisk_rasters`` need a
new revision; those two tables are spelled out here so this revision stays what it was.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from geo_service.catalogue import load_catalogue
from geo_service.store.models import build_metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "georisk_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "georisk_rasters",
        sa.Column("layer_id", sa.Text, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    catalogue = context.config.attributes.get("catalogue") or load_catalogue()
    metadata = build_metadata(catalogue)
    layers = [metadata.tables[layer.id] for layer in catalogue.vector_layers]
    metadata.create_all(op.get_bind(), tables=layers, checkfirst=True)


def downgrade() -> None:
    catalogue = context.config.attributes.get("catalogue") or load_catalogue()
    metadata = build_metadata(catalogue)
    layers = [metadata.tables[layer.id] for layer in catalogue.vector_layers]
    metadata.drop_all(op.get_bind(), tables=layers, checkfirst=True)
    op.drop_table("georisk_rasters")
    op.drop_table("georisk_meta")
