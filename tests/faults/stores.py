"""Looking into the stores after a run: the hub's SQLite file and the cloud's database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cloud_sync.store.schema import pods as pods_table
from cloud_sync.store.schema import records as records_table
from tests.infra.services import PostgresDatabase

HUB_ID = "hub-faults"


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file that no process writes any more."""
    conn = sqlite3.connect(path)
    try:
        return "; ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def check_hub_store(path: Path) -> int:
    """The stopped hub's store passes integrity_check and holds no unacked record; its head."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        unacked = conn.execute("SELECT count(*) FROM records WHERE acked_at IS NULL").fetchone()
        assert unacked == (0,)
        (head,) = conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
        seqs = [s for (s,) in conn.execute("SELECT seq FROM records ORDER BY seq")]
        assert seqs == list(range(1, head + 1)), "the hub's outbox has a gap"
        return int(head)
    finally:
        conn.close()


def hub_envelopes(path: Path, after: int) -> list[tuple[int, str]]:
    """(seq, envelope JSON) of the hub's records after seq ``after``, read from its SQLite."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT seq, envelope FROM records WHERE seq > ? ORDER BY seq", (after,)
        )
        return [(int(seq), str(envelope)) for seq, envelope in rows]
    finally:
        conn.close()


async def stored_count(database_url: str) -> int:
    """How many records of HUB_ID the cloud has stored, chained or not."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(records_table)
            return int(
                (await conn.execute(query.where(records_table.c.hub_id == HUB_ID))).scalar_one()
            )
    finally:
        await engine.dispose()


async def pod_ids(database_url: str) -> list[str]:
    """Every pod_id of HUB_ID in the cloud's ``pods`` table."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = sa.select(pods_table.c.pod_id).where(pods_table.c.hub_id == HUB_ID)
            return list((await conn.execute(query)).scalars())
    finally:
        await engine.dispose()


def cloud_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For ``request.param`` ``sqlite``: a file in tmp_path; for ``postgres``: the session's
    database with a fresh schema."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cloud.db"
    database: PostgresDatabase = request.getfixturevalue("postgres_db")
    asyncio.run(reset_schema(database.dsn))
    return database.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def reset_schema(dsn: str) -> None:
    """Drop and recreate the public schema: each test starts from an empty database."""
    import asyncpg  # noqa: PLC0415 - PostgreSQL runs only

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
