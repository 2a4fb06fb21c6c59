"""Migration 0003 creates exactly the carrier tables the metadata declares; downgrade drops them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command

from cloud_sync.store.carrier_schema import (
    carrier_callbacks,
    carrier_jobs,
    carrier_partners,
    carrier_stats,
    marketplace_offers,
)
from cloud_sync.store.engine import Database, make_engine
from cloud_sync.store.migrate import alembic_config

TABLES = [carrier_partners, marketplace_offers, carrier_jobs, carrier_callbacks, carrier_stats]


def _shape(sync: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(sync)
    return {
        table.name: {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)},
            "indexes": {i["name"] for i in inspector.get_indexes(table.name)},
            "fks": {
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table.name)
            },
        }
        for table in TABLES
    }


async def test_the_migrated_tables_match_the_metadata(database_url: str) -> None:
    db = Database(make_engine(database_url))
    try:
        async with db.read() as conn:
            found = await conn.run_sync(_shape)
    finally:
        await db.dispose()
    for table in TABLES:
        shape = found[table.name]
        assert shape["columns"] == {c.name: c.nullable for c in table.columns}, table.name
        assert {i.name for i in table.indexes} <= shape["indexes"], table.name
        fks = {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
        assert shape["fks"] == fks, table.name


async def test_downgrade_to_0002_drops_the_carrier_tables(database_url: str) -> None:
    db = Database(make_engine(database_url))

    def down(sync: sa.Connection) -> list[str]:
        config = alembic_config()
        config.attributes["connection"] = sync
        command.downgrade(config, "0002")
        return sa.inspect(sync).get_table_names()

    try:
        remaining = await db.write(lambda conn: conn.run_sync(down))
    finally:
        await db.dispose()
    assert not {table.name for table in TABLES} & set(remaining)
    assert "hubs" in remaining
