"""Migrations up from empty, and a store that refuses an un-migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud_sync.errors import CloudError, SchemaError
from cloud_sync.store import CloudStore, head_revision, migrate
from cloud_sync.store.engine import Database, make_engine
from cloud_sync.store.migrate import alembic_config
from cloud_sync.store.schema import metadata

# Every table the Core metadata declares (sync, carriers, billing, webhooks).
TABLES = set(metadata.tables)
HEAD = "0004"


async def test_migrate_creates_the_schema_and_is_idempotent(empty_url: str) -> None:
    assert {"hubs", "records", "carrier_jobs", "carrier_labels", "billing_events"} <= TABLES
    assert await migrate(empty_url) == head_revision() == HEAD
    assert await migrate(empty_url) == HEAD
    db = Database(make_engine(empty_url))
    try:
        async with db.read() as conn:
            names = set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
            columns = await conn.run_sync(
                lambda sync: {
                    table: {c["name"] for c in sa.inspect(sync).get_columns(table)}
                    for table in TABLES
                }
            )
    finally:
        await db.dispose()
    assert names >= TABLES | {"alembic_version"}
    # The hand-written migration and the Core metadata describe the same columns.
    for table in TABLES:
        assert columns[table] == set(metadata.tables[table].columns.keys()), table


async def test_store_refuses_an_unmigrated_database(empty_url: str) -> None:
    with pytest.raises(SchemaError, match="lockhub cloud migrate") as caught:
        await CloudStore.open(empty_url)
    assert isinstance(caught.value, CloudError)
    assert (caught.value.current, caught.value.head) == (None, HEAD)


async def test_store_refuses_a_database_at_another_revision(empty_url: str) -> None:
    await migrate(empty_url)
    db = Database(make_engine(empty_url))
    try:
        await db.write(
            lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
        )
    finally:
        await db.dispose()
    with pytest.raises(SchemaError, match="revision 0000"):
        await CloudStore.open(empty_url)


async def test_sqlite_runs_in_wal_with_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    await migrate(url)
    db = Database(make_engine(url))
    try:
        async with db.read() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    finally:
        await db.dispose()
    assert (mode, keys, sync) == ("wal", 1, 2)


async def test_alembic_outside_lockhub_is_refused() -> None:
    from alembic import command  # noqa: PLC0415

    with pytest.raises(RuntimeError, match="lockhub cloud migrate"):
        command.upgrade(alembic_config(), "head", sql=True)


async def test_downgrade_to_base_drops_everything(empty_url: str) -> None:
    from alembic import command  # noqa: PLC0415

    await migrate(empty_url)
    db = Database(make_engine(empty_url))

    def downgrade(sync: sa.Connection) -> list[str]:
        config = alembic_config()
        config.attributes["connection"] = sync
        command.downgrade(config, "base")
        return sa.inspect(sync).get_table_names()

    try:
        remaining = await db.write(lambda conn: conn.run_sync(downgrade))
    finally:
        await db.dispose()
    assert set(remaining) <= {"alembic_version"}
