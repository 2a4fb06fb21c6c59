"""Alembic environment: runs on the connection that ``cloud_sync.store.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cloud_sync.store.schema import metadata


def run_on(connection: Connection) -> None:
    """Run the pending migrations on ``connection`` inside its transaction."""
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Entry point Alembic calls when it loads this file."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        # The database URL and the async driver live in the cloud config, not in alembic.ini.
        raise RuntimeError("run migrations with `lockhub cloud migrate --config FILE`")
    run_on(connection)


main()
