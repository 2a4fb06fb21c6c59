"""Migration 0004: its tables match billing_schema's metadata; downgrade drops them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command

from cloud_sync.store import billing_schema, migrate
from cloud_sync.store.engine import Database
from cloud_sync.store.migrate import alembic_config

TABLES = (
    billing_schema.billing_events,
    billing_schema.billing_exports,
    billing_schema.webhook_endpoints,
    billing_schema.webhook_deliveries,
    billing_schema.webhook_attempts,
)


def describe(sync: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(sync)
    return {
        table.name: {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)},
            "indexes": {i["name"] for i in inspector.get_indexes(table.name)},
            "unique": {u["name"] for u in inspector.get_unique_constraints(table.name)},
        }
        for table in TABLES
    }


async def test_the_migrated_tables_match_the_metadata(db: Database) -> None:
    async with db.read() as conn:
        found = await conn.run_sync(describe)
    for table in TABLES:
        columns = {column.name: column.nullable for column in table.columns}
        assert found[table.name]["columns"] == columns, table.name
        named = {index.name for index in table.indexes if not index.unique}
        assert named <= found[table.name]["indexes"], table.name
        unique = {c.name for c in table.constraints if isinstance(c, sa.UniqueConstraint)}
        assert unique == found[table.name]["unique"], table.name


async def test_downgrade_to_0003_drops_only_these_tables(db: Database, database_url: str) -> None:
    def downgrade(sync: sa.Connection) -> set[str]:
        before = set(sa.inspect(sync).get_table_names())
        config = alembic_config()
        config.attributes["connection"] = sync
        command.downgrade(config, "0003")
        return before - set(sa.inspect(sync).get_table_names())

    try:
        dropped = await db.write(lambda conn: conn.run_sync(downgrade))
    finally:  # the PostgreSQL database is this folder's for the session: put it back
        assert await migrate(database_url) == "0004"
    assert dropped == {table.name for table in TABLES}
