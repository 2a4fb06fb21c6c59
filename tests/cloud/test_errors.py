"""Errors: what callers see for bad input, conflicts, and a failing database."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import (
    ConflictError,
    InvalidRequestError,
    StoreError,
    StoreUnavailableError,
    UnknownHubError,
)
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, migrate
from cloud_sync.store.engine import Database, is_transient, make_engine
from cloud_sync.store.schema import UtcDateTime

from .conftest import HUB_ID, HubKeys


async def test_hubs_are_registered_once_with_one_set_of_keys(
    service: CloudService, hub_keys: HubKeys
) -> None:
    again = await service.add_hub(HUB_ID, hub_keys.signing_b64, hub_keys.sealing_b64)
    assert again.signing_key == hub_keys.signing_b64
    with pytest.raises(ConflictError):
        await service.add_hub(HUB_ID, hub_keys.sealing_b64, hub_keys.sealing_b64)
    for hub_id, key in (("bad/hub", hub_keys.signing_b64), ("hub-0002", "not-a-key")):
        with pytest.raises(InvalidRequestError):
            await service.add_hub(hub_id, key, hub_keys.sealing_b64)
    assert [hub.hub_id for hub in await service.store.list_hubs()] == [HUB_ID]
    with pytest.raises(UnknownHubError):
        await service.store.chain_state("hub-0002")


async def test_a_database_error_becomes_a_store_error(service: CloudService) -> None:
    key = await service.create_api_key("tenant-a")
    row = await service.store.api_key(key.split("_")[1])
    assert row is not None
    with pytest.raises(StoreError) as caught:
        await service.store.add_api_key(row)  # the same prefix again
    assert not isinstance(caught.value, StoreUnavailableError)
    with pytest.raises(ValueError, match="at least one"):
        await service.store.allocate_command_seqs("cloud-2026", 0)


async def test_an_unreachable_database_is_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreUnavailableError):
        await CloudStore.open("postgresql+asyncpg://lockhub@127.0.0.1:1/lockhub")
    db = Database(make_engine("postgresql+asyncpg://lockhub@127.0.0.1:1/lockhub"))
    try:
        with pytest.raises(StoreUnavailableError):
            await db.write(lambda conn: conn.execute(sa.text("SELECT 1")))
    finally:
        await db.dispose()


def locked() -> exc.OperationalError:
    return exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))


class PgError(Exception):
    """Stands in for asyncpg's adapted error, which carries the SQLSTATE as ``pgcode``."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(pgcode)
        self.pgcode = pgcode


def test_transient_errors_are_recognised() -> None:
    assert is_transient(locked())
    assert is_transient(exc.DBAPIError("UPDATE", {}, PgError("40001")))
    assert is_transient(exc.DBAPIError("UPDATE", {}, PgError("40P01")))
    assert not is_transient(exc.IntegrityError("INSERT", {}, PgError("23505")))


async def test_transient_failures_are_retried_then_reported(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    await migrate(url)
    db = Database(make_engine(url))
    calls = 0

    async def flaky(conn: AsyncConnection) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise locked()
        return int((await conn.execute(sa.text("SELECT 7"))).scalar_one())

    async def always(conn: AsyncConnection) -> None:
        raise locked()

    try:
        assert await db.write(flaky) == 7
        assert calls == 3
        with pytest.raises(StoreUnavailableError):
            await db.write(always)
    finally:
        await db.dispose()


def test_naive_datetimes_are_refused() -> None:
    column = UtcDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="timezone-aware"):
        column.process_bind_param(datetime(2026, 3, 1), dialect)
    stored = column.process_bind_param(datetime(2026, 3, 1, tzinfo=UTC), dialect)
    assert column.process_result_value(stored, dialect) == datetime(2026, 3, 1, tzinfo=UTC)
