"""Alembic environment of the PostGIS store, run from code (no alembic.ini).

``geo_service.store.postgis.upgrade`` builds the Alembic config, opens a transaction, takes an
advisory lock and hands its connection and the catalogue over in ``config.attributes``; the
migrations then run inside that one transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from geo_service.store.models import VERSION_TABLE

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # `alembic -x` style use from a shell: a URL in the config, our own engine
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("georisk migrations run against a live database only (no --sql mode)")
run_migrations_online()
